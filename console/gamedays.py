"""Chaos game-day reports: each run of `homeport chaos run` writes a folder under the
reports folder holding `report.html`, `report.md` and its plots (chaos/report.py). The
console lists those folders and serves their files, and nothing outside them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_VERDICT = re.compile(r"\*\*Verdict: ([A-Za-z]+)\*\*")
_TITLE = re.compile(r"^# Game day: (.+)$", re.MULTILINE)
SERVED = frozenset({"report.html", "report.md", "load.png", "timeline.png", "history.jsonl"})


@dataclass(frozen=True)
class Report:
    name: str
    title: str
    verdict: str
    modified: float


def list_reports(folder: Path) -> list[Report]:
    """Every run folder with a `report.html`, newest first."""
    if not folder.is_dir():
        return []
    found = []
    for html in folder.glob("*/report.html"):
        md = html.with_name("report.md")
        text = md.read_text(errors="replace") if md.exists() else ""
        verdict = _VERDICT.search(text)
        title = _TITLE.search(text)
        found.append(
            Report(
                html.parent.name,
                title.group(1) if title else html.parent.name,
                verdict.group(1) if verdict else "unknown",
                html.stat().st_mtime,
            )
        )
    return sorted(found, key=lambda r: r.modified, reverse=True)


def report_file(folder: Path, run: str, name: str) -> Path | None:
    """The file `name` of run `run`, or None when it is not a report file of a run
    directly under `folder` (no path tricks: both parts are plain names)."""
    if name not in SERVED or "/" in run or run in ("", ".", "..") or "\\" in run:
        return None
    path = folder / run / name
    if path.resolve().parent.parent != folder.resolve() or not path.is_file():
        return None
    return path
