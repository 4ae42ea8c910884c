"""os-refresh-config compatible refresh phases, run on every metadata change.

Under a base directory (default /usr/libexec/os-refresh-config, override
$OS_REFRESH_CONFIG_BASE_DIR) the phases `pre-configure.d`, `configure.d`,
`post-configure.d` and `migration.d` run in that order. Within a phase the
executables whose names are made of `[A-Za-z0-9_-]` run in numeric-then-name
order (`5-a` before `10-b` before `b`). Every file of `environment.d` is
sourced (bash) before each script, so what it exports reaches the script.
Scripts see `OS_CONFIG_FILES`, the colon-separated JSON files of the current
metadata, most general first. The first failure stops the run, and then the
scripts of `error.d` run (their own failures are only reported).

`guestagent/refresh.d/` beside this module holds the phase scripts the
package ships; an image installs them under the base directory.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from guestagent import process
from guestagent.state import LazySync, ensure_dir, json_bytes, safe_component, write_atomic

log = logging.getLogger("guestagent")

DEFAULT_BASE_DIR = Path("/usr/libexec/os-refresh-config")
PHASES = ("pre-configure.d", "configure.d", "post-configure.d", "migration.d")
ERROR_PHASE = "error.d"
ENVIRONMENT_DIR = "environment.d"
# The scripts this package ships, laid out like a base directory.
SHIPPED = Path(__file__).with_name("refresh.d")
DEFAULT_TIMEOUT = 3600.0
INDEX_NAME = "os_config_files.json"

# Phase scripts of the old agents whose work guestagent does itself: running them too would
# run every deployment twice.
SUPERSEDED = {"55-heat-config": "the old heat-config runner; guestagent runs deployments itself"}

_NAME = re.compile(r"^[A-Za-z0-9_-]+$")
_NUMBER = re.compile(r"^([0-9]+)")
# Sources the environment files given as arguments, then becomes the script.
_WRAPPER = ('n=$1; shift; while [ "$n" -gt 0 ]; do . "$1" || exit 1; shift; n=$((n - 1)); done; '
            'exec "$@"')


@dataclass
class StepResult:
    """How one phase script ended."""

    phase: str
    script: Path
    status_code: int
    duration: float
    timed_out: bool = False
    stderr_tail: str = ""


@dataclass
class RefreshResult:
    """What a refresh run did: the scripts that ran, the one that failed, and error.d's runs."""

    steps: list[StepResult] = field(default_factory=list)
    failed: StepResult | None = None
    error_steps: list[StepResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.failed is None

    def summary(self) -> str:
        """One line for the log."""
        if self.ok:
            return f"refresh: {len(self.steps)} phase scripts ran"
        why = "timed out" if self.failed.timed_out else f"exited {self.failed.status_code}"
        return (f"refresh: {self.failed.phase}/{self.failed.script.name} {why}; "
                f"{len(self.error_steps)} error.d scripts ran: {self.failed.stderr_tail}")


def base_dir_from_env(environ: Mapping[str, str] | None = None) -> Path:
    """$OS_REFRESH_CONFIG_BASE_DIR, else the os-refresh-config default."""
    environ = os.environ if environ is None else environ
    return Path(environ.get("OS_REFRESH_CONFIG_BASE_DIR") or DEFAULT_BASE_DIR)


def _order(path: Path) -> tuple:
    number = _NUMBER.match(path.name)
    return (0, int(number.group(1)), path.name) if number else (1, 0, path.name)


def phase_scripts(directory: Path) -> list[Path]:
    """The executables of one phase directory, in run order; other files are ignored."""
    if not directory.is_dir():
        return []
    scripts = [p for p in directory.iterdir()
               if _NAME.match(p.name) and p.is_file() and os.access(p, os.X_OK)]
    return sorted(scripts, key=_order)


def environment_files(base_dir: Path) -> list[Path]:
    """The files of environment.d, in the same order as phase scripts."""
    directory = base_dir / ENVIRONMENT_DIR
    if not directory.is_dir():
        return []
    return sorted((p for p in directory.iterdir() if p.is_file() and not p.name.startswith(".")),
                  key=_order)


def write_config_files(directory: Path, documents: Mapping[str, dict],
                       lazy: LazySync | None = None) -> list[Path]:
    """Write each source's document as `<directory>/<source>.json` (0600) and the index file.

    `documents` is ordered most general first; the returned paths are what
    OS_CONFIG_FILES lists, and `os_config_files.json` lists them for readers
    outside a refresh run (`guestagent apply-config --key ...` from a shell). Through `lazy`
    they are synced later (rebuilt from the sources if a crash loses them).
    """
    ensure_dir(directory)
    write = lazy.write if lazy is not None else write_atomic
    paths = []
    for name, document in documents.items():
        path = directory / f"{safe_component(name)}.json"
        write(path, json_bytes(document))
        paths.append(path)
    write(directory / INDEX_NAME, json.dumps([str(p) for p in paths]).encode())
    return paths


def _run_script(phase: str, script: Path, env_files: Sequence[Path], env: Mapping[str, str],
                log_dir: Path, timeout: float) -> StepResult:
    stem = f"{safe_component(phase)}-{safe_component(script.name)}"
    argv = ["/bin/bash", "-c", _WRAPPER, "guestagent-refresh", str(len(env_files)),
            *env_files, script]
    proc = process.run(argv, env=env, cwd=script.parent, timeout=timeout,
                       stdout_path=log_dir / f"{stem}.stdout",
                       stderr_path=log_dir / f"{stem}.stderr")
    tail = proc.stderr(limit=4096).strip()[-500:] if proc.status_code else ""
    return StepResult(phase, script, proc.status_code, proc.duration, proc.timed_out, tail)


def run_refresh(config_files: Sequence[Path], base_dir: Path | None = None, *,
                env: Mapping[str, str] | None = None, log_dir: Path | None = None,
                timeout: float = DEFAULT_TIMEOUT) -> RefreshResult:
    """Run the refresh phases once against `config_files` (most general first).

    `base_dir` defaults to $OS_REFRESH_CONFIG_BASE_DIR or the os-refresh-config
    path; a missing base directory is nothing to do. Script output goes to
    `<log_dir>/<phase>-<script>.stdout|stderr` (a temporary directory,
    removed afterwards, when not given). `timeout` applies to each script.
    """
    base_dir = Path(base_dir) if base_dir else base_dir_from_env()
    child = process.child_env(env, {
        "OS_CONFIG_FILES": ":".join(str(p) for p in config_files),
        "OS_REFRESH_CONFIG_BASE_DIR": str(base_dir),
        # The shipped configure.d script renders templates with this same Python.
        "GUESTAGENT_PYTHON": sys.executable,
    })
    result = RefreshResult()
    if not base_dir.is_dir():
        return result
    with tempfile.TemporaryDirectory(prefix="guestagent-refresh-") as tmp:
        logs = ensure_dir(Path(log_dir)) if log_dir else Path(tmp)
        env_files = environment_files(base_dir)
        for phase in PHASES:
            for script in phase_scripts(base_dir / phase):
                if script.name in SUPERSEDED:
                    result.skipped.append(f"{phase}/{script.name} skipped: {SUPERSEDED[script.name]}")
                    continue
                step = _run_script(phase, script, env_files, child, logs, timeout)
                result.steps.append(step)
                if step.status_code != 0:
                    result.failed = step
                    break
            if result.failed:
                break
        if result.failed:
            for script in phase_scripts(base_dir / ERROR_PHASE):
                result.error_steps.append(
                    _run_script(ERROR_PHASE, script, env_files, child, logs, timeout))
    return result


def refresh_on_change(state_root: Path, os_config_dir: Path, documents: Mapping[str, dict],
                      digest: str, timeout: float, lazy: LazySync) -> None:
    """os-refresh-config's job on a metadata change: write the per-source files that
    OS_CONFIG_FILES names, then run the refresh phases (templates render at configure.d/20).

    The digest of what was last refreshed is kept on disk (`refreshed.sha256`): a restart
    with the same metadata (every `--once`) does not run the phases again. The files are
    written through `lazy`, and the digest once they are synced: a crash in between runs
    the phases again after the restart, as os-collect-config did.
    """
    marker = Path(state_root) / "refreshed.sha256"
    try:
        if marker.read_text().strip() == digest:
            return
    except FileNotFoundError:
        pass
    files = write_config_files(os_config_dir, documents, lazy)
    outcome = run_refresh(files, timeout=timeout, log_dir=Path(state_root) / "refresh")
    for skipped in outcome.skipped:
        log.info("refresh: %s", skipped)
    if not outcome.ok:
        # The old agent stopped here and never ran the deployments; they still run.
        # No marker: the next start tries the phases again.
        log.error("%s", outcome.summary())
        return
    if outcome.steps:
        log.info("refresh: %d phase scripts ran", len(outcome.steps))
    lazy.then(marker, digest.encode())
