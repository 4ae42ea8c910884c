"""A fleet of real agents against one loopback Heat (run by hand, never in the test suite).

    .venv/bin/python bench/fleet.py                    # 50 servers, about 9 minutes
    .venv/bin/python bench/fleet.py --servers 20 --duration 300 --occ-servers 0

Starts N `python -m guestagent` daemons, each a server of its own: its own state directory,
config drive (an ISO 9660 image whose meta_data.json holds the instance uuid, so each picks
its own splay phase) and boot file (heat_local, holding the POLL_SERVER_HEAT credentials of
its own Keystone user, stack resource and project, as Heat writes them). They are booted
together against tests/fakecloud.py (Keystone v3 + Heat API on loopback), which records
every request with its arrival time. Then, after the boot burst:

- idle: Heat API and Keystone requests per server-hour, and the busiest second's share of
  the fleet (splay: servers booted together must not poll together);
- a group-wide change (a new HEAT_SIGNAL script deployment in every server's metadata at
  the same instant): Heat metadata polls per server in the window after it (and those over
  the idle rate), every request per server (logins, signals), the peak requests per
  second at the cloud, and p50/p95/max seconds from the change to each server's hook
  starting (the script writes the time it started);
- a chain (bench/chain.py): a second group-wide change (the chain's head deployment) whose
  signal the fake Heat answers with a follow-up deployment in that server's metadata, after a
  delay drawn per server (seeded, uniform 0.2-3 s: how long a real Heat takes from a signal
  to a chain's next deployment); p50/p95/max seconds from each follow-up appearing in the
  metadata to its hook starting, and Heat metadata polls per server in the chain's window
  (head and follow-up). The first change's window stays a single change's.

os-collect-config from the package index runs beside it during the idle window (its own
servers, POLL_SERVER_HEAT, polling_interval 30, its default splay), in bench/.venvs/occ
(created on first run, as bench/agent.py does): idle requests per server-hour is the
figure where the two are comparable (it has no deployments or signals of its own).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "bench")]

from agent import venv  # bench/agent.py: the bench virtualenvs
from chain import FollowUps, chain_delays  # bench/chain.py: Heat's answer to a signal

from tests.fakecloud import FakeCloud
from tests.support.agent import deployment, start_agent

POLLING_INTERVAL = 30.0  # both agents' default for a costly source
SETTLE = 45.0  # after the last server's first poll: its boot burst (31 s) is over
MEAN_MAX = "mean / max (over the idle rate)"
STACK_ID = "00000000-0000-4000-8000-00000000f1ee"


@dataclass
class Guest:
    """One server: its Keystone user, its resource in the stack, its files."""

    name: str
    password: str
    root: Path

    @property
    def resource(self) -> str:
        return self.name

    def heat_config(self, cloud: FakeCloud) -> dict:
        """The server's os-collect-config for POLL_SERVER_HEAT, as Heat writes it."""
        return {"collectors": ["heat"],
                "heat": {"auth_url": cloud.auth_url, "user_id": self.name,
                         "password": self.password, "project_id": cloud.project_id,
                         "stack_id": f"fleet/{STACK_ID}", "resource_name": self.resource,
                         "region_name": "RegionOne"}}


def make_guests(cloud: FakeCloud, tmp: Path, prefix: str, count: int) -> list[Guest]:
    guests = []
    for k in range(count):
        guest = Guest(f"{prefix}-{k:04d}", uuid.uuid4().hex, tmp / f"{prefix}-{k:04d}")
        guest.root.mkdir(parents=True)
        cloud.add_user(guest.name, guest.password)
        cloud.set_server_metadata("fleet", STACK_ID, guest.resource,
                                  {"os-collect-config": guest.heat_config(cloud),
                                   "deployments": []})
        guests.append(guest)
    return guests


