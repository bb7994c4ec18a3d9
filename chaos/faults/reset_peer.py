"""Toxic `reset_peer`: Reset connections (TCP RST) after the timeout."""

from __future__ import annotations

from homeport.chaos.faults import register
from homeport.chaos.faults.toxic import Attr, ToxicFault


@register
class ResetPeer(ToxicFault):
    name = "reset_peer"
    summary = "Reset connections (TCP RST) after the timeout."
    attrs = (Attr("timeout", 0, 3_600_000, 0, "ms"),)
