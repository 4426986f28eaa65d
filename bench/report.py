"""Side-by-side tables of benchmark results, in Markdown.

Markdown because the same text is read in a terminal and pasted into docs/benchmarks.md, so the
recorded figures are exactly what the run printed. A system that was not measured for a row (not
yet implemented, or it does not support that durability setting) shows "—", and so do ratios
that involve it: the table's shape never depends on which systems ran.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence

from bench.loadgen import LoadResult

DASH = "—"

LoadRows = Mapping[str, Mapping[str, LoadResult]]
"""scenario -> system name -> result; a missing system means "not measured"."""

FailoverRows = Mapping[str, Mapping[str, Sequence[float]]]
"""scenario -> system name -> seconds until the next successful write, one per repetition."""


def _num(x: float | None, digits: int) -> str:
    if x is None or math.isnan(x):
        return DASH
    return f"{x:,.{digits}f}"


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        padded = [c.ljust(w) if i == 0 else c.rjust(w)
                  for i, (c, w) in enumerate(zip(cells, widths, strict=True))]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(
        "-" * (w + 1) + ":" if i else ":" + "-" * (w + 1) for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def _ratio(a: float, b: float) -> float | None:
    if math.isnan(a) or math.isnan(b) or b == 0:
        return None
    return a / b


def format_load_table(results: LoadRows, systems: Sequence[str], baseline: str) -> str:
    """One row per scenario; per system ops/s, p50, p99 and errors; then each other system's
    throughput and p50 as a multiple of ``baseline``'s (ops/s ≥ 1 and p50 ≤ 2 are the targets).
    """
    others = [s for s in systems if s != baseline]
    header = ["scenario"]
    for s in systems:
        header += [f"{s} ops/s", f"{s} p50 ms", f"{s} p99 ms", f"{s} err"]
    for s in others:
        header += [f"{s}/{baseline} ops/s", f"{s}/{baseline} p50"]
    rows = []
    for scenario, by_system in results.items():
        row = [scenario]
        for s in systems:
            r = by_system.get(s)
            if r is None:
                row += [DASH] * 4
            else:
                row += [_num(r.ops_per_s, 0), _num(r.p50_ms, 2), _num(r.p99_ms, 2), str(r.errors)]
        base = by_system.get(baseline)
        for s in others:
            r = by_system.get(s)
            if r is None or base is None:
                row += [DASH] * 2
            else:
                row += [_num(_ratio(r.ops_per_s, base.ops_per_s), 2),
                        _num(_ratio(r.p50_ms, base.p50_ms), 2)]
        rows.append(row)
    return _markdown(header, rows)


def format_failover_table(results: FailoverRows, systems: Sequence[str]) -> str:
    """One row per scenario; per system the median and worst recovery time and the sample size."""
    header = ["scenario"]
    for s in systems:
        header += [f"{s} p50 s", f"{s} max s", f"{s} n"]
    rows = []
    for scenario, by_system in results.items():
        row = [scenario]
        for s in systems:
            gaps = by_system.get(s)
            if not gaps:
                row += [DASH] * 3
            else:
                row += [_num(statistics.median(gaps), 2), _num(max(gaps), 2), str(len(gaps))]
        rows.append(row)
    return _markdown(header, rows)
