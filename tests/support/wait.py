"""Bounded waits on real conditions (a file appears, a process exits)."""

import time


def wait_until(predicate, timeout: float = 30.0, what: str = "condition") -> None:
    """Re-check `predicate` every 20 ms until it holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)
