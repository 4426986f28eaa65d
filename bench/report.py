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
from dataclasses import dataclass

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
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]

    def line(cells: Sequence[str]) -> str:
        padded = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join("-" * (w + 1) + ":" if i else ":" + "-" * (w + 1) for i, w in enumerate(widths))
        + "|"
    )
    return "\n".join([line(header), rule, *(line(r) for r in rows)])


def _ratio(a: float, b: float) -> float | None:
    if math.isnan(a) or math.isnan(b) or b == 0:
        return None
    return a / b


def format_load_table(
    results: LoadRows,
    systems: Sequence[str],
    baseline: str,
    ratios: Sequence[tuple[str, str]] | None = None,
) -> str:
    """One row per scenario; per system ops/s, p50, p99 and errors; then each other system's
    throughput and p50 as a multiple of ``baseline``'s (ops/s ≥ 1 and p50 ≤ 2 are the targets).

    ``ratios``: the (system, peer) pairs to show instead, e.g. each system against the peer
    with the same transport security.
    """
    pairs = (
        list(ratios) if ratios is not None else [(s, baseline) for s in systems if s != baseline]
    )
    header = ["scenario"]
    for s in systems:
        header += [f"{s} ops/s", f"{s} p50 ms", f"{s} p99 ms", f"{s} err"]
    for s, b in pairs:
        header += [f"{s}/{b} ops/s", f"{s}/{b} p50"]
    rows = []
    for scenario, by_system in results.items():
        row = [scenario]
        for s in systems:
            r = by_system.get(s)
            if r is None:
                row += [DASH] * 4
            else:
                row += [_num(r.ops_per_s, 0), _num(r.p50_ms, 2), _num(r.p99_ms, 2), str(r.errors)]
        for s, b in pairs:
            r, base = by_system.get(s), by_system.get(b)
            if r is None or base is None:
                row += [DASH] * 2
            else:
                row += [
                    _num(_ratio(r.ops_per_s, base.ops_per_s), 2),
                    _num(_ratio(r.p50_ms, base.p50_ms), 2),
                ]
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


@dataclass(frozen=True)
class TlsPair:
    """One product measured with and without TLS, e.g. hakube = ("hakube", "hakube-plain")."""

    label: str
    tls: str
    """System name of the TLS run."""
    plain: str
    """System name of the plaintext run."""


TLS_SLACK = 0.1
"""How much more, in TLS/plain throughput ratio, TLS may cost the subject than the peer."""


def tls_ratios(
    by_system: Mapping[str, LoadResult], pair: TlsPair
) -> tuple[float | None, float | None]:
    """(TLS/plain ops/s, TLS/plain p50) of one scenario; None where either run is missing.

    Below 1 for ops/s (and above 1 for p50) means TLS costs something."""
    tls, plain = by_system.get(pair.tls), by_system.get(pair.plain)
    if tls is None or plain is None:
        return None, None
    return _ratio(tls.ops_per_s, plain.ops_per_s), _ratio(tls.p50_ms, plain.p50_ms)


def tls_target_met(
    subject: float | None, peer: float | None, slack: float = TLS_SLACK
) -> bool | None:
    """Whether TLS costs the subject no more than it costs the peer, relatively: subject's
    TLS/plain throughput ratio ≥ peer's − ``slack``. None when either ratio is unknown."""
    if subject is None or peer is None:
        return None
    return subject >= peer - slack - 1e-9


def _verdict(ok: bool | None) -> str:
    return DASH if ok is None else ("yes" if ok else "NO")


def format_tls_cost_table(
    results: LoadRows, subject: TlsPair, peer: TlsPair, slack: float = TLS_SLACK
) -> str:
    """The cost of TLS: one row per load scenario; for the subject and then the peer, ops/s and
    p50 with TLS and without and the TLS/plain ratios; then whether the subject's throughput
    ratio is at least the peer's − ``slack`` (the target)."""
    header = ["scenario"]
    for p in (subject, peer):
        header += [
            f"{p.label} plain ops/s",
            f"{p.label} TLS ops/s",
            f"{p.label} TLS/plain ops/s",
            f"{p.label} plain p50 ms",
            f"{p.label} TLS p50 ms",
            f"{p.label} TLS/plain p50",
        ]
    header.append(f"{subject.label} ≥ {peer.label} − {slack:g}")
    rows = []
    for scenario, by_system in results.items():
        row = [scenario]
        ops_ratios = []
        for p in (subject, peer):
            plain, tls = by_system.get(p.plain), by_system.get(p.tls)
            ops_ratio, p50_ratio = tls_ratios(by_system, p)
            ops_ratios.append(ops_ratio)
            row += [
                _num(plain.ops_per_s, 0) if plain else DASH,
                _num(tls.ops_per_s, 0) if tls else DASH,
                _num(ops_ratio, 2),
                _num(plain.p50_ms, 2) if plain else DASH,
                _num(tls.p50_ms, 2) if tls else DASH,
                _num(p50_ratio, 2),
            ]
        row.append(_verdict(tls_target_met(ops_ratios[0], ops_ratios[1], slack)))
        rows.append(row)
    return _markdown(header, rows)


def format_tls_failover_table(
    results: FailoverRows, subject: str, peer: str, limit_s: float = 2.0
) -> str:
    """Failover with TLS: per scenario the median recovery of ``subject`` and ``peer`` and
    whether the subject's stays within ``limit_s`` (the target)."""
    header = ["scenario", f"{subject} p50 s", f"{peer} p50 s", f"{subject} ≤ {limit_s:g} s"]
    rows = []
    for scenario, by_system in results.items():
        medians = [
            statistics.median(g) if (g := by_system.get(s)) else None for s in (subject, peer)
        ]
        ok = None if medians[0] is None else medians[0] <= limit_s
        rows.append([scenario, _num(medians[0], 2), _num(medians[1], 2), _verdict(ok)])
    return _markdown(header, rows)
