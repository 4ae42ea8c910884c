"""`local`: every non-hidden regular file in each directory, each a JSON object, merged by name order."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from guestagent.collectors.base import Collected
from guestagent.collectors.jsonfiles import path_option, read_object
from guestagent.errors import SourceUnavailable

DEFAULT_PATH = "/var/lib/os-collect-config/local-data"


@dataclass
class Local:
    dirs: list[Path]
    name: str = "local"

    def collect(self, previous=None) -> Collected:
        merged: dict = {}
        for directory in self.dirs:
            try:
                st = os.stat(directory)
            except FileNotFoundError:
                continue
            if st.st_uid != os.geteuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                raise SourceUnavailable(
                    self.name, f"{directory}: owned by another user or writable by others; refused")
            for entry in sorted(os.scandir(directory), key=lambda e: e.name):
                if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                    continue
                merged.update(read_object(self.name, Path(entry.path), check_owner=True))
        return Collected(merged)


def build(options: dict) -> Local:
    return Local(path_option(options, DEFAULT_PATH))
