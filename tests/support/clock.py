"""Simulated time for driving an in-process Agent without real sleeping."""

import time


class SimulatedClock:
    """Time that moves only when the agent (or the test) waits."""

    def __init__(self):
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)
