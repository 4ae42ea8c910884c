"""`heat_local`: the boot metadata Heat puts in user_data (cfn-init-data), shallow-merged.

The instance remembers the stat signature of the files it last read: a poll that finds them
unchanged answers NOT_MODIFIED without parsing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from guestagent.collectors.base import NOT_MODIFIED, Collected
from guestagent.collectors.jsonfiles import (SETTLE_NS, LastRead, Signature, path_option,
                                             read_object, remember, stamp)
from guestagent.errors import SourceNotConfigured, SourceUnavailable
from guestagent.state import SourceCache

DEFAULT_PATH = "/var/lib/heat-cfntools/cfn-init-data"


@dataclass
class HeatLocal:
    paths: list[Path]
    name: str = "heat_local"
    settle_ns: int = SETTLE_NS
    _last: LastRead | None = field(default=None, repr=False)

    def collect(self, previous: SourceCache | None = None):
        signature = self._signature()
        if self._last is not None and self._last.current(signature, previous):
            return NOT_MODIFIED
        self._last = None  # set again only by a read that succeeds
        merged: dict = {}
        found = [path for path, st in signature if st is not None]
        if not found:
            # Normal on an image booted without Heat: skipped quietly, not an outage.
            raise SourceNotConfigured(f"{self.name}: no file at " + ", ".join(map(str, self.paths)))
        for path in found:
            merged.update(read_object(self.name, Path(path)))
        self._last = remember(signature, merged, self.settle_ns)
        return Collected(merged)

    def cheap_poll(self, previous: SourceCache | None) -> bool:
        """A poll is a stat call per file."""
        return True

    def _signature(self) -> Signature:
        entries = []
        for path in self.paths:
            try:
                entries.append((str(path), stamp(os.stat(path))))
            except (FileNotFoundError, NotADirectoryError):
                entries.append((str(path), None))
            except OSError as exc:
                raise SourceUnavailable(self.name, f"{path}: {exc.strerror}") from exc
        return tuple(entries)


def build(options: dict) -> HeatLocal:
    return HeatLocal(path_option(options, DEFAULT_PATH))
