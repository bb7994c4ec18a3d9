"""Alerts as part of a game day's verdict: a scenario may name alerts that must fire
during the run and be resolved at its end (`alerts:` in the scenario file). The runner
then starts the cluster with a real Prometheus (`homeport dev up --with-prometheus`,
the project's own rules) and asks it afterwards:

- *fired*: the `ALERTS{alertstate="firing"}` series of the alert begins inside the run
  after the first fault (Prometheus writes a sample at every evaluation while the alert
  fires, so a gap before a sample is a rising edge);
- *resolved*: after the run, within `resolve_s`, the alert is neither firing nor
  pending any more (`/api/v1/alerts`).

A scenario run without Prometheus (the binary not built) cannot judge this, and says so
as a violation rather than passing silently.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from homeport.regions.prometheus import PrometheusClient


@dataclass
class AlertOutcome:
    fired_at: dict[str, float] = field(default_factory=dict)  # alert -> first firing (unix)
    still_active: list[str] = field(default_factory=list)  # at the end of the wait
    violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def first_firing(prom: PrometheusClient, alert: str, start: float, end: float) -> float | None:
    """When the alert *began* firing inside [start, end]: the first firing sample not
    preceded by another one step before (an alert still firing from before `start`, say
    from the cluster's start-up, does not count until it has stopped and fired again)."""
    step = 1.0
    series = prom.query_range(
        f'max(ALERTS{{alertname="{alert}", alertstate="firing"}})', start, end, step
    )
    stamps = sorted(float(t) for s in series for t, _ in s["values"])
    previous = None
    for at in stamps:
        if (previous is None and at > start + 1.5 * step) or (
            previous is not None and at - previous > 1.5 * step
        ):
            return at
        previous = at
    return None


async def judge(
    url: str | None,
    fire: list[str],
    resolve: list[str],
    start: float,
    end: float,
    t0: float,
    resolve_s: float = 90.0,
) -> AlertOutcome:
    out = AlertOutcome()
    if not fire and not resolve:
        return out
    if url is None:
        out.violations.append("alerts: no Prometheus ran (build it with scripts/install.sh)")
        return out
    prom = PrometheusClient(url)
    for alert in fire:
        at = await asyncio.to_thread(first_firing, prom, alert, start, end)
        if at is None:
            out.violations.append(f"alert {alert} never fired")
        else:
            out.fired_at[alert] = at
            out.notes.append(f"alert {alert} fired at t+{at - t0:.1f}s")
    deadline = time.monotonic() + resolve_s
    while True:
        active = {a.name for a in await asyncio.to_thread(prom.alerts)}
        out.still_active = sorted(active & set(resolve))
        if not out.still_active or time.monotonic() > deadline:
            break
        await asyncio.sleep(1.0)  # Prometheus evaluates every second; bounded by deadline
    for alert in out.still_active:
        out.violations.append(f"alert {alert} still active {resolve_s:g}s after the run")
    for alert in resolve:
        if alert not in out.still_active:
            out.notes.append(f"alert {alert} resolved by t+{time.time() - t0:.1f}s")
    return out