def start_guestagent(cloud: FakeCloud, guest: Guest) -> subprocess.Popen:
    """A booted server: config drive (its uuid), boot file (its credentials), the daemon."""
    drive = guest.root / "drive"
    (drive / "openstack" / "latest").mkdir(parents=True)
    (drive / "openstack" / "latest" / "meta_data.json").write_text(
        json.dumps({"uuid": str(uuid.uuid4()), "name": guest.name}))
    image = guest.root / "config-2.iso"
    subprocess.run(["genisoimage", "-quiet", "-o", str(image), "-V", "config-2", "-r", "-J",
                    str(drive)], check=True)
    boot = guest.root / "cfn-init-data"
    boot.write_text(json.dumps({"os-collect-config": guest.heat_config(cloud)}))
    conf = guest.root / "guestagent.yaml"
    conf.write_text(json.dumps({"config_drive": {"device": str(image),
                                                 "boot_metadata_file": str(boot)}}))
    (guest.root / "local-data").mkdir()
    return start_agent(guest.root / "state", "--collectors", "config_drive,heat_local",
                       "--heat-local-path", str(boot), "--local-path",
                       str(guest.root / "local-data"), config=conf,
                       log=guest.root / "agent.log")


def start_occ(occ_bin: Path, cloud: FakeCloud, guest: Guest) -> subprocess.Popen:
    """os-collect-config as a POLL_SERVER_HEAT server runs it (its options from the boot
    metadata), its command a no-op."""
    heat = guest.heat_config(cloud)["heat"]
    argv = [str(occ_bin), "--config-file", "/dev/null", "--cachedir", str(guest.root / "cache"),
            "--backup-cachedir", str(guest.root / "backup"),
            "--polling-interval", str(int(POLLING_INTERVAL)), "--command", "true",
            "--heat-auth-url", heat["auth_url"], "--heat-user-id", heat["user_id"],
            "--heat-password", heat["password"], "--heat-project-id", heat["project_id"],
            "--heat-stack-id", heat["stack_id"], "--heat-resource-name", heat["resource_name"],
            "heat"]
    with open(guest.root / "occ.log", "wb") as out:  # the child keeps its own copy
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=guest.root)


def server_of(rec) -> tuple[str, str] | None:
    """(server, kind) a request was made for: kind metadata, login or signal."""
    parts = rec.path.strip("/").split("/")
    if parts[:1] == ["heat"] and len(parts) == 9:
        if parts[-1] == "metadata":
            return parts[7], "metadata"
        if parts[-1] == "signal":  # deployment resources are named deploy-<server>-<n>
            return parts[7].split("-", 1)[1].rsplit("-", 1)[0], "signal"
    if rec.method == "POST" and rec.path.endswith("/auth/tokens"):
        try:
            user = rec.json["auth"]["identity"]["password"]["user"]["id"]
        except (TypeError, KeyError):
            return None
        return (user.split("-", 2)[2].rsplit("-", 1)[0] if user.startswith("user-deploy-")
                else user), "login"
    return None


def requests_between(cloud: FakeCloud, start: float, end: float) -> list:
    return [r for r in list(cloud.requests) if start <= r.at < end]


def per_server(recs: list, names: list[str]) -> dict[str, Counter]:
    counts = {name: Counter() for name in names}
    for rec in recs:
        found = server_of(rec)
        if found and found[0] in counts:
            counts[found[0]][found[1]] += 1
    return counts


def first_polls_done(cloud: FakeCloud, names: list[str], timeout: float) -> float:
    """Wait until every server polled Heat once; the time of the last first poll."""
    pending = set(names)
    seen = 0
    deadline = time.monotonic() + timeout
    last = 0.0
    while pending:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(pending)} servers never polled Heat, e.g. {min(pending)}")
        recs = list(cloud.requests)
        for rec in recs[seen:]:
            found = server_of(rec)
            if found and found[1] == "metadata" and found[0] in pending:
                pending.discard(found[0])
                last = rec.at
        seen = len(recs)
        time.sleep(0.2)
    return last


def resource(guest: Guest, n: int) -> str:
    """The stack resource of the server's n-th deployment (its signal names it)."""
    return f"deploy-{guest.name}-{n}"


def add_deployment(cloud: FakeCloud, guest: Guest, n: int, marks: Path,
                   deployed: dict[str, list]) -> None:
    """The server's metadata gains its n-th deployment: a HEAT_SIGNAL script that writes
    the time it started to marks/<server>.<n>."""
    dep = deployment(cloud, resource(guest, n),
                     f"#!/bin/sh\ndate +%s.%N > {marks / f'{guest.name}.{n}'}\n",
                     transport="HEAT_SIGNAL")
    for item in dep["inputs"]:
        if item["name"] == "deploy_server_id":
            item["value"] = guest.name
    deployed[guest.name] = deployed.get(guest.name, []) + [dep]  # Heat lists all of them
    cloud.set_server_metadata("fleet", STACK_ID, guest.resource,
                              {"os-collect-config": guest.heat_config(cloud),
                               "deployments": deployed[guest.name]})


