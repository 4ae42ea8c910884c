"""Command line: argument parsing and sub-commands; nothing else.

`guestagent --help` lists the commands (COMMANDS below) and `guestagent help CMD` shows one
command's options and exit codes. The old tools' commands (collect, apply-config,
refresh-config, notify) live in guestagent/compat/.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
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

# Every command, one line each: `guestagent --help` prints these, `help CMD` the details.
COMMANDS = {
    "status": "deployments and failing sources; --wait: a verdict as exit code",
    "doctor": "check sources, hook tools, Docker engine, state directory, clock",
    "logs": "bug-report tarball (--bundle): state, config, doctor, logs; redacted",
    "analyze": "each deployment's timeline: received, started, finished, signalled",
    "collect": "os-collect-config: --print the merged metadata, or run one pass",
    "apply-config": "os-apply-config: render the template tree, or query a key",
    "refresh-config": "os-refresh-config: run the refresh phases by hand",
    "notify": "heat-config-notify: signal a deployment's response (JSON on stdin)",
    "help": "a command's options and exit codes: guestagent help COMMAND",
}
RUN_EPILOG = ("commands:\n" + "".join(f"  {n:15} {t}\n" for n, t in COMMANDS.items())
              + "  (none)          run the agent: as a daemon, or one pass with --once\n\n"
              "exit codes (the agent): 0 ok; 1 a deployment, its signal or a source failed "
              "(--once), or "
              "the state\ncould not be written during the pass; 2 configuration or usage "
              "error, or the state\ndirectory unusable or locked by another agent")
STATUS_EXITS = ("exit codes: 0 shown (without --wait), or all good; 1 a deployment failed "
                "or Heat refused\nits signal; 2 degraded: a source unreachable, a signal "
                "pending, work unfinished at\nthe timeout or with no agent running to "
                "finish it, or not started yet (the agent had\nnot finished its first pass "
                "when --timeout passed); 2 also for a usage error or, without\n--wait, a "
                "missing state directory")


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # one line, exit 2, as promised
        self.exit(EXIT_USAGE, f"guestagent: {message}\n")


def run_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="guestagent", usage="guestagent [COMMAND] [options]",
                description="Run OpenStack Heat software deployments.", epilog=RUN_EPILOG)
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
    p = _state_parser("status", "Show every known deployment and the sources that fail.")
    p.epilog = STATUS_EXITS
    p.add_argument("--json", action="store_true",
                   help="machine-readable output, schema 1 (see guestagent.statusreport)")
    p.add_argument("--wait", action="store_true",
                   help="wait until the agent has finished its first pass since boot and "
                        "every known deployment is finished and signalled, then give the "
                        "verdict as the exit code")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="seconds --wait waits at most (600)")
    return p


def doctor_parser() -> argparse.ArgumentParser:
    p = _state_parser("doctor", "Check sources, hook tools, the Docker engine, the state "
                                "directory and the clock.")
    p.epilog = "exit codes: 0 no check failed (warnings allowed); 1 a check failed; 2 usage error"
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def logs_parser() -> argparse.ArgumentParser:
    p = _state_parser("logs", "Bundle state, configuration, doctor output and logs, secrets "
                              "redacted, for a bug report.")
    p.epilog = "exit codes: 0 written; 1 could not be written; 2 usage error or no state directory"
    p.add_argument("--bundle", required=True, metavar="FILE", help="tarball to write (.tar.gz)")
    return p


def analyze_parser() -> argparse.ArgumentParser:
    p = _state_parser("analyze", "Each deployment's timeline from the journal: received, "
                                 "started, finished, signalled, durations and attempts.")
    p.epilog = "exit codes: 0 shown; 2 usage error or no state directory"
    p.add_argument("--json", action="store_true", help="machine-readable output, schema 1")
    return p


PARSERS = {"status": status_parser, "doctor": doctor_parser, "logs": logs_parser,
           "analyze": analyze_parser}
COMPAT = ("collect", "apply-config", "refresh-config", "notify")


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
    try:
        return _dispatch(argv)
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, without a traceback at exit.
        _stdout_to_devnull()
        return EXIT_FAILED


def _dispatch(argv: list[str]) -> int:
    command = argv[0] if argv else None
    if command == "help":
        return cmd_help(argv[1:])
    if command in COMPAT:
        from guestagent import compat  # the old tools' commands (os-collect-config & co.)
        return compat.run_subcommand(command, argv[1:])
    if command in PARSERS:
        args = PARSERS[command]().parse_args(argv[1:])
        return {"status": cmd_status, "doctor": cmd_doctor, "logs": cmd_logs,
                "analyze": cmd_analyze}[command](args)
    return cmd_run(run_parser().parse_args(argv))


def cmd_help(topics: list[str]) -> int:
    """`guestagent help [COMMAND]`: the command's --help, or the overview."""
    if len(topics) > 1 or (topics and topics[0] not in COMMANDS):
        print(f"guestagent: no command {' '.join(topics)!r}; commands: {', '.join(COMMANDS)}",
              file=sys.stderr)
        return EXIT_USAGE
    if topics and topics[0] in COMPAT:
        from guestagent import compat
        return compat.run_subcommand(topics[0], ["--help"])
    parser = PARSERS[topics[0]]() if topics and topics[0] in PARSERS else run_parser()
    emit(parser.format_help().rstrip("\n"))
    return EXIT_OK


