"""Toxic `timeout`: Stop all data on a link; close it after the timeout (0: never)."""

from __future__ import annotations

from homeport.chaos.faults import register
from homeport.chaos.faults.toxic import Attr, ToxicFault


@register
class Timeout(ToxicFault):
    name = "timeout"
    summary = "Stop all data on a link; close it after the timeout (0: never)."
    attrs = (Attr("timeout", 0, 3_600_000, 0, "ms"),)
