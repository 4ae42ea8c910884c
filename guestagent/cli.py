"""Command line: argument parsing and sub-commands; nothing else.

    guestagent [options]          the daemon loop
    guestagent --once [options]   one pass in the foreground (exit 0 ok, 1 a deployment or
                                  signal failed, 2 configuration or usage error)
    guestagent status [--json]    every known deployment and where it stands
    guestagent apply-config ...   os-apply-config: render templates, or --key queries
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from pathlib import Path

from guestagent import __version__, config
from guestagent.errors import ConfigError, StateError

log = logging.getLogger("guestagent")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, as promised
        self.exit(EXIT_USAGE, f"guestagent: {message}\n")


def run_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="guestagent", description="Run OpenStack Heat software deployments.")
    p.add_argument("--version", action="version", version=f"guestagent {__version__}")
    p.add_argument("--once", action="store_true", help="run one pass in the foreground and exit")
    p.add_argument("--config", help=f"YAML config file (default {config.DEFAULT_CONFIG})")
    p.add_argument("--state-dir", help=f"state directory (default {config.DEFAULT_STATE_DIR})")
    p.add_argument("--collectors", help="comma-separated sources, e.g. heat_local,local,request")
    p.add_argument("--request-metadata-url", help="URL for the request source (POLL_TEMP_URL)")
    p.add_argument("--local-path", action="append", help="directory for the local source")
    p.add_argument("--heat-local-path", action="append", help="file for the heat_local source")
    p.add_argument("--polling-interval", type=float, help="seconds between polls when idle")
    p.add_argument("--hooks-dir", action="append",
                   help="extra directory searched for hooks before the built-in ones")
    p.add_argument("--deployed-dir", help="old heat-config deployed markers "
                                          "(default /var/lib/heat-config/deployed)")
    p.add_argument("--hook-timeout", type=float, help="default seconds a hook may run (3600)")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR")
    return p


def status_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="guestagent status", description="Show every known deployment.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--config", help="YAML config file (for its state_dir)")
    p.add_argument("--state-dir", help=f"state directory (default {config.DEFAULT_STATE_DIR})")
    return p


def _cli_settings(args: argparse.Namespace) -> dict:
    cli: dict = {}
    if args.collectors:
        cli["collectors"] = [c.strip() for c in args.collectors.split(",") if c.strip()]
    if args.request_metadata_url:
        cli["request"] = {"metadata_url": args.request_metadata_url}
    if args.local_path:
        cli["local"] = {"path": args.local_path}
    if args.heat_local_path:
        cli["heat_local"] = {"path": args.heat_local_path}
    for name in ("state_dir", "polling_interval", "deployed_dir", "hook_timeout", "log_level"):
        if getattr(args, name, None) is not None:
            cli[name] = getattr(args, name)
    if args.hooks_dir:
        cli["hooks_dirs"] = args.hooks_dir
    return cli


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "status":
        return cmd_status(status_parser().parse_args(argv[1:]))
    if argv and argv[0] == "apply-config":
        from guestagent import templates
        parser = _Parser(prog="guestagent apply-config",
                         description="Render os-apply-config templates, or query a key.")
        templates.add_arguments(parser)
        return templates.main(parser.parse_args(argv[1:]))
    return cmd_run(run_parser().parse_args(argv))


def cmd_run(args: argparse.Namespace) -> int:
    from guestagent import logs, systemd
    from guestagent.agent import Agent

    try:
        loaded = config.load(args.config, _cli_settings(args))
        settings = loaded.settings()
        logs.setup(settings.log_level)
        agent = Agent(loaded)
        agent.loaded_path = args.config
        agent.state.lock()
    except (ConfigError, StateError) as exc:
        print(f"guestagent: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.once:
        try:
            result = agent.run_pass(force_signals=True)
        except StateError as exc:
            # Full disk or permissions: nothing further was marked done; say why and fail.
            log.error("cannot make progress: %s", exc)
            return EXIT_FAILED
        if result.sources_failed:
            log.warning("sources unavailable this pass: %s", ", ".join(result.sources_failed))
        return EXIT_OK if result.ok else EXIT_FAILED
    signal.signal(signal.SIGTERM, lambda *_: agent.stop())
    signal.signal(signal.SIGINT, lambda *_: agent.stop())
    signal.signal(signal.SIGHUP, lambda *_: agent.request_reload())
    log.info("guestagent %s started (sources: %s)", __version__, ", ".join(settings.collectors))
    service = systemd.ServiceNotifier()  # READY after the first pass, watchdog, STOPPING
    agent.run_forever(service.on_pass)
    service.stopping()
    log.info("guestagent stopped")
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    from guestagent.state import StateDir

    try:
        cli = {"state_dir": args.state_dir} if args.state_dir else {}
        settings = config.load(args.config, cli).settings()
    except ConfigError as exc:
        print(f"guestagent: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not settings.state_dir.is_dir():
        print(f"guestagent: no state directory at {settings.state_dir}", file=sys.stderr)
        return EXIT_USAGE
    try:
        entries = sorted(StateDir(settings.state_dir).journal().values(),
                         key=lambda e: e.received_at)
    except StateError as exc:
        print(f"guestagent: {exc}", file=sys.stderr)
        return EXIT_USAGE
    rows = [status_row(e) for e in entries]
    if args.json:
        json.dump(rows, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(f"{'ID':36}  {'NAME':24}  {'GROUP':14}  {'STATE':9}  {'CODE':>4}  "
              f"{'LAST RUN':19}  SIGNAL")
        for r in rows:
            code = "" if r["status_code"] is None else str(r["status_code"])
            print(f"{r['id'][:36]:36}  {r['name'][:24]:24}  {r['group'][:14]:14}  "
                  f"{r['state']:9}  {code:>4}  {r['last_run'] or '-':19}  {r['signal']}")
    return EXIT_OK


def status_row(entry) -> dict:
    """One deployment's status, for people and for --json."""
    if entry.state == "signalled":
        signal_state = "delivered" if entry.transport != "NO_SIGNAL" else "not needed"
    elif entry.signal_final:
        signal_state = "refused"
    elif entry.state == "finished":
        signal_state = "pending"
    else:
        signal_state = "-"
    last = entry.finished_at or entry.started_at
    return {"id": entry.id, "name": entry.name, "group": entry.group, "action": entry.action,
            "state": entry.state, "status_code": entry.status_code, "attempts": entry.attempts,
            "last_run": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(last)) if last else None,
            "signal": signal_state, "signal_transport": entry.transport,
            "signal_error": entry.signal_error, "error": entry.error}