def emit(text: str) -> None:
    """Print `text` to stdout; a closed pipe (`| head`) ends the output quietly."""
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        _stdout_to_devnull()


def _stdout_to_devnull() -> None:
    # Python flushes stdout again at exit; pointing fd 1 at /dev/null keeps that quiet.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


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
    from guestagent import health, status, statusreport

    # --wait waits for the state directory too: on a booting instance it may not exist yet.
    settings = _settings_for(args, need_state=not args.wait)
    if settings is None:
        return EXIT_USAGE
    root = settings.state_dir
    deadline = time.monotonic() + args.timeout
    try:
        ready = health.wait_first_pass(root, args.timeout) if args.wait else health.read(root)
        snap = None
        if root.is_dir():
            left = max(0.0, deadline - time.monotonic())
            snap = status.wait(root, left) if args.wait and ready.first_pass_done \
                else status.snapshot(root)
    except StateError as exc:
        print(f"guestagent: {exc}", file=sys.stderr)
        return EXIT_USAGE
    name, code = statusreport.verdict(snap, ready)
    if args.json:
        emit(json.dumps(statusreport.as_json(snap, ready, name), indent=1))
    else:
        emit(statusreport.text(snap, ready, name, waited=args.wait))
    return code if args.wait else EXIT_OK


def cmd_doctor(args: argparse.Namespace) -> int:
    from guestagent import doctor

    settings = _settings_for(args)
    if settings is None:
        return EXIT_USAGE
    checks = doctor.run(settings)
    if args.json:
        emit(json.dumps(doctor.as_json(checks), indent=1))
    else:
        emit("\n".join(c.line() for c in checks))
    return EXIT_FAILED if any(c.status == doctor.FAIL for c in checks) else EXIT_OK


def cmd_analyze(args: argparse.Namespace) -> int:
    from guestagent import analyze

    settings = _settings_for(args, need_state=True)
    if settings is None:
        return EXIT_USAGE
    try:
        timelines = analyze.timelines(settings.state_dir)
    except StateError as exc:
        print(f"guestagent: {exc}", file=sys.stderr)
        return EXIT_USAGE
    emit(json.dumps(analyze.as_json(timelines), indent=1) if args.json
         else analyze.table(timelines))
    return EXIT_OK


def cmd_logs(args: argparse.Namespace) -> int:
    from guestagent import bundle

    settings = _settings_for(args, need_state=True)
    if settings is None:
        return EXIT_USAGE
    try:
        # Effective settings: the metadata's os-collect-config key applied, as the agent does.
        cli = {"state_dir": args.state_dir} if args.state_dir else {}
        effective = config.load(args.config, cli).settings(
            bundle.cached_metadata(settings.state_dir))
        members = bundle.build(settings.state_dir, Path(args.bundle),
                               bundle.diagnostics(effective))
    except (StateError, ConfigError) as exc:
        print(f"guestagent: {exc}", file=sys.stderr)
        return EXIT_FAILED
    print(f"wrote {args.bundle} ({len(members)} files, secrets redacted)")
    return EXIT_OK