def change_all(cloud: FakeCloud, guests: list[Guest], n: int, marks: Path,
               deployed: dict[str, list]) -> float:
    """A group-wide change: each server's metadata gains its n-th deployment at once."""
    changed = time.time()
    for guest in guests:
        add_deployment(cloud, guest, n, marks, deployed)
    return changed


def hooks_started(marks: Path, guests: list[Guest], n: int, since: dict[str, float],
                  timeout: float) -> list[float]:
    """Seconds from since[server] to each server's n-th hook starting (waits for all of them,
    `since` may fill meanwhile)."""
    deadline = time.monotonic() + timeout
    while True:
        done = [(g.name, marks / f"{g.name}.{n}") for g in guests]
        texts = {name: p.read_text().strip() for name, p in done if p.exists()}
        if len(texts) == len(guests) and all(texts.values()) and len(since) == len(guests):
            return sorted(float(t) - since[name] for name, t in texts.items())
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(guests) - len(texts)} hooks of deployment {n} did not "
                               f"start in {timeout:.0f} s")
        time.sleep(0.1)


def busiest_second(recs: list, kind: str | None = None) -> tuple[int, Counter]:
    """(requests in the busiest whole second, per-second counts) of Heat metadata polls
    (kind="metadata") or of every request (None)."""
    bins = Counter(math.floor(r.at) for r in recs
                   if kind is None or (server_of(r) or ("", ""))[1] == kind)
    return (max(bins.values()) if bins else 0), bins


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--servers", type=int, default=50, help="guestagent servers (50)")
    parser.add_argument("--occ-servers", type=int, default=10,
                        help="os-collect-config servers beside them while idle (10; 0: none)")
    parser.add_argument("--duration", type=float, default=480,
                        help="seconds from the fleet's boot burst's end to the end: idle, "
                             "change window, chain window (480)")
    parser.add_argument("--window", type=float, default=120,
                        help="seconds after the change counted as the change's (120)")
    parser.add_argument("--chain-window", type=float, default=60,
                        help="seconds after the chain's head counted as the chain's (60)")
    parser.add_argument("--seed", type=int, default=14, help="seeds the chain's delays (14)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    idle_seconds = args.duration - args.window - args.chain_window
    if idle_seconds < 2 * POLLING_INTERVAL:
        parser.error("--duration must leave at least 60 s of idle before the change windows")
    occ_bin = None
    if args.occ_servers:
        occ_bin = venv("occ", "os-collect-config") / "bin" / "os-collect-config"
    if shutil.which("genisoimage") is None:
        parser.error("genisoimage missing (scripts/setup-test-env.sh installs it)")

    cloud = FakeCloud().start()
    tmp = Path(tempfile.mkdtemp(prefix="ga-fleet-"))
    procs: list[subprocess.Popen] = []
    try:
        guests = make_guests(cloud, tmp, "ga", args.servers)
        olds = make_guests(cloud, tmp, "occ", args.occ_servers)
        names = [g.name for g in guests]
        booted = time.time()
        procs += [start_guestagent(cloud, g) for g in guests]  # booted together
        procs += [start_occ(occ_bin, cloud, g) for g in olds]
        last_first = first_polls_done(cloud, names, timeout=300)
        print(f"{len(guests)} servers polled Heat within {last_first - booted:.1f} s of boot",
              flush=True)

        idle_start = last_first + SETTLE
        time.sleep(max(0.0, idle_start - time.time()))
        time.sleep(idle_seconds)  # the measured idle window itself
        idle_end = time.time()
        idle = requests_between(cloud, idle_start, idle_end)
        hours = (idle_end - idle_start) / 3600
        ga_idle = per_server(idle, names)
        occ_idle = per_server(idle, [g.name for g in olds])
        peak_idle, _ = busiest_second([r for r in idle if (server_of(r) or ("",))[0] in names],
                                      "metadata")
        # Keystone version discovery names no user: os-collect-config asks once per poll.
        anonymous = sum(1 for r in idle if server_of(r) is None)
        for proc in procs[len(guests):]:  # os-collect-config is done: the change is ours
            proc.terminate()

        marks = tmp / "marks"
        marks.mkdir()
        deployed: dict[str, list] = {}
        changed = change_all(cloud, guests, 1, marks, deployed)
        latencies = hooks_started(marks, guests, 1, dict.fromkeys(names, changed),
                                  timeout=args.window)
        time.sleep(max(0.0, changed + args.window - time.time()))
        window = requests_between(cloud, changed, changed + args.window)
        ga_change = per_server(window, names)
        peak_change, _ = busiest_second(window)

        by_name = {g.name: g for g in guests}
        follow_ups = FollowUps(cloud, chain_delays(names, args.seed),
                               lambda name: resource(by_name[name], 2),
                               lambda name: add_deployment(cloud, by_name[name], 3, marks,
                                                           deployed))
        follow_ups.install()
        headed = change_all(cloud, guests, 2, marks, deployed)
        chained = hooks_started(marks, guests, 3, follow_ups.appeared,
                                timeout=args.chain_window)
        time.sleep(max(0.0, headed + args.chain_window - time.time()))
        follow_ups.stop()
        ga_chain = per_server(requests_between(cloud, headed, headed + args.chain_window),
                              names)
        signalled = {t.rsplit("/", 1)[-1] for _, t, _ in list(cloud.signals)}
        missing = [f"{g.name} ({n})" for g in guests for n in (1, 2, 3)
                   if resource(g, n) not in signalled]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        cloud.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    def mean(counts: dict[str, Counter], kind: str | None = None) -> float:
        return statistics.mean(sum(c.values()) if kind is None else c[kind]
                               for c in counts.values()) if counts else float("nan")

    idle_polls = mean(ga_idle, "metadata") / hours
    expected = idle_polls * args.window / 3600  # polls the window would hold anyway
    per_change = [c["metadata"] for c in ga_change.values()]
    win = f"{args.window:.0f} s"
    polls = f"{statistics.mean(per_change):.1f} / {max(per_change)}"
    over = f"{statistics.mean(per_change) - expected:+.1f}"
    p50, p95 = percentile(latencies, .5), percentile(latencies, .95)
    chain_polls = [c["metadata"] for c in ga_chain.values()]
    cwin = f"{args.chain_window:.0f} s"
    rows = [
        ("idle: Heat metadata requests per server-hour", f"{idle_polls:.0f}",
         f"{mean(occ_idle, 'metadata') / hours:.0f}" if olds else "-"),
        ("idle: Keystone logins per server-hour", f"{mean(ga_idle, 'login') / hours:.0f}",
         f"{mean(occ_idle, 'login') / hours:.0f}" if olds else "-"),
        ("idle: busiest second, servers polling Heat (of the fleet)",
         f"{peak_idle} ({peak_idle / len(names):.0%})", "-"),
        (f"change: Heat metadata requests per server in the {win} after it: {MEAN_MAX}",
         f"{polls} ({over})", "-"),
        (f"change: every request per server in the {win} (polls, logins, signal)",
         f"{mean(ga_change):.1f}", "-"),
        ("change: peak requests per second at the cloud", f"{peak_change}", "-"),
        ("change to hook started: p50 / p95 / max",
         f"{p50:.1f} / {p95:.1f} / {max(latencies):.1f} s", "-"),
        (f"chain: Heat metadata requests per server in the {cwin} after its head: mean / max",
         f"{statistics.mean(chain_polls):.1f} / {max(chain_polls)}", "-"),
        ("chain: follow-up in the metadata to its hook started: p50 / p95 / max",
         f"{percentile(chained, .5):.2f} / {percentile(chained, .95):.2f} / "
         f"{max(chained):.2f} s", "-"),
    ]
    print(f"\nfleet bench: {len(names)} guestagent servers, {len(olds)} os-collect-config "
          f"servers, idle window {idle_end - idle_start:.0f} s, change window "
          f"{args.window:.0f} s, chain window {args.chain_window:.0f} s (follow-ups 0.2-3 s "
          f"after the head's signal, seed {args.seed}), {os.cpu_count()} CPUs, "
          f"Python {sys.version.split()[0]}")
    print(f"requests naming no server in the idle window: {anonymous / hours:.0f} per hour "
          "(Keystone version discovery)")
    if missing:
        print(f"NOT SIGNALLED: {len(missing)} servers, e.g. {missing[:3]}")
    print("\n| measure | guestagent | os-collect-config |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 1 if missing else 0


if __name__ == "__main__":
    raise SystemExit(main())
