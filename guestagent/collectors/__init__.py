"""Metadata sources, one module each; a module is imported only when its source is used.

REGISTRY is the one list of sources: each entry names the module (with `build(options)`) and
the options its configuration section takes, so adding a source is one entry here. The
settings (guestagent.config) derive their source sections from it, and an option marked
`metadata=True` is one Heat writes into the metadata's `os-collect-config` key for its
transport (heat-agents' os-collect-config.conf template renders exactly these).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from guestagent.errors import ConfigError
from guestagent.schema import Option, seconds


@dataclass(frozen=True)
class Source:
    """One registered source: where its code lives and which options it takes."""

    module: str
    options: Mapping[str, Option] = field(default_factory=dict)


def _text(metadata: bool = False) -> Option:
    return Option("text", metadata=metadata)


# ca_file: os-collect-config's [zaqar] name for ca_certificate, taken by every source.
_TLS = {"ca_certificate": Option("path"), "ca_file": Option("path"), "insecure": Option("bool")}
# What Heat writes for POLL_SERVER_HEAT and ZAQAR_MESSAGE (the Keystone login).
_KEYSTONE = {"auth_url": Option("url", metadata=True), "user_id": _text(True),
             "password": _text(True), "project_id": _text(True), "region_name": _text(True)}

REGISTRY: dict[str, Source] = {
    "heat_local": Source("guestagent.collectors.heat_local", {"path": Option("paths")}),
    "local": Source("guestagent.collectors.local", {"path": Option("paths")}),
    "request": Source("guestagent.collectors.request", {
        "metadata_url": Option("url", metadata=True), "timeout": seconds(0.1), **_TLS}),
    "heat": Source("guestagent.collectors.heat", {
        **_KEYSTONE, "stack_id": _text(True), "resource_name": _text(True), **_TLS,
        "timeout": seconds(0.1)}),
    "cfn": Source("guestagent.collectors.cfn", {
        "metadata_url": Option("url", metadata=True), "stack_name": _text(True),
        "access_key_id": _text(True), "secret_access_key": _text(True),
        "path": Option("texts", metadata=True),  # Resource.Metadata[.key...], not a file
        **_TLS, "ca_certificate": Option("path", metadata=True),
        "heat_metadata_hint": Option("path"),
        "timeout": seconds(0.1),
        # os-collect-config's [cfn] option that has no use here
        "deployment_key": Option("texts", effect=False)}),
    "config_drive": Source("guestagent.collectors.config_drive", {
        "device": Option("path"), "boot_metadata_file": Option("path")}),
    "ec2": Source("guestagent.collectors.ec2", {
        "metadata_url": Option("url"), "timeout": seconds(0.1), "config_drive": Option("bool"),
        "config_drive_device": Option("path")}),
    "zaqar": Source("guestagent.collectors.zaqar", {
        **_KEYSTONE, "queue_id": _text(True), **_TLS, "timeout": seconds(0.1),
        "client_id": _text(), "claim_ttl": Option("count", 60, 43200),
        # push over Zaqar's websocket: unset = when the catalog offers it; false = poll only
        "use_websockets": Option("bool", metadata=True), "websocket_url": Option("url"),
        # os-collect-config's: TLS is verified by default
        "ssl_certificate_validation": Option("bool", effect=False)}),
}


def build(name: str, options: Mapping[str, Any]):
    """The collector for source `name`; SourceNotConfigured when its options are incomplete."""
    if name not in REGISTRY:
        raise ConfigError(f"unknown collector {name!r} (known: {', '.join(sorted(REGISTRY))})")
    return importlib.import_module(REGISTRY[name].module).build(dict(options))
