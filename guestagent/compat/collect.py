"""`guestagent collect` / `os-collect-config`: print the metadata, or run the agent.

    --print         poll the sources once and print the merged metadata as the agent sees
                    it (a source that fails counts with its last good copy), then exit;
                    nothing is run and no state is written. `--by-source` prints
                    os-collect-config's shape instead: one object per source name.
    --one-time      one agent pass, then exit (`guestagent --once`).
    --force         the refresh phases run again even though nothing changed (deployments
                    already done are not run again); implies --one-time.
    --splay N       wait a random 0..N seconds before starting (not with --one-time/--force).
    -i/--polling-interval N   seconds between polls of a costly source when idle.
    COLLECTOR ...   the sources to poll (default: the configured ones).

Without `--print` this is the agent itself: os-collect-config's `--command`
(normally os-refresh-config) is what guestagent does on every change.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

from guestagent import config
from guestagent.compat import parser as compat_parser
from guestagent.errors import (
    ConfigError,
    SourceNotConfigured,
    SourceUnavailable,
    StateError,
)

EXIT_OK, EXIT_USAGE = 0, 2
# What `--command` used to name: the refresh run guestagent does itself.
REFRESH_COMMANDS = ("os-refresh-config", "guestagent refresh-config")


def build_parser(prog: str | None = None):
    """The parser of `collect`, spelled as os-collect-config's."""
    p = compat_parser(prog, "collect", "os-collect-config",
                      "collect metadata from the configured sources; print it, or run the "
                      "agent on it")
    p.add_argument("collectors", nargs="*", metavar="COLLECTOR",
                   help="sources to poll, in merge order (default: the configured ones)")
    p.add_argument("--print", dest="print_only", action="store_true",
                   help="print the merged metadata as JSON and exit; runs nothing")
    p.add_argument("--by-source", action="store_true",
                   help="with --print: one object per source, as os-collect-config printed")
    p.add_argument("--one-time", action="store_true", help="one pass, then exit")
    p.add_argument("--force", action="store_true",
                   help="run the refresh phases even if nothing changed (implies --one-time)")
    p.add_argument("--splay", type=float, default=0.0, metavar="SECONDS",
                   help="sleep a random time up to this before starting (0: off; ignored "
                        "with --one-time or --force)")
    p.add_argument("-i", "--polling-interval", type=float, default=None, metavar="SECONDS",
                   help="seconds between polls of a costly source when idle (default 30)")
    p.add_argument("--min-polling-interval", type=float, default=None, metavar="SECONDS",
                   help="accepted for os-collect-config; guestagent polls a source again "
                        "after a change every fast_poll_interval")
    p.add_argument("-c", "--command", default=None,
                   help="accepted for os-collect-config: guestagent runs the refresh phases "
                        "and the deployments itself; any other command is not run")
    p.add_argument("--print-cachedir", action="store_true",
                   help="print where the metadata files for OS_CONFIG_FILES are and exit")
    p.add_argument("--cachedir", type=Path, default=None,
                   help="where those files are written (guestagent's os_config_dir)")
    p.add_argument("--config-file", default=None, metavar="INI",
                   help=f"os-collect-config's INI file (default {config.OLD_CONFIG})")
    p.add_argument("--config", default=None, help="guestagent's YAML config file")
    p.add_argument("--state-dir", default=None, help="guestagent's state directory")
    return p


def _load(args) -> config.Loaded:
    cli: dict = {}
    if args.collectors:
        cli["collectors"] = list(args.collectors)
    if args.polling_interval is not None:
        cli["polling_interval"] = args.polling_interval
    if args.state_dir:
        cli["state_dir"] = str(args.state_dir)
    if args.cachedir:
        cli["os_config_dir"] = args.cachedir
    old = args.config_file if args.config_file else config.OLD_CONFIG
    return config.load(args.config, cli, old_config=old)


