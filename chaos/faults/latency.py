"""Toxic `latency`: Add a delay (and jitter) to every chunk of data on a link."""

from __future__ import annotations

from homeport.chaos.faults import register
from homeport.chaos.faults.toxic import Attr, ToxicFault


@register
class Latency(ToxicFault):
    name = "latency"
    summary = "Add a delay (and jitter) to every chunk of data on a link."
    attrs = (Attr("latency", 0, 60_000, 100, "ms"), Attr("jitter", 0, 60_000, 0, "ms"))

    def check_together(self, attributes: dict[str, int]) -> None:
        if attributes["jitter"] > attributes["latency"]:
            raise self.refuse(
                "params.jitter", attributes["jitter"],
                f"larger than latency ({attributes['latency']} ms): a delay cannot go negative; "
                "lower the jitter or raise the latency",
            )  # fmt: skip
