"""Wait until HTTP services answer, or fail as soon as their process dies.

usage: waitup.py PID TIMEOUT URL...

Any HTTP response counts as up (an API root may answer 300 or 401). Exits
0 with the seconds it took, 1 when PID exits first or TIMEOUT passes.
Standard library only: runs with any python3.
"""

import sys
import time
import urllib.error
import urllib.request

POLL_INTERVAL = 0.1


def answers(url: str) -> bool:
    """True when ``url`` gives any HTTP response."""
    try:
        urllib.request.urlopen(url, timeout=2).close()
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie not yet reaped by its parent is dead)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def main() -> int:
    """Poll every URL until it answers; stop at death of PID or timeout."""
    pid, timeout, urls = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3:]
    started = time.monotonic()
    pending = list(urls)
    while pending:
        pending = [url for url in pending if not answers(url)]
        if not pending:
            break
        if not alive(pid):
            print(f"process {pid} exited before {pending} answered", file=sys.stderr)
            return 1
        if time.monotonic() - started > timeout:
            print(f"{pending} did not answer within {timeout:.0f} s", file=sys.stderr)
            return 1
        time.sleep(POLL_INTERVAL)
    print(f"{time.monotonic() - started:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
