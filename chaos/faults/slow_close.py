"""Toxic `slow_close`: Delay closing connections."""

from __future__ import annotations

from homeport.chaos.faults import register
from homeport.chaos.faults.toxic import Attr, ToxicFault


@register
class SlowClose(ToxicFault):
    name = "slow_close"
    summary = "Delay closing connections."
    attrs = (Attr("delay", 0, 600_000, 1000, "ms"),)
