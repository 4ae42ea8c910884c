"""`local`: every non-hidden regular file in each directory, each a JSON object, merged by name order.

The instance remembers the stat signature of the directories and files it last read: a poll
that finds them unchanged is a few stat calls and answers NOT_MODIFIED without parsing.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from guestagent.collectors.jsonfiles import (FileSource, Signature, check_trusted,
                                             path_option, read_object, stamp)
from guestagent.errors import SourceUnavailable

DEFAULT_PATH = "/var/lib/os-collect-config/local-data"


@dataclass
class Local(FileSource):
    dirs: list[Path]
    name: str = "local"

    def _read(self, signature: Signature) -> dict:
        merged: dict = {}
        for path, st in signature:
            if st is None:
                continue  # a directory that does not exist (yet)
            if stat.S_ISDIR(st.mode):
                check_trusted(self.name, Path(path), st.uid, st.mode)
            else:
                merged.update(read_object(self.name, Path(path), check_owner=True))
        return merged

    def _signature(self) -> Signature:
        """Each directory, then its non-hidden regular files by name, with their stamps."""
        entries = []
        for directory in self.dirs:
            st = self._stamp(directory)
            entries.append((str(directory), st))
            if st is None:
                continue
            try:
                listing = sorted(os.scandir(directory), key=lambda e: e.name)
            except FileNotFoundError:
                entries.append((str(directory), None))  # removed since its stat
                continue
            except OSError as exc:
                raise SourceUnavailable(self.name, f"{directory}: {exc.strerror}") from exc
            for entry in listing:
                if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                    continue
                try:
                    entries.append((entry.path, stamp(entry.stat(follow_symlinks=False))))
                except FileNotFoundError:
                    continue  # removed since the listing
        return tuple(entries)


def build(options: dict) -> Local:
    return Local(path_option(options, DEFAULT_PATH))
