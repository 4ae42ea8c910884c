"""Test hook: stop the agent dead at an exact journal step, so crash safety can be proven.

`GUESTAGENT_CRASH_AFTER=<state>:<n>` makes the agent SIGKILL itself right after the n-th
journal write of <state> in this process (received, running, finished, signalled, gone),
the way a power cut or an OOM kill would stop it. Only tests/faults set it; unset (always, in
production) it costs one dictionary lookup at import.
"""

from __future__ import annotations

import os
import signal

_spec = os.environ.get("GUESTAGENT_CRASH_AFTER", "")
_state, _, _count = _spec.partition(":")
_remaining = int(_count) if _count.isdigit() else 1


def after(state: str) -> None:
    """Called after each journal write; kills this process at the configured step."""
    global _remaining
    if not _state or state != _state:
        return
    _remaining -= 1
    if _remaining == 0:
        os.kill(os.getpid(), signal.SIGKILL)
