"""The two retry rules of the house, written once.

- `equal_jitter`: exponential backoff, base * 2^n capped, times a jitter in [0.5, 1)
  ("equal jitter": never less than half the ceiling, so retries do not bunch at zero).
  Task retries (`core.app.TaskOptions`) and the SDK's resends (`router.client.RetryPolicy`)
  both use it.
- `warn_repeated`: a loop that retries the same failing step (a down Redis, etcd or
  PostgreSQL) logs the first three failures in a row and then every hundredth, so an
  outage is visible without flooding the log.
"""

from __future__ import annotations

import logging
import random

QUIET_AFTER = 3  # failures in a row logged one by one
EVERY = 100  # then one line per this many


def equal_jitter(base_s: float, cap_s: float, exponent: int, rng: random.Random) -> float:
    """Seconds to wait: min(cap, base * 2^exponent) times a jitter in [0.5, 1)."""
    ceiling = min(cap_s, base_s * 2.0 ** max(0, exponent))
    return ceiling * (0.5 + rng.random() / 2)


def warn_repeated(log: logging.Logger, what: str, failures: int, exc: BaseException) -> None:
    """Log the `failures`-th failure in a row of `what`, unless the outage is already
    being reported (see the module docstring)."""
    if failures <= QUIET_AFTER or failures % EVERY == 0:
        log.warning("%s failed (%d in a row): %s", what, failures, exc)
