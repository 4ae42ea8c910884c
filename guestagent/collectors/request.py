"""`request` (POLL_TEMP_URL): one conditional GET per poll of a URL serving the metadata JSON."""

from __future__ import annotations

from dataclasses import dataclass

from guestagent import http
from guestagent.collectors.base import NOT_MODIFIED, Collected, Collector
from guestagent.collectors.openstack import timeout_option, verify_option
from guestagent.collectors.replies import MAX_BODY, json_reply
from guestagent.errors import SourceNotConfigured, SourceUnavailable, TransportError
from guestagent.state import SourceCache


@dataclass
class Request(Collector):
    url: str
    verify: bool | str = True
    name: str = "request"
    timeout: float | None = None  # seconds to connect and per read; None: http's default

    def collect(self, previous: SourceCache | None = None):
        headers = {"Accept": "application/json"}
        if previous is not None:
            # The ETag alone when there is one: Last-Modified has one-second resolution, and a
            # server that checks both (Swift does) answers 304 to a rewrite within that second.
            if previous.etag:
                headers["If-None-Match"] = previous.etag
            elif previous.last_modified:
                headers["If-Modified-Since"] = previous.last_modified
        where = http.redact_url(self.url)
        try:
            limit = http.DEFAULT_TIMEOUT if self.timeout is None else (self.timeout, self.timeout)
            resp = http.request("GET", self.url, headers=headers, verify=self.verify,
                                timeout=limit, max_body=MAX_BODY)
        except TransportError as exc:
            raise SourceUnavailable(self.name, f"GET {where}: {exc}") from exc
        if resp.status_code == 304 and previous is not None:
            return NOT_MODIFIED
        document = json_reply(self.name, f"GET {where}", resp)
        if not isinstance(document, dict):
            raise SourceUnavailable(self.name, f"GET {where}: body is not a JSON object")
        return Collected(document, etag=resp.headers.get("ETag"),
                         last_modified=resp.headers.get("Last-Modified"))

    def cheap_poll(self, previous: SourceCache | None) -> bool:
        """A poll is a conditional GET the server can answer 304 once the last reply carried
        a validator."""
        return previous is not None and bool(previous.etag or previous.last_modified)


def build(options: dict) -> Request:
    url = options.get("metadata_url")
    if not url:
        raise SourceNotConfigured("request: no metadata_url")
    return Request(url=url, verify=verify_option(options), timeout=timeout_option(options))
