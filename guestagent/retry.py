"""The one way to retry: tenacity's randomised exponential backoff, in-process or durable.

`quick` retries a call a few times right away (a signal hitting a brief
blip); `delay_after` gives the wait before the n-th durable retry, for work
kept in the journal across restarts (the outbox).
"""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")

# Durable retries: 2 s, 4 s, 8 s ... randomised, capped at 5 minutes.
DURABLE = dict(multiplier=1, max=300)
# In-process retries: short, so a pass is never held up long by one endpoint.
QUICK = dict(multiplier=0.5, max=4)


def quick(fn: Callable[[], T], *, attempts: int, retry_if: Callable[[BaseException], bool],
          sleep: Callable[[float], None] = time.sleep) -> T:
    """Call `fn` up to `attempts` times while it raises an error `retry_if` accepts."""
    if attempts <= 1:
        return fn()  # nothing to retry: no need to load tenacity
    import tenacity

    retrying = tenacity.Retrying(stop=tenacity.stop_after_attempt(attempts),
                                 wait=tenacity.wait_random_exponential(**QUICK),
                                 retry=tenacity.retry_if_exception(retry_if),
                                 sleep=sleep, reraise=True)
    return retrying(fn)


def delay_after(failures: int) -> float:
    """Seconds to wait before the next durable retry after `failures` failed attempts."""
    import tenacity

    state = tenacity.RetryCallState(retry_object=None, fn=None, args=(), kwargs={})
    state.attempt_number = max(1, failures)
    return tenacity.wait_random_exponential(**DURABLE)(state)
