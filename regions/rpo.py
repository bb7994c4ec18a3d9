"""The recovery point of LOCAL and REGION tasks at a region loss, predicted from the
mirror's delay (the model `homeport plan rpo` prints and the game-day checker judges by).

A home's mirror is a Redis replica in its standby region, fed through the cross-region
link; a write reaches it `D` seconds after the primary applied it:

    D = L + J + B

- `L`: the link's one-way latency (a Toxiproxy latency toxic in a game day, the network's
  in production), on the direction the replication stream flows (primary -> mirror);
- `J`: the link's jitter, uniform on [-j, +j] (Toxiproxy adds `rand(-j, j)` per chunk);
- `B`: the base delay of replication itself (the primary's replication buffer, TLS, the
  mirror applying the write, scheduling): measured, a list of samples.

Bytes already on the link when the home dies are not lost by that alone: a crashed primary
has sent them, and the link delivers them (a game day's Toxiproxy does; so does a WAN
after a power loss at the home). Only when the link dies with the home (a network cut, or
a region whose border goes down with it) are the bytes in flight lost, and the exposure
is the whole `D`; otherwise it is `B`, the time before a write leaves the primary
(`in_flight_lost`).

A task acknowledged at `w` is lost when its home dies at `T` before the write reached the
mirror (`T - w < D`) *and* before the task finished running at home (`T - w < E`, where
`E` is the time from the acknowledgement to the end of its first run: a task that ran
is not lost, its journal and attempts row survive). GLOBAL tasks are not exposed: their
acknowledgement waits for the mirror. With acknowledgements of LOCAL and REGION tasks
arriving as a Poisson stream of rate `λ`, the number lost is Poisson with mean

    λ · E[min(D, E)] = λ · ∫₀^∞ P(D > x) · P(E > x) dx   (D and E independent),

and no task acknowledged more than `window = max D` before the loss can be lost: that
window is the predicted RPO. The bound the checker holds a game day to is the Poisson
quantile `QUANTILE` of that mean.

Pure Python (no NumPy): `regions` must not need the `plan` extra.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import asdict, dataclass

QUANTILE = 0.999  # the share of runs whose loss count must stay within the bound
STEP_S = 0.0005  # integration step (seconds); the delays modelled are tens of ms


@dataclass(frozen=True)
class MirrorDelay:
    """The delay model `D = L + J + B`. `latency_s`: one-way latency of the link (0 = a
    local link); `jitter_s`: half-width of the uniform jitter (0 = none); `base_s`:
    measured base delays in seconds (at least one sample); `in_flight_lost`: whether the
    link dies with the home (then a write is exposed for all of `D`; else only for `B`,
    the link delivering what it already carries)."""

    latency_s: float
    jitter_s: float
    base_s: tuple[float, ...]
    in_flight_lost: bool = True

    def __post_init__(self) -> None:
        if self.latency_s < 0 or self.jitter_s < 0:
            raise ValueError(
                f"latency_s={self.latency_s} and jitter_s={self.jitter_s} must be >= 0"
            )
        if self.jitter_s > self.latency_s:
            raise ValueError(
                f"jitter_s={self.jitter_s} is larger than latency_s={self.latency_s}: a link "
                "cannot deliver before it was sent; give a jitter no larger than the latency"
            )
        if not self.base_s or min(self.base_s) < 0:
            raise ValueError(f"base_s={self.base_s!r}: give at least one sample, each >= 0")

    def _link(self) -> tuple[float, float]:
        """The span of the link's share of the exposure: L ± J, or nothing."""
        if not self.in_flight_lost:
            return 0.0, 0.0
        return self.latency_s - self.jitter_s, self.latency_s + self.jitter_s

    @property
    def max_s(self) -> float:
        return self._link()[1] + max(self.base_s)

    def survival(self, x: float) -> float:
        """P(exposure > x): P(D > x) when the link dies with the home, else P(B > x)."""
        total = 0.0
        low, high = self._link()
        for b in self.base_s:
            lo, hi = low + b, high + b
            if x < lo:
                total += 1.0
            elif x < hi:  # lo < hi: a jittered link
                total += (hi - x) / (hi - lo)
        return total / len(self.base_s)


@dataclass(frozen=True)
class RpoPrediction:
    """`window_s`: the RPO (no older acknowledgement can be lost); `expected_lost`: mean
    number of LOCAL and REGION tasks lost; `bound`: at most this many lost in `QUANTILE`
    of losses; `exposed_s`: E[min(D, E)], seconds of acknowledgements at risk."""

    window_s: float
    expected_lost: float
    bound: int
    exposed_s: float
    rate_per_s: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def exposed_seconds(delay: MirrorDelay, run_s: Sequence[float] | None) -> float:
    """E[min(D, E)]: `run_s` are samples of E (ack -> end of the first run); None means
    tasks never finish before the loss (E = ∞), so every unmirrored one is lost."""
    ordered = sorted(run_s) if run_s else []
    n = len(ordered)
    total = 0.0
    x = 0.0
    while x < delay.max_s:
        mid = x + STEP_S / 2
        p_run = 1.0 if not n else (n - bisect_right(ordered, mid)) / n
        total += delay.survival(mid) * p_run * STEP_S
        x += STEP_S
    return total


def poisson_bound(mean: float, quantile: float = QUANTILE) -> int:
    """The smallest k with P(N <= k) >= quantile for N ~ Poisson(mean)."""
    if mean < 0 or not math.isfinite(mean):
        raise ValueError(f"mean={mean}: a Poisson mean must be finite and >= 0")
    term = math.exp(-mean)
    cdf = term
    k = 0
    while cdf < quantile:
        k += 1
        term *= mean / k
        cdf += term
    return k


def predict(
    rate_per_s: float, delay: MirrorDelay, run_s: Sequence[float] | None, lead_s: float = 0.0
) -> RpoPrediction:
    """The RPO of a home whose LOCAL and REGION tasks are acknowledged at `rate_per_s`.
    `lead_s`: seconds from the link's death to the primary's (every write in between is
    exposed: counted whole, an upper bound, and added to the window)."""
    if rate_per_s < 0 or lead_s < 0:
        raise ValueError(f"rate_per_s={rate_per_s} and lead_s={lead_s} must be >= 0")
    exposed = exposed_seconds(delay, run_s) + lead_s
    mean = rate_per_s * exposed
    return RpoPrediction(delay.max_s + lead_s, mean, poisson_bound(mean), exposed, rate_per_s)
