"""Toxic `limit_data`: Close connections once this many bytes passed."""

from __future__ import annotations

from homeport.chaos.faults import register
from homeport.chaos.faults.toxic import Attr, ToxicFault


@register
class LimitData(ToxicFault):
    name = "limit_data"
    summary = "Close connections once this many bytes passed."
    attrs = (Attr("bytes", 1, 10**12, 4096, "bytes"),)
