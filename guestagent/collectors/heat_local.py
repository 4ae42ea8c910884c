"""`heat_local`: the boot metadata Heat puts in user_data (cfn-init-data), shallow-merged.

The instance remembers the stat signature of the files it last read: a poll that finds them
unchanged answers NOT_MODIFIED without parsing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from guestagent.collectors.jsonfiles import FileSource, Signature, path_option, read_object
from guestagent.errors import SourceNotConfigured

DEFAULT_PATH = "/var/lib/heat-cfntools/cfn-init-data"


@dataclass
class HeatLocal(FileSource):
    paths: list[Path]
    name: str = "heat_local"

    def _read(self, signature: Signature) -> dict:
        found = [path for path, st in signature if st is not None]
        if not found:
            # Normal on an image booted without Heat: skipped quietly, not an outage.
            raise SourceNotConfigured(f"{self.name}: no file at " + ", ".join(map(str, self.paths)))
        merged: dict = {}
        for path in found:
            merged.update(read_object(self.name, Path(path)))
        return merged

    def _signature(self) -> Signature:
        return tuple((str(path), self._stamp(path, (FileNotFoundError, NotADirectoryError)))
                     for path in self.paths)


def build(options: dict) -> HeatLocal:
    return HeatLocal(path_option(options, DEFAULT_PATH))
