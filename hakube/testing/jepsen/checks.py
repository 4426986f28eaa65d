"""Checkers for the set and watch workloads (the register workload has linear.py).

Set: clients add unique elements; after the faults heal, every master is read. An acknowledged
add must be in every final read (else it was lost), an add that failed definitely must be in
none, and every final read must be the same (the masters converged). Adds that ended
indefinitely may go either way.

Watch: watchers on every master start from one revision and reconnect from the last revision
they saw whenever their stream breaks. Once the cluster is healed and a final write is seen by
all, each watcher must have seen every change exactly once and in revision order: all watchers'
sequences equal, revisions strictly increasing, and every acknowledged write present.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hakube.testing.jepsen.history import Op


@dataclass
class SetResult:
    valid: bool
    attempted: int
    acknowledged: int
    lost: list[str] = field(default_factory=list)
    """Acknowledged adds missing from a final read."""
    unexpected: list[str] = field(default_factory=list)
    """Elements in a final read that nobody added, or whose add failed definitely."""
    recovered: int = 0
    """Indefinite adds that did take effect (allowed)."""
    divergent: list[str] = field(default_factory=list)
    """Masters whose final read differs from the first one's."""

    def text(self) -> str:
        return (
            f"set: valid={self.valid} attempted={self.attempted} "
            f"acknowledged={self.acknowledged} recovered-indefinite={self.recovered} "
            f"lost={self.lost[:20]} unexpected={self.unexpected[:20]} "
            f"divergent={self.divergent}"
        )


def check_set(adds: list[Op], final_reads: dict[str, set[str]]) -> SetResult:
    """``adds``: one op per element (``value`` is the element); ``final_reads``: master name to
    the elements it lists after the heal."""
    ok = {str(o.value) for o in adds if o.outcome == "ok"}
    failed = {str(o.value) for o in adds if o.outcome == "fail"}
    attempted = {str(o.value) for o in adds}
    res = SetResult(True, len(attempted), len(ok))
    if not final_reads:
        res.valid = False
        res.divergent = ["no final read"]
        return res
    names = sorted(final_reads)
    first = final_reads[names[0]]
    for name in names:
        seen = final_reads[name]
        if seen != first:
            res.divergent.append(name)
        res.lost += sorted(f"{e}@{name}" for e in ok - seen)
        res.unexpected += sorted(f"{e}@{name}" for e in (seen - attempted) | (seen & failed))
    res.recovered = len((first & attempted) - ok - failed)
    res.valid = not (res.lost or res.unexpected or res.divergent)
    return res


@dataclass(frozen=True)
class Event:
    revision: int
    type: str
    name: str
    value: str


@dataclass
class WatchResult:
    valid: bool
    watchers: int
    events: int
    problems: list[str] = field(default_factory=list)

    def text(self) -> str:
        head = (
            f"watch: valid={self.valid} watchers={self.watchers} events-per-watcher={self.events}"
        )
        return "\n".join([head, *(f"  {p}" for p in self.problems[:30])])


def check_watches(streams: dict[str, list[Event]], writes: list[Op]) -> WatchResult:
    """``streams``: watcher name to every event it received, in order, across reconnects;
    ``writes``: the acknowledged and indefinite writes of the watched objects (``value`` is the
    value written)."""
    problems: list[str] = []
    for name, evs in sorted(streams.items()):
        for a, b in zip(evs, evs[1:], strict=False):
            if b.revision <= a.revision:
                problems.append(
                    f"{name}: revision {b.revision} after {a.revision} "
                    f"({'duplicate' if b.revision == a.revision else 'out of order'})"
                )
    names = sorted(streams)
    reference = streams[names[0]] if names else []
    for name in names[1:]:
        evs = streams[name]
        if evs != reference:
            ref_revs = {e.revision for e in reference}
            revs = {e.revision for e in evs}
            problems.append(
                f"{name} differs from {names[0]}: missing revisions "
                f"{sorted(ref_revs - revs)[:10]}, extra {sorted(revs - ref_revs)[:10]}"
            )
    seen_values = {e.value for e in reference}
    missing = sorted(
        str(o.value) for o in writes if o.outcome == "ok" and str(o.value) not in seen_values
    )
    if missing:
        problems.append(f"acknowledged writes never delivered: {missing[:10]}")
    return WatchResult(not problems, len(streams), len(reference), problems)


@dataclass
class LeaseResult:
    valid: bool
    terms: int
    holders: int
    overlaps: list[str] = field(default_factory=list)

    def text(self) -> str:
        return "\n".join(
            [
                f"leases: valid={self.valid} terms={self.terms} holders={self.holders}",
                *(f"  {o}" for o in self.overlaps[:20]),
            ]
        )


def check_leases(terms: dict[str, list[tuple[float, float]]]) -> LeaseResult:
    """``terms``: candidate to the intervals in which it believed it led (from a moment it
    checked to the end of the term it was promised, on one clock). No two candidates' intervals
    may overlap: at most one leader at any time."""
    flat = sorted((start, end, who) for who, spans in terms.items() for start, end in spans)
    overlaps: list[str] = []
    last_end, last_who = float("-inf"), ""
    for start, end, who in flat:
        if start < last_end and who != last_who:
            overlaps.append(
                f"{who} led from {start:.3f} s while {last_who} led until {last_end:.3f} s"
            )
        if end > last_end:
            last_end, last_who = end, who
    holders = sum(1 for spans in terms.values() if spans)
    return LeaseResult(not overlaps, len(flat), holders, overlaps)
