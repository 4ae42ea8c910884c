"""`ec2`: the EC2-style metadata tree at http://169.254.169.254/latest/meta-data/, as a nested
object; when the service cannot be reached, ec2/latest/meta-data.json from the config drive.

A directory lists one key per line; a key ending in `/` is a sub-directory, and an `N=name`
line (public-keys) names the sub-directory `N/`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from guestagent import http
from guestagent.collectors import config_drive
from guestagent.collectors.base import Collected, Collector
from guestagent.errors import SourceUnavailable, TransportError
from guestagent.logs import escape

DEFAULT_URL = "http://169.254.169.254/latest/meta-data/"
MAX_DEPTH = 8
MAX_KEYS = 2000
WALK_TIMEOUTS = 12  # the whole walk: 2 minutes at the default 10 s timeout
MAX_REPLY = 1024 * 1024  # one key's value (user data is the largest, at most 64 KiB on EC2)
_INDEXED = re.compile(r"^(\d+)=")


@dataclass
class Ec2(Collector):
    base_url: str = DEFAULT_URL
    timeout: float = 10.0
    drive_device: str | None = None
    use_drive: bool = True
    name: str = "ec2"

    def collect(self, previous=None) -> Collected:
        """The tree over HTTP; the config drive's copy when HTTP fails (and a drive exists)."""
        try:
            return Collected(_Walk(self.name, self.timeout).directory(self.base_url, 0))
        except SourceUnavailable as http_failure:
            if not self.use_drive:
                raise
            device = config_drive.find_device(self.drive_device)
            document = (config_drive.read_json(device, config_drive.EC2_META_DATA)
                        if device is not None else None)
            if document is None:
                raise SourceUnavailable(self.name, f"{http_failure.reason}; and no config drive "
                                                   "with ec2 metadata") from http_failure
            return Collected(document)


class _Walk:
    """One walk of the tree, bounded in depth, in the number of keys and in time: each
    request within twice `timeout`, the whole walk within `WALK_TIMEOUTS` times it."""

    def __init__(self, source: str, timeout: float):
        self.source, self.timeout, self.keys = source, timeout, 0
        self.deadline = http.Deadline(WALK_TIMEOUTS * timeout)

    def directory(self, url: str, depth: int) -> dict:
        if depth > MAX_DEPTH:
            raise SourceUnavailable(self.source, f"{http.redact_url(url)}: tree deeper than "
                                                 f"{MAX_DEPTH}")
        tree: dict = {}
        for line in self.get(url).splitlines():
            line = line.strip()
            if not line:
                continue
            self.keys += 1
            if self.keys > MAX_KEYS:
                raise SourceUnavailable(self.source, f"more than {MAX_KEYS} keys")
            indexed = _INDEXED.match(line)
            if indexed:
                tree[indexed.group(1)] = self.directory(url + indexed.group(1) + "/", depth + 1)
            elif line.endswith("/"):
                tree[line[:-1]] = self.directory(url + line, depth + 1)
            else:
                tree[line] = self.get(url + line)
        return tree

    def get(self, url: str) -> str:
        where = escape(f"GET {http.redact_url(url)}")
        try:
            deadline = min(2 * self.timeout, self.deadline.left())
            resp = http.request("GET", url, timeout=(self.timeout, self.timeout),
                                max_body=MAX_REPLY, deadline=deadline)
        except TransportError as exc:
            raise SourceUnavailable(self.source, f"{where}: {exc}") from exc
        if resp.status_code != 200:
            raise SourceUnavailable(self.source, f"{where}: HTTP {resp.status_code}")
        if len(resp.content) > MAX_REPLY:
            raise SourceUnavailable(self.source, f"{where}: reply larger than {MAX_REPLY} bytes")
        return resp.text


def build(options: dict) -> Ec2:
    url = str(options.get("metadata_url") or DEFAULT_URL)
    drive = options.get("config_drive", True)
    return Ec2(base_url=url if url.endswith("/") else url + "/",
               timeout=float(options.get("timeout") or 10.0),
               drive_device=options.get("config_drive_device") or None,
               use_drive=str(drive).lower() not in ("false", "0", "no", "off"))
