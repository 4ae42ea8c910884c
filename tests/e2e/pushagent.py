"""The agent daemon with the zaqar source's push wired into its loop (issue 13, 2).

guestagent/agent.py is being split into a poller by another change; until that
poller calls the push contract itself, this runner shows and tests exactly how:
a collector with ``on_push(callback)`` gets a callback that makes its source due
now and wakes the loop, and while ``pushing()`` is True the source is polled only
once per polling_interval (no fast-poll window: a change is pushed anyway).
usage: python -m tests.e2e.pushagent <guestagent daemon arguments>
"""

from __future__ import annotations

import sys

from guestagent import agent, cli
from guestagent.collectors import base


class PushAgent(agent.Agent):
    """Agent + the push contract of collectors (on_push / pushing)."""

    def _collector(self, name: str):
        old = self._collectors.get(name)
        collector = super()._collector(name)
        if old is None or old[1] is not collector:  # just built (first use or new options)
            if old is not None:
                base.close(old[1])  # its subscription goes with it
            base.wire_push(collector, lambda: self.pushed(name))
        return collector

    def pushed(self, name: str) -> None:
        """Called from the subscription's thread: poll `name` in the next pass, now."""
        self._polled_at.pop(name, None)
        self.wake.set()

    def _due_at(self, name: str, now: float) -> float:
        known = self._collectors.get(name)
        if known is not None and base.pushing(known[1]):
            polled_at = self._polled_at.get(name)
            return now if polled_at is None else polled_at + self.settings.polling_interval
        return super()._due_at(name, now)


if __name__ == "__main__":
    agent.Agent = PushAgent  # cli.cmd_run builds its agent from this name
    sys.exit(cli.main())
