"""Toxic `slicer`: Slice data into small pieces with a delay between them."""

from __future__ import annotations

from homeport.chaos.faults import register
from homeport.chaos.faults.toxic import Attr, ToxicFault


@register
class Slicer(ToxicFault):
    name = "slicer"
    summary = "Slice data into small pieces with a delay between them."
    attrs = (
        Attr("average_size", 1, 65_536, 16, "bytes"),
        Attr("size_variation", 0, 65_535, 8, "bytes"),
        Attr("delay", 0, 1_000_000, 100, "us"),
    )

    def check_together(self, attributes: dict[str, int]) -> None:
        if attributes["size_variation"] >= attributes["average_size"]:
            raise self.refuse(
                "params.size_variation", attributes["size_variation"],
                f"must be below average_size ({attributes['average_size']} bytes)",
            )  # fmt: skip
