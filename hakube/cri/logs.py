"""Reading container log files in the CRI format, as runtimes write them.

Each line is ``<RFC3339Nano time> <stdout|stderr> <P|F> <text>``: ``P`` marks a partial line
(the runtime split a long line), ``F`` the end of a line. The agent reads these for
``hakubectl logs``; tests read them to see what a container printed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class LogLine:
    """One complete line a container printed."""

    time: str
    stream: str
    text: str


def parse(lines: Iterable[str]) -> Iterator[LogLine]:
    """Complete lines from raw CRI log lines, joining partial (``P``) pieces per stream;
    malformed lines are skipped."""
    pending: dict[str, list[str]] = {}
    for raw in lines:
        parts = raw.rstrip("\n").split(" ", 3)
        if len(parts) < 3 or parts[1] not in ("stdout", "stderr"):
            continue
        stamp, stream, tag = parts[0], parts[1], parts[2]
        text = parts[3] if len(parts) == 4 else ""
        pending.setdefault(stream, []).append(text)
        if tag != "P":
            yield LogLine(time=stamp, stream=stream, text="".join(pending.pop(stream)))


def read(path: str | Path) -> list[LogLine]:
    """All complete lines of a CRI log file."""
    with open(path, encoding="utf-8", errors="replace") as f:
        return list(parse(f))
