"""The agent as a whole process against metadata served on loopback (run by hand, never in
the test suite), side by side with os-collect-config where the two are comparable.

    python3 bench/agent.py                 # everything, about ten minutes
    python3 bench/agent.py --quick         # fewer repetitions, N up to 100
    python3 bench/agent.py --no-occ        # skip os-collect-config

Both agents run from their own virtualenv with a regular (not editable) install, as on an
image: guestagent from this checkout in bench/.venvs/guestagent, os-collect-config from
PyPI in bench/.venvs/occ (created on first run).

Measured: `--once` with nothing to do (wall, peak RSS), the idle daemon's CPU time and
requests per poll, change-to-hook latency at the default settings (the first change after
a quiet spell, and a change during a stack operation), and N script deployments run and
signalled back (N = 1, 100, 1000).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENVS = REPO / "bench" / ".venvs"
TICK_NS = 1e9
FAST_POLL_PERIOD = 120  # guestagent's default: polls every second this long after a change


class Server:
    """Metadata with ETag (304 on If-None-Match) at /metadata (and /metadata/<name>, one
    document each); signals PUT to /signal/<name>."""

    def __init__(self):
        self.lock = threading.Condition()
        self.docs: dict[str, tuple[bytes, str]] = {"metadata": (b"{}", '"0"')}
        self.gets = self.not_modified = 0
        self.signals: dict[str, float] = {}
        self.duplicates = 0
        handler = type("H", (_Handler,), {"server_state": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def set_metadata(self, doc: dict, path: str = "metadata") -> None:
        body = json.dumps(doc).encode()
        with self.lock:
            self.docs[path] = (body, '"' + hashlib.md5(body).hexdigest() + '"')

    def wait_signals(self, count: int, timeout: float) -> bool:
        with self.lock:
            return self.lock.wait_for(lambda: len(self.signals) >= count, timeout)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_state: Server

    def log_message(self, *args):
        pass

    def do_GET(self):
        s = self.server_state
        with s.lock:
            s.gets += 1
            body, etag = s.docs.get(self.path.strip("/").split("?")[0], (b"{}", '"0"'))
        if self.headers.get("If-None-Match") == etag:
            with s.lock:
                s.not_modified += 1
            self._reply(304, b"", etag)
        else:
            self._reply(200, body, etag)

    def do_PUT(self):
        s = self.server_state
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        name = self.path.rsplit("/", 1)[-1]
        with s.lock:
            if name in s.signals:
                s.duplicates += 1
            s.signals.setdefault(name, time.monotonic())
            s.lock.notify_all()
        self._reply(201, b"", None)

    do_POST = do_PUT

    def _reply(self, status, body, etag):
        self.send_response(status)
        if etag:
            self.send_header("ETag", etag)
        if status != 304:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def deployments(server: Server, count: int, prefix: str, script: str = "#!/bin/sh\necho ok\n"):
    return [{"id": f"{prefix}-{i:05d}", "name": f"{prefix}-{i:05d}", "group": "script",
             "config": script, "options": {}, "outputs": [],
             "inputs": [{"name": "deploy_signal_transport", "value": "TEMP_URL_SIGNAL"},
                        {"name": "deploy_signal_id",
                         "value": f"{server.url}/signal/{prefix}-{i:05d}?temp_url_sig=x"},
                        {"name": "deploy_signal_verb", "value": "PUT"}]}
            for i in range(count)]


# ---- the two agents ----------------------------------------------------------------------

def venv(name: str, *packages: str) -> Path:
    """A virtualenv under bench/.venvs with `packages` installed (once)."""
    root = VENVS / name
    python = root / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
    return root


class GuestAgent:
    name = "guestagent"

    def __init__(self, refresh: bool):
        root = VENVS / "guestagent"
        if refresh and root.exists():
            subprocess.run([str(root / "bin" / "python"), "-m", "pip", "install", "-q",
                            "--force-reinstall", "--no-deps", str(REPO)], check=True)
        self.bin = venv("guestagent", str(REPO)) / "bin" / "guestagent"

    def argv(self, server: Server, state: Path, *, once: bool, config: Path | None = None,
             path: str = "metadata"):
        argv = [str(self.bin), "--config", str(config or "/dev/null"), "--state-dir", str(state),
                "--deployed-dir", str(state / "no-markers"), "--collectors", "request",
                "--request-metadata-url", f"{server.url}/{path}"]
        return argv + (["--once"] if once else [])


class OsCollectConfig:
    name = "os-collect-config"

    def __init__(self):
        self.bin = venv("occ", "os-collect-config") / "bin" / "os-collect-config"

    def argv(self, server: Server, state: Path, *, once: bool, polling_interval: int = 30):
        state.mkdir(parents=True, exist_ok=True)
        argv = [str(self.bin), "--config-file", "/dev/null", "--cachedir", str(state),
                "--backup-cachedir", str(state / "backup"), "--splay", "0",
                "--request-metadata-url", f"{server.url}/metadata",
                "--polling-interval", str(polling_interval),
                "--min-polling-interval", str(min(polling_interval, 1)), "--command", "true"]
        return argv + (["--one-time"] if once else []) + ["request"]  # collectors: positional


# ---- measurements --------------------------------------------------------------------------

def run_measured(argv: list[str]) -> tuple[float, float, int]:
    """(wall seconds, peak RSS MiB, exit code) of one process run to completion."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_maxrss / 1024, proc.returncode


