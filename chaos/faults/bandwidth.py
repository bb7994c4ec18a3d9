"""Toxic `bandwidth`: Limit a link to a rate in KB/s."""

from __future__ import annotations

from homeport.chaos.faults import register
from homeport.chaos.faults.toxic import Attr, ToxicFault


@register
class Bandwidth(ToxicFault):
    name = "bandwidth"
    summary = "Limit a link to a rate in KB/s."
    attrs = (Attr("rate", 1, 10_000_000, 100, "KB/s"),)
