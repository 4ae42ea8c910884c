"""`local`: every non-hidden regular file in each directory, each a JSON object, merged by name
order: later files win key by key, except `deployments`, which are united by id across files
(as across sources), so adding a file adds its deployments and never hides another file's. One
id in two files with different contents is refused, naming both files: the source fails and
its last good copy stays in effect until the files agree.

The instance remembers the stat signature of the directories and files it last read: a poll
that finds them unchanged is a few stat calls and answers NOT_MODIFIED without parsing.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guestagent.collectors.jsonfiles import (
    FileSource,
    Signature,
    check_trusted,
    path_option,
    read_object,
    stamp,
)
from guestagent.errors import SourceUnavailable

DEFAULT_PATH = "/var/lib/os-collect-config/local-data"


@dataclass
class Local(FileSource):
    dirs: list[Path]
    name: str = "local"

    def _read(self, signature: Signature) -> dict:
        merged: dict = {}
        united: dict[str, tuple[Any, str]] = {}  # deployment id -> (item, file it came from)
        for path, st in signature:
            if st is None:
                continue  # a directory that does not exist (yet)
            if stat.S_ISDIR(st.mode):
                check_trusted(self.name, Path(path), st.uid, st.mode)
                continue
            document = read_object(self.name, Path(path), check_owner=True)
            items = document.pop("deployments", None)
            merged.update(document)
            if items is not None:
                self._unite(united, items, path)
        if united:
            merged["deployments"] = [item for item, _ in united.values()]
        return merged

    def _unite(self, united: dict[str, tuple[Any, str]], items: Any, path: str) -> None:
        """Add one file's deployments to `united`, by id; a clash with another file's raises."""
        if not isinstance(items, list):
            raise SourceUnavailable(self.name, f"{path}: `deployments` must be a list, not "
                                               f"{type(items).__name__}")
        for item in items:
            ident = item.get("id") if isinstance(item, dict) else None
            # An item without a usable id stays, under a key of its own: the parser reports it.
            key = ident if isinstance(ident, str) and ident else f"#{len(united)}"
            if key in united and united[key][0] != item:
                raise SourceUnavailable(self.name, f"deployment id {key} is in both "
                                                   f"{united[key][1]} and {path} with different "
                                                   "contents; refused until they agree")
            united.setdefault(key, (item, path))

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
