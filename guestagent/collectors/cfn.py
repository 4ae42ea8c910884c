"""`cfn` (POLL_SERVER_CFN): DescribeStackResource on heat-api-cfn, signed with AWS signature v2.

The request carries a Timestamp so a captured URL stops working after the server's window.
The XML reply is parsed only after refusing any DTD: Heat never sends one, and a DTD is what
entity-expansion attacks need.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import quote, urlsplit
from xml.etree import ElementTree

from guestagent import http, jsondoc
from guestagent.collectors.base import Collected, Collector
from guestagent.collectors.openstack import timeout_option, verify_option
from guestagent.collectors.replies import MAX_BODY, describe
from guestagent.errors import SourceNotConfigured, SourceUnavailable, TransportError
from guestagent.logs import escape

SERVER_HINT = "/var/lib/heat-cfntools/cfn-metadata-server"
_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def sign_v2(secret: str, method: str, url: str, params: dict[str, str]) -> str:
    """AWS signature version 2, HmacSHA256, base64 (what heat-api-cfn checks)."""
    parts = urlsplit(url)
    query = "&".join(f"{_enc(k)}={_enc(params[k])}" for k in sorted(params) if k != "Signature")
    text = "\n".join([method.upper(), parts.netloc.lower(), parts.path or "/", query])
    return base64.b64encode(hmac.new(secret.encode(), text.encode(), hashlib.sha256).digest()).decode()


def _enc(value: str) -> str:
    return quote(str(value), safe="-_.~")  # RFC 3986 unreserved characters stay as they are


@dataclass
class Cfn(Collector):
    metadata_url: str
    stack_name: str
    access_key_id: str
    secret_access_key: str
    paths: list[tuple[str, list[str]]]  # (resource, keys below its Metadata), in option order
    verify: bool | str = True
    name: str = "cfn"
    timeout: float | None = None  # seconds to connect and per read; None: http's default

    def collect(self, previous=None) -> Collected:
        """Each `path`'s part of its resource's Metadata, shallow-merged in order."""
        merged: dict = {}
        fetched: dict[str, str] = {}
        for resource, sub_keys in self.paths:
            if resource not in fetched:
                fetched[resource] = self._describe(resource)
            merged.update(self._select(fetched[resource], resource, sub_keys))
        return Collected(merged)

    def _describe(self, resource: str) -> str:
        """One signed DescribeStackResource: the text of the resource's Metadata element."""
        params = {"Action": "DescribeStackResource", "StackName": self.stack_name,
                  "LogicalResourceId": resource, "AWSAccessKeyId": self.access_key_id,
                  "SignatureVersion": "2", "SignatureMethod": "HmacSHA256",
                  "Timestamp": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
        params["Signature"] = sign_v2(self.secret_access_key, "GET", self.metadata_url, params)
        url = self.metadata_url + "?" + "&".join(f"{_enc(k)}={_enc(v)}" for k, v in params.items())
        where = describe("GET", url)
        try:
            limit = http.DEFAULT_TIMEOUT if self.timeout is None else (self.timeout, self.timeout)
            resp = http.request("GET", url, headers={"Accept": "application/xml"},
                                verify=self.verify, timeout=limit, max_body=MAX_BODY)
        except TransportError as exc:
            raise SourceUnavailable(self.name, f"{where}: {exc}") from exc
        if resp.status_code != 200:
            raise SourceUnavailable(self.name, f"{where}: HTTP {resp.status_code}"
                                               f"{_error_code(resp.content)}")
        return _metadata_text(self.name, where, resp.content)

    def _select(self, text: str, resource: str, sub_keys: list[str]) -> dict:
        try:
            value = jsondoc.loads(text, max_bytes=MAX_BODY)
        except jsondoc.DocumentError as exc:
            raise SourceUnavailable(self.name,
                                    f"{resource}.Metadata is not valid JSON: {exc}") from None
        for depth, key in enumerate(sub_keys):
            if not isinstance(value, dict) or key not in value:
                walked = ".".join([resource, "Metadata"] + sub_keys[:depth + 1])
                raise SourceUnavailable(self.name, f"no {walked} in the metadata")
            value = value[key]
        if not isinstance(value, dict):
            walked = ".".join([resource, "Metadata"] + sub_keys)
            raise SourceUnavailable(self.name, f"{walked} is not a JSON object")
        return value


def _parse(source: str, where: str, data: bytes) -> ElementTree.Element:
    if len(data) > MAX_BODY:
        raise SourceUnavailable(source, f"{where}: reply larger than {MAX_BODY} bytes")
    if _DTD.search(data):
        raise SourceUnavailable(source, f"{where}: reply holds a DTD; refused")
    try:
        return ElementTree.fromstring(data)
    except ElementTree.ParseError as exc:
        raise SourceUnavailable(source, f"{where}: reply is not valid XML ({exc})") from None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]  # ignore any XML namespace


def _metadata_text(source: str, where: str, data: bytes) -> str:
    root = _parse(source, where, data)
    path = ["DescribeStackResourceResult", "StackResourceDetail", "Metadata"]
    if _local(root.tag) != "DescribeStackResourceResponse":
        raise SourceUnavailable(source, f"{where}: unexpected XML root "
                                        f"{escape(_local(root.tag)[:100])!r}")
    node = root
    for name in path:
        node = next((child for child in node if _local(child.tag) == name), None)
        if node is None:
            raise SourceUnavailable(source, f"{where}: reply has no {name} element")
    return node.text or ""


def _error_code(data: bytes) -> str:
    # heat-api-cfn explains refusals in <ErrorResponse><Error><Code>: worth showing.
    try:
        root = _parse("cfn", "", data)
    except SourceUnavailable:
        return ""
    code = next((e.text for e in root.iter() if _local(e.tag) == "Code"), None)
    return f" ({escape(code[:100])})" if code else ""


def build(options: dict) -> Cfn:
    missing = [k for k in ("access_key_id", "secret_access_key", "path", "stack_name")
               if not options.get(k)]
    if missing:
        raise SourceNotConfigured(f"cfn: missing option(s) {', '.join(missing)}")
    url = options.get("metadata_url") or _hinted_url(Path(options.get("heat_metadata_hint")
                                                          or SERVER_HINT))
    paths = options["path"] if isinstance(options["path"], list) else [options["path"]]
    return Cfn(metadata_url=url, stack_name=str(options["stack_name"]),
               access_key_id=str(options["access_key_id"]),
               secret_access_key=str(options["secret_access_key"]),
               paths=[_split_path(str(p)) for p in paths], verify=verify_option(options),
               timeout=timeout_option(options))


def _split_path(path: str) -> tuple[str, list[str]]:
    parts = path.split(".")
    if len(parts) < 2 or parts[1] != "Metadata" or not parts[0]:
        raise SourceNotConfigured(f"cfn: path must be <Resource>.Metadata[.key...], not {path!r}")
    return parts[0], parts[2:]


def _hinted_url(hint: Path) -> str:
    try:
        base = hint.read_text().strip()
    except OSError:
        raise SourceNotConfigured(f"cfn: no metadata_url and no {hint}") from None
    if not base:
        raise SourceNotConfigured(f"cfn: {hint} is empty")
    return base.rstrip("/") + "/v1/"
