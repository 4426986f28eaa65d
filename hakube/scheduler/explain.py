"""The "0/5 nodes are available: 3 Insufficient cpu, 2 node(s) had untolerated taint {k: v}."
message of an unschedulable pod, built from every node's filter reasons.

Counts are per reason (a node short of both CPU and memory counts under both, as in
Kubernetes); the biggest count comes first, ties in alphabetical order.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping


def fit_error(total: int, reasons: Mapping[str, Iterable[str]]) -> str:
    counts: Counter[str] = Counter()
    for rs in reasons.values():
        counts.update(set(rs))
    if total == 0:
        return "0/0 nodes are available: no nodes registered."
    parts = [f"{n} {r}" for r, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return f"0/{total} nodes are available: {', '.join(parts)}."