def collect_documents(loaded: config.Loaded) -> tuple[dict[str, dict], list[str]]:
    """Poll every configured source once, read-only, as the agent would: each source's
    document (its last good copy from the agent's state when it fails or answers "not
    modified"), and the sources that failed. Sources the metadata adds (Heat's
    os-collect-config key) are polled too."""
    from guestagent import collectors, state
    from guestagent.collectors.base import NOT_MODIFIED
    from guestagent.poller import merge_documents as merge

    settings = loaded.settings()
    store = state.StateDir(settings.state_dir)
    documents: dict[str, dict] = {}
    failed: list[str] = []
    polled: dict[str, dict] = {}
    for _round in range(2):  # the second round: sources the metadata named
        for name in settings.collectors:
            options = settings.source_options(name)
            if polled.get(name) == options:
                continue
            polled[name] = options
            try:
                cached = store.load_source(name)
            except StateError:
                cached = None  # no readable state: nothing to fall back on
            try:
                fresh = collectors.build(name, options).collect(cached)
            except SourceNotConfigured:
                fresh = None
            except SourceUnavailable as exc:
                print(f"warning: {exc}" + (" (its last good copy is shown)" if cached else ""),
                      file=sys.stderr)
                failed.append(name)
                fresh = None
            if fresh is not None and fresh is not NOT_MODIFIED:
                documents[name] = fresh.document
            elif cached is not None:
                documents[name] = cached.document
        try:
            renewed = loaded.settings(merge(list(documents.values())))
        except ConfigError:
            break  # the agent ignores a bad os-collect-config key in metadata too
        if renewed.collectors == settings.collectors and all(
                polled.get(n) == renewed.source_options(n) for n in renewed.collectors):
            break
        settings = renewed
    ordered = {n: documents[n] for n in settings.collectors if n in documents}
    return ordered, failed


def by_source(documents: dict[str, dict]) -> dict[str, dict]:
    """os-collect-config's `--print` shape: each source's document under its name, and the
    config of each data deployment (os-apply-config, Heat::Ungrouped) under its own name."""
    from guestagent.deployments import DATA_GROUPS

    shown: dict[str, dict] = {}
    for name, document in documents.items():
        shown[name] = document
        items = document.get("deployments")
        for dep in items if isinstance(items, list) else ():
            if isinstance(dep, dict) and isinstance(dep.get("name"), str) \
                    and dep.get("group", "Heat::Ungrouped") in DATA_GROUPS:
                shown[dep["name"]] = dep.get("config")
    return shown


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run collect; exit 0, 2 for a usage or configuration error, else the agent's code."""
    parser = build_parser(prog)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        loaded = _load(args)
        settings = loaded.settings()
    except ConfigError as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.print_cachedir:
        print(settings.os_config_dir)
        return EXIT_OK
    if args.print_only:
        from guestagent.poller import merge_documents as merge
        documents, _failed = collect_documents(loaded)
        shown = by_source(documents) if args.by_source else merge(list(documents.values()))
        print(json.dumps(shown, indent=1))
        return EXIT_OK
    if args.command and args.command.strip() not in REFRESH_COMMANDS:
        print(f"{parser.prog}: --command {args.command!r} is not run: guestagent runs the "
              "refresh phases and the deployments itself", file=sys.stderr)
    once = args.one_time or args.force
    if args.cachedir or (args.config_file and Path(args.config_file) != Path(config.OLD_CONFIG)):
        # The agent reads those from its YAML file (os_config_dir) or the standard INI path.
        print(f"{parser.prog}: --cachedir and --config-file only go with --print or "
              "--print-cachedir; set os_config_dir in the YAML file (--config) to run the agent",
              file=sys.stderr)
        return EXIT_USAGE
    if args.force:
        # The refresh phases are skipped when the metadata is what was last refreshed.
        (Path(settings.state_dir) / "refreshed.sha256").unlink(missing_ok=True)
    if args.splay > 0 and not once:
        time.sleep(random.uniform(0, args.splay))  # spread many instances started at once
    return _run_agent(args, once)


def _run_agent(args, once: bool) -> int:
    from guestagent import cli

    run = ["--once"] if once else []
    for flag, value in (("--config", args.config), ("--state-dir", args.state_dir),
                        ("--polling-interval", args.polling_interval)):
        if value is not None:
            run += [flag, str(value)]
    if args.collectors:
        run += ["--collectors", ",".join(args.collectors)]
    return cli.cmd_run(cli.run_parser().parse_args(run))