def once_noop(agent, server: Server, tmp: Path, runs: int) -> dict:
    server.set_metadata({})
    state = tmp / f"{agent.name}-noop"
    run_measured(agent.argv(server, state, once=True))  # first run fills the cache
    walls, rss = [], []
    for _ in range(runs):
        wall, peak, code = run_measured(agent.argv(server, state, once=True))
        assert code == 0, f"{agent.name} --once exited {code}"
        walls.append(wall)
        rss.append(peak)
    return {"wall": statistics.median(walls), "rss": max(rss)}


def once_noop_local(agent: GuestAgent, tmp: Path, runs: int) -> dict:
    """`--once` with nothing to do, reading boot metadata from a file (heat_local)."""
    boot = tmp / "cfn-init-data"
    boot.write_text("{}")
    argv = [str(agent.bin), "--once", "--config", "/dev/null", "--state-dir",
            str(tmp / "noop-local"), "--deployed-dir", str(tmp / "no-markers"),
            "--collectors", "heat_local", "--heat-local-path", str(boot)]
    run_measured(argv)
    results = [run_measured(argv) for _ in range(runs)]
    assert all(code == 0 for _, _, code in results)
    return {"wall": statistics.median(w for w, _, _ in results),
            "rss": max(r for _, r, _ in results)}


