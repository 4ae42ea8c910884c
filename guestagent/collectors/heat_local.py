"""`heat_local`: the boot metadata Heat puts in user_data (cfn-init-data), shallow-merged."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from guestagent.collectors.base import Collected
from guestagent.collectors.jsonfiles import path_option, read_object
from guestagent.errors import SourceNotConfigured

DEFAULT_PATH = "/var/lib/heat-cfntools/cfn-init-data"


@dataclass
class HeatLocal:
    paths: list[Path]
    name: str = "heat_local"

    def collect(self, previous=None) -> Collected:
        merged: dict = {}
        found = False
        for path in self.paths:
            if not path.exists():
                continue
            merged.update(read_object(self.name, path))
            found = True
        if not found:
            # Normal on an image booted without Heat: skipped quietly, not an outage.
            raise SourceNotConfigured(f"{self.name}: no file at " + ", ".join(map(str, self.paths)))
        return Collected(merged)


def build(options: dict) -> HeatLocal:
    return HeatLocal(path_option(options, DEFAULT_PATH))
