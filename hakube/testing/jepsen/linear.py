"""Is a register history linearizable? A Wing–Gong search with Lowe's memoisation.

The search walks the history as a list of call and return events ordered by time. At each step
it tries to linearize one of the operations whose call comes before the first pending return
(those are exactly the operations that may take effect next); when it reaches a return whose
operation it has not yet placed, it backtracks. The memo of (operations placed, register state)
pairs already explored is what makes this practical on thousands of operations: two orders that
reach the same state with the same set placed need not both be explored.

Operations that ended ``info`` return at infinity: they may take effect at any point after their
call, or never — once the search reaches their returns every definite operation is placed and
the history is accepted. ``fail`` operations did not happen and are left out; so are ``info``
reads, which changed nothing and told nothing.

When a key's history is not linearizable, the report carries a small sub-history that is not
linearizable either (the shortest prefix that fails, then every operation whose removal keeps it
failing removed), which is what a person needs to read to see the anomaly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from hakube.testing.jepsen.history import Op, by_key

Step = Callable[[Hashable, Op], tuple[bool, Hashable]]
"""A sequential model: given the state and an operation, whether the operation is legal there,
and the state after it."""


def register(state: Hashable, op: Op) -> tuple[bool, Hashable]:
    """A single register; None is "absent". ``cas`` carries ``(expected, new)`` and, completed
    ``ok``, means it found ``expected`` and wrote ``new`` (a cas refused by its precondition is
    recorded as ``fail``)."""
    if op.f == "read":
        return op.result == state, state
    if op.f == "write":
        return True, op.value
    if op.f == "cas":
        expected, new = op.value
        return state == expected, new
    raise ValueError(f"register model: unknown operation {op.f!r}")


class SearchBudgetExceeded(Exception):
    """The search explored more states than allowed: the answer is unknown, not valid."""


def linearizable(
    ops: list[Op], step: Step = register, initial: Hashable = None, max_states: int = 2_000_000
) -> bool:
    """Whether the operations on one object have a legal sequential order consistent with
    their real-time order."""
    ops = [o for o in ops if o.outcome != "fail" and not (o.outcome == "info" and o.f == "read")]
    if not ops:
        return True
    n = len(ops)
    # Events: call of op i is node i+1, its return node n+i+1; node 0 is the list head.
    events = sorted(
        [(o.invoke, 0, i) for i, o in enumerate(ops)]
        + [(math.inf if o.outcome == "info" else o.complete, 1, i) for i, o in enumerate(ops)]
    )
    nxt = [0] * (2 * n + 2)
    prv = [0] * (2 * n + 2)
    order = [0] + [(i + 1) if kind == 0 else (n + i + 1) for _, kind, i in events]
    for a, b in zip(order, order[1:], strict=False):
        nxt[a], prv[b] = b, a
    nxt[order[-1]] = -1

    def lift(call: int) -> None:
        ret = call + n
        nxt[prv[call]] = nxt[call]
        prv[nxt[call]] = prv[call]
        nxt[prv[ret]] = nxt[ret]
        if nxt[ret] != -1:
            prv[nxt[ret]] = prv[ret]

    def unlift(call: int) -> None:
        ret = call + n
        nxt[prv[ret]] = ret
        if nxt[ret] != -1:
            prv[nxt[ret]] = ret
        nxt[prv[call]] = call
        prv[nxt[call]] = call

    state: Hashable = initial
    placed = 0
    seen: set[tuple[int, Hashable]] = set()
    stack: list[tuple[int, Hashable]] = []
    entry = nxt[0]
    while entry != -1:
        if entry <= n:  # a call: try to place its operation next
            i = entry - 1
            legal, after = step(state, ops[i])
            if legal:
                key = (placed | (1 << i), after)
                if key not in seen:
                    if len(seen) >= max_states:
                        raise SearchBudgetExceeded(f"more than {max_states} states")
                    seen.add(key)
                    stack.append((entry, state))
                    state, placed = after, key[0]
                    lift(entry)
                    entry = nxt[0]
                    continue
            entry = nxt[entry]
        else:  # a return of an operation not yet placed
            if ops[entry - n - 1].outcome == "info":
                return True  # only indefinite operations are left; they may never happen
            if not stack:
                return False
            entry, state = stack.pop()
            placed &= ~(1 << (entry - 1))
            unlift(entry)
            entry = nxt[entry]
    return True


@dataclass
class KeyResult:
    key: str
    valid: bool | None
    """None: the search gave up (too many states) — neither proven nor refuted."""
    ops: int
    counterexample: list[Op] = field(default_factory=list)


@dataclass
class Report:
    valid: bool | None
    keys: list[KeyResult]

    @property
    def anomalies(self) -> list[KeyResult]:
        return [k for k in self.keys if k.valid is False]

    def text(self) -> str:
        lines = [
            f"linearizable: {self.valid} ({len(self.keys)} keys, "
            f"{sum(k.ops for k in self.keys)} operations)"
        ]
        for k in self.keys:
            if k.valid is None:
                lines.append(f"  key {k.key}: unknown (search budget exceeded)")
            elif k.valid is False:
                lines.append(f"  key {k.key}: NOT linearizable; smallest failing sub-history:")
                lines += [f"    {op.describe()}" for op in k.counterexample]
        return "\n".join(lines)


def check(
    ops: list[Op], step: Step = register, initial: Hashable = None, max_states: int = 2_000_000
) -> Report:
    """Every key checked on its own; the history is valid when every key is."""
    results: list[KeyResult] = []
    for key, kops in sorted(by_key(ops).items()):
        try:
            ok = linearizable(kops, step, initial, max_states)
        except SearchBudgetExceeded:
            results.append(KeyResult(key, None, len(kops)))
            continue
        bad = [] if ok else shrink(kops, step, initial, max_states)
        results.append(KeyResult(key, ok, len(kops), bad))
    verdicts = [r.valid for r in results]
    valid = False if False in verdicts else (None if None in verdicts else True)
    return Report(valid, results)


def shrink(
    ops: list[Op],
    step: Step = register,
    initial: Hashable = None,
    max_states: int = 2_000_000,
    max_ops: int = 400,
) -> list[Op]:
    """A small non-linearizable sub-history of a non-linearizable one: the shortest failing
    prefix (by invocation), then each operation dropped whose absence keeps it failing. The
    writes of every value a kept operation observed are always kept, so the anomaly shown is the
    real one ("read a stale 1") and not one the shrinking made up ("read a 1 nobody wrote")."""
    ops = sorted(ops, key=lambda o: o.invoke)
    writers: dict[Hashable, list[Op]] = {}
    for o in ops:
        if o.f in ("write", "cas") and o.outcome != "fail":
            writers.setdefault(o.value[1] if o.f == "cas" else o.value, []).append(o)

    def observed(o: Op) -> Hashable:
        return o.result if o.f == "read" else o.value[0] if o.f == "cas" else None

    def closed(sub: list[Op]) -> list[Op]:
        have = {id(o) for o in sub}
        extra = [x for o in sub for x in writers.get(observed(o), []) if id(x) not in have]
        unique = {id(x): x for x in extra}
        return sorted([*sub, *unique.values()], key=lambda o: o.invoke)

    def fails(sub: list[Op]) -> bool:
        try:
            return not linearizable(sub, step, initial, max_states)
        except SearchBudgetExceeded:
            return False

    lo, hi = 1, len(ops)
    while lo < hi:  # smallest failing prefix (failure is near-monotone in the prefix length)
        mid = (lo + hi) // 2
        if fails(closed(ops[:mid])):
            hi = mid
        else:
            lo = mid + 1
    current = closed(ops[:hi])
    if not fails(current):
        current = ops
    if len(current) > max_ops:
        return current
    i = 0
    while i < len(current):
        trial = closed(current[:i] + current[i + 1 :])
        if len(trial) < len(current) and fails(trial):
            current = trial
            i = 0
        else:
            i += 1
    return current
