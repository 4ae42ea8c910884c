"""The chain phase of bench/fleet.py: Heat answers a server's signal with its next deployment.

In a real stack a SoftwareDeployment that depends on another is created once the first one's
signal arrives: Heat marks the first resource complete, its engine schedules the dependent
resource, which writes the server's metadata anew. That takes from a fraction of a second to
a few seconds, with the engine's load. `FollowUps` plays that Heat against tests/fakecloud.py
through its `on_signal` hook: the signal of a server's head deployment publishes the server's
follow-up after a delay drawn per server, uniform over 0.2-3 s by default. Uniform because
no measured distribution is at hand and it weighs every phase relative to the agent's
post-signal burst (polls 1, 3 and 7 s after the signal) alike: with delays over (0, 3] s the
follow-up is seen at 1 s or 3 s, 0.75 s after it appears at the median and under 2 s always,
plus the poll's and the hook's own time. Seeded: the same servers draw the same delays.
"""

from __future__ import annotations

import random
import threading
import time
from typing import Callable


def chain_delays(names: list[str], seed: int, low: float = 0.2,
                 high: float = 3.0) -> dict[str, float]:
    """Seconds from each server's head signal to its follow-up: uniform on [low, high]."""
    return {name: random.Random(f"{seed}/{name}").uniform(low, high) for name in names}


class FollowUps:
    """On the first signal of each server's head deployment (signal target ending in
    `/<head resource>`), publish its follow-up `delays[server]` seconds later."""

    def __init__(self, cloud, delays: dict[str, float], head_resource: Callable[[str], str],
                 publish: Callable[[str], None]):
        self.cloud = cloud
        self.delays = delays
        self.publish = publish
        self._heads = {head_resource(name): name for name in delays}
        self._lock = threading.Lock()
        self._timers: list[threading.Timer] = []
        self.signalled: dict[str, float] = {}  # server -> when its head's signal arrived
        self.appeared: dict[str, float] = {}   # server -> when its follow-up was published

    def install(self) -> None:
        """Hang this Heat on the fake cloud's signals."""
        self.cloud.on_signal = self._on_signal

    def _on_signal(self, transport: str, target: str, body) -> None:
        name = self._heads.get(target.rsplit("/", 1)[-1])
        with self._lock:
            if name is None or name in self.signalled:
                return  # another deployment's, or a retried signal: Heat acts once
            self.signalled[name] = time.time()
            # On a timer: the signaller's reply must not wait for Heat's next step.
            timer = threading.Timer(self.delays[name], self._appear, args=(name,))
            timer.daemon = True
            self._timers.append(timer)
        timer.start()

    def _appear(self, name: str) -> None:
        at = time.time()  # stamped before it is served: latencies err long, never short
        self.publish(name)
        with self._lock:
            self.appeared[name] = at

    def stop(self) -> None:
        """Unhook from the cloud and drop follow-ups not yet published."""
        self.cloud.on_signal = None
        with self._lock:
            for timer in self._timers:
                timer.cancel()
