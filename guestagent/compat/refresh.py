"""`guestagent refresh-config` / `os-refresh-config`: run the refresh phases by hand.

The phases `pre-configure.d`, `configure.d`, `post-configure.d` and
`migration.d` under `$OS_REFRESH_CONFIG_BASE_DIR` (default
/usr/libexec/os-refresh-config) run in order; the first script that fails
stops the run, the scripts of `error.d` run, and the exit status is 1
(0 when everything passed). Each script's output is shown when it has
finished. As os-refresh-config, one run at a time (`--lockfile`; a held
lock exits with its errno). Scripts see `OS_CONFIG_FILES`: the variable when
set, else the files of the agent (`--state-dir`, or the agent that started
us), else os-collect-config's index.
"""

from __future__ import annotations

import errno
import os
import sys
import tempfile
from pathlib import Path

from guestagent import refresh, state, templates
from guestagent.compat import parser as compat_parser
from guestagent.errors import StateError
from guestagent.state import safe_component

DEFAULT_LOCKFILE = "/var/run/os-refresh-config.lock"
EXIT_OK, EXIT_FAILED = 0, 1


def build_parser(prog: str | None = None):
    """The parser of `refresh-config`, spelled as os-refresh-config's."""
    p = compat_parser(prog, "refresh-config", "os-refresh-config",
                      "run the refresh phases (pre-configure.d, configure.d, post-configure.d, "
                      "migration.d; error.d on a failure) under $OS_REFRESH_CONFIG_BASE_DIR")
    p.add_argument("--print-base", action="store_true", help="print the base directory and exit")
    p.add_argument("--print-phases", action="store_true",
                   help="print the phases (tab-separated) and exit")
    p.add_argument("--log-level", default="INFO",
                   choices=["ERROR", "WARN", "CRITICAL", "INFO", "DEBUG"],
                   help="INFO shows each script as it ends; ERROR only failures")
    p.add_argument("--lockfile", default=DEFAULT_LOCKFILE,
                   help=f"lock held while running (default {DEFAULT_LOCKFILE})")
    p.add_argument("--timeout", type=int, default=None,
                   help="seconds each script may run before its process group is killed")
    p.add_argument("--state-dir", type=Path, default=None,
                   help="guestagent: OS_CONFIG_FILES from the agent with this state directory")
    return p


def config_files(state_dir: Path | None, environ=None) -> list[Path]:
    """What OS_CONFIG_FILES lists for the scripts (see the module docstring)."""
    environ = os.environ if environ is None else environ
    if environ.get("OS_CONFIG_FILES"):
        return templates.config_files_from_env(environ)
    if state_dir is not None:
        from guestagent import config
        directory = config.load(None, {"state_dir": str(state_dir)}).settings().os_config_dir
        return templates.read_index(directory / templates.INDEX_NAME)
    if environ.get("GUESTAGENT_OS_CONFIG_DIR"):
        return templates.read_index(Path(environ["GUESTAGENT_OS_CONFIG_DIR"])
                                    / templates.INDEX_NAME)
    return templates.read_index(templates.DEFAULT_INDEX)


def _show(steps, logs: Path, verbose: bool) -> None:
    """Each script's captured output, then one line saying how it ended."""
    for step in steps:
        stem = f"{safe_component(step.phase)}-{safe_component(step.script.name)}"
        for suffix, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)):
            path = logs / f"{stem}.{suffix}"
            if path.exists() and (verbose or step.status_code):
                stream.write(path.read_text(errors="replace"))
                stream.flush()
        if verbose or step.status_code:
            how = "timed out" if step.timed_out else f"exited {step.status_code}"
            print(f"[{step.phase}] {step.script.name} {how} ({step.duration:.1f}s)",
                  file=sys.stderr)


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run the phases once; 0 when all passed, 1 after error.d ran, errno when locked."""
    parser = build_parser(prog)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    base = refresh.base_dir_from_env()
    if args.print_base:
        print(base)
        return EXIT_OK
    if args.print_phases:
        print("\t".join(p[: -len(".d")] for p in refresh.PHASES))
        return EXIT_OK
    try:
        lock = state.hold_lock(Path(args.lockfile), f"locked by pid {os.getpid()}\n")
    except state.LockHeld as exc:
        print(f"{parser.prog}: could not lock {args.lockfile}: {exc}", file=sys.stderr)
        return errno.EAGAIN  # as os-refresh-config: the errno of the failed lock
    except StateError as exc:
        print(f"{parser.prog}: could not lock {args.lockfile}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        verbose = args.log_level in ("INFO", "DEBUG")
        with tempfile.TemporaryDirectory(prefix="guestagent-refresh-config-") as tmp:
            outcome = refresh.run_refresh(
                config_files(args.state_dir), base, log_dir=Path(tmp),
                timeout=float(args.timeout) if args.timeout else refresh.DEFAULT_TIMEOUT)
            _show(outcome.steps, Path(tmp), verbose)
            for line in outcome.skipped:
                print(f"{parser.prog}: {line}", file=sys.stderr)
            if outcome.ok:
                return EXIT_OK
            print(f"{parser.prog}: {outcome.summary()}", file=sys.stderr)
            _show(outcome.error_steps, Path(tmp), verbose)
            return EXIT_FAILED
    finally:
        os.ftruncate(lock, 0)
        os.close(lock)


if __name__ == "__main__":
    sys.exit(main())
