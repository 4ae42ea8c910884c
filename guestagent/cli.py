"""Command line: argument parsing and sub-commands; nothing else.

    guestagent [options]          the daemon loop
    guestagent --once [options]   one pass in the foreground (exit 0 ok, 1 a deployment or
                                  signal failed, 2 configuration or usage error)
    guestagent status [--json] [--wait [--timeout N]]
                                  every known deployment and where it stands; --wait blocks
                                  until the work settles (exit 0 ok, 1 failed, 2 degraded)
    guestagent doctor [--json]    check sources, hook tools, state directory and clock
    guestagent logs --bundle FILE state and logs in a tarball, secrets redacted
    guestagent collect ...        os-collect-config: --print the metadata, or run the agent
    guestagent apply-config ...   os-apply-config: render templates, or --key queries
    guestagent refresh-config ... os-refresh-config: run the refresh phases by hand
    guestagent notify DEP.json    heat-config-notify: signal a response (JSON on stdin)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path

from guestagent import __version__, config
from guestagent.errors import ConfigError, StateError

log = logging.getLogger("guestagent")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# `--once`: what a run can end in, and its exit code (the README's table). The worst wins.
ONCE_EXIT_CODES = {
    "ok": EXIT_OK,                      # every deployment it ran succeeded and was signalled
    "deployment failed": EXIT_FAILED,
    "signal not delivered": EXIT_FAILED,
    "source failed": EXIT_FAILED,       # could not be read, or served an invalid document
    "cannot record progress": EXIT_FAILED,  # full disk or permissions under the state dir
    "configuration error": EXIT_USAGE,  # also usage errors; reported before any pass
}


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
    # Numbers stay text here: the settings schema checks them (finite, in range) and says
    # what is allowed, the same way for every origin.
    p.add_argument("--polling-interval", metavar="SECONDS",
                   help="seconds between polls of a costly source (Heat API, CFN, EC2, Zaqar, "
                        "config drive) when idle (30)")
    p.add_argument("--conditional-polling-interval", metavar="SECONDS",
                   help="seconds between polls of a cheap source (a conditional GET that can "
                        "be answered 304, local files) when idle (1)")
    p.add_argument("--splay", metavar="SECONDS",
                   help="spread costly polls: each instance keeps a phase offset within this "
                        "many seconds (default: the polling interval; 0 = off)")
    p.add_argument("--hooks-dir", action="append",
                   help="extra directory searched for hooks before the built-in ones")
    p.add_argument("--deployed-dir", help="old heat-config deployed markers "
                                          "(default /var/lib/heat-config/deployed)")
    p.add_argument("--hook-timeout", metavar="SECONDS",
                   help="default seconds a hook may run (3600)")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR")
    return p


def _state_parser(name: str, description: str) -> argparse.ArgumentParser:
    p = _Parser(prog=f"guestagent {name}", description=description)
    p.add_argument("--config", help="YAML config file (for its state_dir and sources)")
    p.add_argument("--state-dir", help=f"state directory (default {config.DEFAULT_STATE_DIR})")
    return p


def status_parser() -> argparse.ArgumentParser:
    p = _state_parser("status", "Show every known deployment.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--wait", action="store_true",
                   help="wait until every known deployment is finished and signalled; exit 0 "
                        "all good, 1 something failed, 2 degraded (source unreachable, signal "
                        "pending, unfinished at the timeout or no agent running)")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="seconds --wait waits at most (600)")
    return p


def doctor_parser() -> argparse.ArgumentParser:
    p = _state_parser("doctor", "Check sources, hook tools, state directory and clock.")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def logs_parser() -> argparse.ArgumentParser:
    p = _state_parser("logs", "Bundle state and logs, secrets redacted, for a bug report.")
    p.add_argument("--bundle", required=True, metavar="FILE", help="tarball to write (.tar.gz)")
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
    for name in ("state_dir", "polling_interval", "conditional_polling_interval", "splay",
                 "deployed_dir", "hook_timeout", "log_level"):
        if getattr(args, name, None) is not None:
            cli[name] = getattr(args, name)
    if args.hooks_dir:
        cli["hooks_dirs"] = args.hooks_dir
    return cli


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "status":
        return cmd_status(status_parser().parse_args(argv[1:]))
    if argv and argv[0] == "doctor":
        return cmd_doctor(doctor_parser().parse_args(argv[1:]))
    if argv and argv[0] == "logs":
        return cmd_logs(logs_parser().parse_args(argv[1:]))
    if argv and argv[0] in ("collect", "apply-config", "refresh-config", "notify"):
        # The old tools' commands (os-collect-config & co.), guestagent/compat/.
        from guestagent import compat
        return compat.run_subcommand(argv[0], argv[1:])
    return cmd_run(run_parser().parse_args(argv))


def cmd_run(args: argparse.Namespace) -> int:
    from guestagent import logs
    from guestagent.agent import Agent

    try:
        loaded = config.load(args.config, _cli_settings(args))
        settings = loaded.settings()
        logs.setup(settings.log_level)
        # What the agent runs (the apply-config hook, scripts calling os-apply-config --key)
        # finds this agent's metadata files, whatever its state directory.
        os.environ["GUESTAGENT_OS_CONFIG_DIR"] = str(settings.os_config_dir.absolute())
        agent = Agent(loaded)
        agent.loaded_path = args.config
        agent.statedir.lock()
    except (ConfigError, StateError) as exc:
        print(f"guestagent: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.once:
        try:
            result = agent.run_pass(signals_now=True)
        except StateError as exc:
            # Full disk or permissions: nothing further was marked done; say why and fail.
            log.error("cannot make progress: %s", exc)
            return ONCE_EXIT_CODES["cannot record progress"]
        outcomes = once_outcomes(result, agent.poller.errors)
        for outcome, detail in outcomes:
            log.warning("%s: %s", outcome, detail)
        return max((ONCE_EXIT_CODES[o] for o, _ in outcomes), default=EXIT_OK)
    from guestagent import systemd  # the daemon only: --once stays small and quick

    signal.signal(signal.SIGTERM, lambda *_: agent.stop())
    signal.signal(signal.SIGINT, lambda *_: agent.stop())
    signal.signal(signal.SIGHUP, lambda *_: agent.request_reload())
    log.info("guestagent %s started (sources: %s)", __version__, ", ".join(settings.collectors))
    service = systemd.ServiceNotifier()  # READY after the first pass, watchdog, STOPPING
    agent.run_forever(service.on_pass)
    service.stopping()
    log.info("guestagent stopped")
    return EXIT_OK


def once_outcomes(result, errors: dict) -> list[tuple[str, str]]:
    """What went wrong in a `--once` pass, as (ONCE_EXIT_CODES key, detail) pairs; none: ok.
    `errors`: each failing source's last error (an unreachable source, or one that served
    a document nothing could run from)."""
    outcomes = [(key, ", ".join(sorted(names))) for key, names in (
        ("deployment failed", result.failed), ("signal not delivered", result.unsignalled))
        if names]
    outcomes += [("source failed", f"{name}: "
                   + errors.get(name, "unavailable").removeprefix(f"source {name}: "))
                 for name in sorted(result.sources_failed)]
    return outcomes


def _settings_for(args: argparse.Namespace, need_state: bool = False):
    """Settings from --config and --state-dir, or None after printing why not (also when
    `need_state` and the state directory does not exist)."""
    try:
        cli = {"state_dir": args.state_dir} if args.state_dir else {}
        settings = config.load(args.config, cli).settings()
    except ConfigError as exc:
        print(f"guestagent: {exc}", file=sys.stderr)
        return None
    if need_state and not settings.state_dir.is_dir():
        print(f"guestagent: no state directory at {settings.state_dir}", file=sys.stderr)
        return None
    return settings


def cmd_status(args: argparse.Namespace) -> int:
    from guestagent import status

    settings = _settings_for(args, need_state=True)
    if settings is None:
        return EXIT_USAGE
    try:
        snap = status.wait(settings.state_dir, args.timeout) if args.wait \
            else status.snapshot(settings.state_dir)
    except StateError as exc:
        print(f"guestagent: {exc}", file=sys.stderr)
        return EXIT_USAGE
    rows = [status.status_row(e) for e in snap.entries]
    verdict = snap.verdict()
    if args.json and args.wait:
        json.dump({"verdict": ("ok", "failed", "degraded")[verdict], "reasons": snap.reasons,
                   "agent_running": snap.agent_running, "deployments": rows}, sys.stdout,
                  indent=1)
        sys.stdout.write("\n")
    elif args.json:
        json.dump(rows, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print(status.table(rows))
        for reason in snap.reasons if args.wait else ():
            print(f"  {reason}")
    return verdict if args.wait else EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from guestagent import doctor

    settings = _settings_for(args)
    if settings is None:
        return EXIT_USAGE
    checks = doctor.run(settings)
    if args.json:
        json.dump(doctor.as_json(checks), sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        print("\n".join(c.line() for c in checks))
    return EXIT_FAILED if any(c.status == doctor.FAIL for c in checks) else EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    from guestagent import bundle

    settings = _settings_for(args, need_state=True)
    if settings is None:
        return EXIT_USAGE
    try:
        members = bundle.build(settings.state_dir, Path(args.bundle))
    except StateError as exc:
        print(f"guestagent: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"wrote {args.bundle} ({len(members)} files, secrets redacted)")
    return EXIT_OK
