"""Metadata sources, one module each; a module is imported only when its source is used."""

from __future__ import annotations

import importlib
from typing import Any, Mapping

from guestagent.errors import ConfigError

# source name -> module with build(options) -> collector
REGISTRY = {
    "heat_local": "guestagent.collectors.heat_local",
    "local": "guestagent.collectors.local",
    "request": "guestagent.collectors.request",
    "heat": "guestagent.collectors.heat",
    "cfn": "guestagent.collectors.cfn",
    "config_drive": "guestagent.collectors.config_drive",
    "ec2": "guestagent.collectors.ec2",
    "zaqar": "guestagent.collectors.zaqar",
}


def build(name: str, options: Mapping[str, Any]):
    """The collector for source `name`; SourceNotConfigured when its options are incomplete."""
    if name not in REGISTRY:
        raise ConfigError(f"unknown collector {name!r} (known: {', '.join(sorted(REGISTRY))})")
    return importlib.import_module(REGISTRY[name]).build(dict(options))