def cpu_ns(pid: int) -> int:
    """CPU time of every thread of `pid`, in nanoseconds (schedstat: no 10 ms tick rounding)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def idle(agent, server: Server, tmp: Path, seconds: float) -> dict:
    """CPU and requests per poll of a daemon with nothing changing: guestagent at its default
    settings past the fast-poll window (the ETag source is polled every second), the old
    agent told to poll every second."""
    server.set_metadata({"deployments": []})
    state = tmp / f"{agent.name}-idle"
    if isinstance(agent, GuestAgent):
        config = tmp / "idle.yaml"
        config.write_text("fast_poll_period: 0\n")
        argv = agent.argv(server, state, once=False, config=config)
    else:
        argv = agent.argv(server, state, once=False, polling_interval=1)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline, start = time.monotonic() + 60, server.gets
        while server.gets < start + 3 and time.monotonic() < deadline:  # past start-up
            time.sleep(0.1)
        gets0, nm0 = server.gets, server.not_modified
        cpu0, t0 = cpu_ns(proc.pid), time.monotonic()
        time.sleep(seconds)
        gets, cpu, elapsed = server.gets - gets0, cpu_ns(proc.pid) - cpu0, time.monotonic() - t0
        not_modified = server.not_modified - nm0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    # Each poll is one GET of the one source: polls = GETs seen.
    return {"cpu_ms_per_poll": cpu / TICK_NS * 1000 / max(gets, 1),
            "polls_per_s": gets / elapsed, "not_modified": not_modified / max(gets, 1),
            "cpu_share": cpu / TICK_NS / elapsed}


class Changes:
    """Adds one deployment at a time to one metadata document; times how long until its hook
    has run (the hook writes the time it ran)."""

    def __init__(self, server: Server, path: str, marks: Path):
        self.server, self.path, self.marks = server, path, marks
        self.current: list = []

    def change_and_wait(self, n: int) -> float:
        mark = self.marks / str(n)
        script = f"#!/bin/sh\ndate +%s.%N > {mark}\n"
        self.current.extend(deployments(self.server, 1, f"lat{n}", script))
        self.server.set_metadata({"deployments": list(self.current)}, self.path)
        changed = time.time()
        deadline = time.monotonic() + 90
        while not mark.exists() or not mark.read_text().strip():
            if time.monotonic() > deadline:
                raise TimeoutError("hook did not run within 90 s")
            time.sleep(0.005)
        return float(mark.read_text()) - changed


def daemon(agent: GuestAgent, server: Server, state: Path, path: str) -> subprocess.Popen:
    server.set_metadata({"deployments": []}, path)
    return subprocess.Popen(agent.argv(server, state, once=False, path=path),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def latency_during(agent: GuestAgent, server: Server, tmp: Path, changes: int) -> float:
    """Median seconds from a change to its hook during a stack operation (each change soon
    after the previous, as Heat sends the next deployment after a signal), default settings."""
    marks = tmp / "marks-during"
    marks.mkdir()
    proc = daemon(agent, server, tmp / "latency-during", "metadata/during")
    try:
        time.sleep(2)
        steps = Changes(server, "metadata/during", marks)
        samples = []
        for n in range(changes):
            time.sleep(0.37 * (n % 3) + 0.5)
            samples.append(steps.change_and_wait(n))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return statistics.median(samples)


def latency_quiet(agent: GuestAgent, server: Server, tmp: Path, daemons: int,
                  rounds: int) -> list[float]:
    """Seconds from a change to its hook after a quiet spell, default settings: `daemons`
    agents (one document each) are left alone past the fast-poll window, then each gets one
    change at a random phase of its poll; `rounds` times."""
    marks = tmp / "marks-quiet"
    marks.mkdir()
    paths = [f"metadata/quiet{k}" for k in range(daemons)]
    procs = [daemon(agent, server, tmp / f"latency-quiet{k}", p) for k, p in enumerate(paths)]
    samples = []
    try:
        steps = [Changes(server, p, marks) for p in paths]
        for r in range(rounds):
            time.sleep(FAST_POLL_PERIOD + 2)  # the last change to any of them is older than this
            for k, step in enumerate(steps):
                time.sleep(random.random())
                samples.append(step.change_and_wait(r * daemons + k))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=30)
    return samples


def many(agent: GuestAgent, server: Server, tmp: Path, count: int) -> dict:
    """`--once` running `count` script deployments and signalling each back."""
    server.signals.clear()
    server.duplicates = 0
    server.set_metadata({"deployments": deployments(server, count, f"n{count}")})
    wall, peak, code = run_measured(agent.argv(server, tmp / f"many-{count}", once=True))
    assert code == 0, f"--once with {count} deployments exited {code}"
    assert len(server.signals) == count and server.duplicates == 0, (len(server.signals),
                                                                     server.duplicates)
    return {"wall": wall, "rss": peak, "per": wall / count}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, N <= 100")
    parser.add_argument("--no-occ", action="store_true", help="skip os-collect-config")
    parser.add_argument("--no-reinstall", action="store_true",
                        help="use bench/.venvs/guestagent as it is")
    args = parser.parse_args()
    runs, idle_s = (5, 10) if args.quick else (20, 30)
    sizes = (1, 100) if args.quick else (1, 100, 1000)

    ga = GuestAgent(refresh=not args.no_reinstall)
    occ = None if args.no_occ else OsCollectConfig()
    server = Server()
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="ga-bench-") as name:
            tmp = Path(name)
            noop = {a.name: once_noop(a, server, tmp, runs) for a in filter(None, (ga, occ))}
            local = once_noop_local(ga, tmp, runs)
            quiet = {a.name: idle(a, server, tmp, idle_s) for a in filter(None, (ga, occ))}
            during = latency_during(ga, server, tmp, changes=7 if args.quick else 15)
            quiet_lat = [] if args.quick else latency_quiet(ga, server, tmp, daemons=10,
                                                            rounds=2)
            big = {n: many(ga, server, tmp, n) for n in sizes}
    finally:
        server.stop()

    measured = {"noop": noop, "idle": quiet}

    def ratio(key, field):
        """How many times more os-collect-config spends."""
        if occ is None:
            return "n/a"
        return f"{measured[key][occ.name][field] / measured[key][ga.name][field]:.1f}x"

    g, o = ga.name, occ.name if occ else None
    rows.append(("`--once`, nothing to do, file source (heat_local): wall / peak RSS",
                 f"{local['wall']:.3f} s / {local['rss']:.1f} MiB", "-", "",
                 "<= 0.15 s / 25 MiB"))
    rows.append(("`--once`, nothing to do, HTTP source (request): wall", f"{noop[g]['wall']:.3f} s",
                 f"{noop[o]['wall']:.3f} s" if o else "-", ratio("noop", "wall"), "<= 0.15 s"))
    rows.append(("`--once`, nothing to do, HTTP source (request): peak RSS",
                 f"{noop[g]['rss']:.1f} MiB",
                 f"{noop[o]['rss']:.1f} MiB" if o else "-", ratio("noop", "rss"), "<= 25 MiB"))
    rows.append(("idle daemon: CPU per poll", f"{quiet[g]['cpu_ms_per_poll']:.2f} ms",
                 f"{quiet[o]['cpu_ms_per_poll']:.2f} ms" if o else "-",
                 ratio("idle", "cpu_ms_per_poll"), "<= 1 ms"))
    rows.append(("idle daemon: polls per second / share answered 304",
                 f"{quiet[g]['polls_per_s']:.2f} / {quiet[g]['not_modified']:.0%}",
                 f"{quiet[o]['polls_per_s']:.2f} / {quiet[o]['not_modified']:.0%}" if o else "-",
                 "", "1 conditional request per poll"))
    rows.append(("idle daemon: share of one core", f"{quiet[g]['cpu_share']:.3%}",
                 f"{quiet[o]['cpu_share']:.3%}" if o else "-", "", ""))
    if quiet_lat:
        rows.append((f"change to hook after a quiet spell: median (range, {len(quiet_lat)} "
                     "changes)", f"{statistics.median(quiet_lat):.2f} s ({min(quiet_lat):.2f}-"
                     f"{max(quiet_lat):.2f} s)", "-", "", "<= 1 s"))
    rows.append(("change to hook during a stack operation: median",
                 f"{during:.2f} s", "-", "", "<= 1 s"))
    for n, r in big.items():
        rows.append((f"{n} script deployment(s) run and signalled (`--once`)",
                     f"{r['wall']:.2f} s ({r['per'] * 1000:.1f} ms each, {r['rss']:.0f} MiB)",
                     "-", "", "<= 15 s" if n == 1000 else ""))

    print(f"\nguestagent bench on {os.uname().nodename.split('.')[0]}: Python "
          f"{sys.version.split()[0]}, {os.cpu_count()} CPUs\n")
    print("| measure | guestagent | os-collect-config | ratio | target |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
