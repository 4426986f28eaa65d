"""The linearizability checker must classify known histories correctly before any verdict it
gives on a cluster means anything: the classic anomalies, indefinite operations, and thousands of
random small histories cross-checked against a brute-force search over every order."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Hashable
from typing import Any

import pytest

from hakube.testing.jepsen.history import Op
from hakube.testing.jepsen.linear import check, linearizable, register, shrink

INF = math.inf


def op(
    p: int,
    f: str,
    value: object,
    t0: float,
    t1: float = INF,
    outcome: str = "ok",
    result: object = None,
    key: str = "x",
) -> Op:
    return Op(p, f, key, value, t0, t1, outcome, result)  # type: ignore[arg-type]


def w(p: int, v: object, t0: float, t1: float, outcome: str = "ok") -> Op:
    return op(p, "write", v, t0, t1 if outcome != "info" else INF, outcome)


def r(p: int, got: object, t0: float, t1: float) -> Op:
    return op(p, "read", None, t0, t1, result=got)


def cas(p: int, old: object, new: object, t0: float, t1: float, outcome: str = "ok") -> Op:
    return op(p, "cas", (old, new), t0, t1 if outcome != "info" else INF, outcome)


KNOWN = [
    ("sequential write then read", [w(0, 1, 0, 1), r(1, 1, 2, 3)], True),
    ("read of the initial (absent) value", [r(0, None, 0, 1), w(1, 1, 2, 3)], True),
    (
        "stale read after a later write completed",
        [w(0, 1, 0, 1), w(0, 2, 2, 3), r(1, 1, 4, 5)],
        False,
    ),
    (
        "concurrent read may see either value",
        [w(0, 1, 0, 1), w(0, 2, 2, 5), r(1, 1, 3, 4), r(2, 2, 3, 4)],
        True,
    ),
    (
        "reads going back in time",
        [w(0, 1, 0, 1), w(0, 2, 2, 10), r(1, 2, 3, 4), r(2, 1, 5, 6)],
        False,
    ),
    ("value never written", [w(0, 1, 0, 1), r(1, 3, 2, 3)], False),
    (
        "two concurrent cas from the same value both succeed",
        [w(0, 0, 0, 1), cas(1, 0, 1, 2, 5), cas(2, 0, 2, 2, 5)],
        False,
    ),
    (
        "one of two concurrent cas succeeds",
        [w(0, 0, 0, 1), cas(1, 0, 1, 2, 5), cas(2, 0, 2, 2, 5, outcome="fail"), r(3, 1, 6, 7)],
        True,
    ),
    ("an indefinite write may have happened", [w(0, 1, 0, 0, "info"), r(1, 1, 5, 6)], True),
    ("an indefinite write may never happen", [w(0, 1, 0, 0, "info"), r(1, None, 5, 6)], True),
    (
        "an indefinite write cannot explain a value it did not write",
        [w(0, 1, 0, 0, "info"), r(1, 2, 5, 6)],
        False,
    ),
    (
        "an indefinite write cannot take effect before its call",
        [r(1, 1, 0, 1), w(0, 1, 2, 2, "info")],
        False,
    ),
    ("a failed write must not be seen", [w(0, 1, 0, 1, "fail"), r(1, 1, 2, 3)], False),
    (
        "an indefinite write then flip-flop reads",
        [w(0, 1, 0, 1), w(2, 2, 2, 2, "info"), r(1, 2, 3, 4), r(1, 1, 5, 6)],
        False,
    ),
]


@pytest.mark.parametrize(
    ("history", "expected"), [(h, e) for _, h, e in KNOWN], ids=[name for name, _, _ in KNOWN]
)
def test_known_histories(history: list[Op], expected: bool) -> None:
    assert linearizable(history) is expected


def brute_force(ops: list[Op], initial: Hashable = None) -> bool:
    """Every order of every subset of indefinite operations, checked directly."""
    definite = [o for o in ops if o.outcome == "ok"]
    maybe = [o for o in ops if o.outcome == "info" and o.f != "read"]
    for k in range(len(maybe) + 1):
        for chosen in itertools.combinations(maybe, k):
            placed = definite + list(chosen)
            for perm in itertools.permutations(placed):
                if any(b.complete < a.invoke for i, a in enumerate(perm) for b in perm[i + 1 :]):
                    continue  # b finished before a started but comes after it
                state: Hashable = initial
                for o in perm:
                    legal, state = register(state, o)
                    if not legal:
                        break
                else:
                    return True
    return False


def random_history(rng: random.Random, n: int) -> list[Op]:
    """A run of a real register by concurrent clients, then perhaps corrupted."""
    ops: list[Op] = []
    state: object = None
    t = 0.0
    for i in range(n):
        t += rng.random()
        start = t - rng.random() * 2  # the operation takes effect at t
        end = t + rng.random() * 2
        f = rng.choice(["read", "write", "cas"])
        outcome = rng.choice(["ok"] * 6 + ["info", "fail"])
        if f == "read":
            got = state if rng.random() < 0.85 else rng.choice([None, 0, 1, 2])
            ops.append(op(i, "read", None, start, end, "ok", got))
            continue
        value: Any = (state, rng.randint(0, 2)) if f == "cas" else rng.randint(0, 2)
        if f == "cas" and rng.random() < 0.2:
            value = (rng.randint(0, 2), rng.randint(0, 2))
        applies = outcome == "ok" or (outcome == "info" and rng.random() < 0.5)
        if f == "cas" and value[0] != state:
            applies, outcome = False, "fail"
        if applies:
            state = value[1] if f == "cas" else value
        ops.append(op(i, f, value, start, INF if outcome == "info" else end, outcome))
    return ops


def test_random_histories_agree_with_brute_force() -> None:
    rng = random.Random(20261205)
    verdicts = {True: 0, False: 0}
    for _ in range(1500):
        h = random_history(rng, rng.randint(1, 6))
        expected = brute_force(h)
        assert linearizable(h) is expected, "\n".join(o.describe() for o in h)
        verdicts[expected] += 1
    assert min(verdicts.values()) > 100, verdicts  # both kinds were exercised


def test_a_long_linearizable_history_is_checked_quickly() -> None:
    rng = random.Random(7)
    ops: list[Op] = []
    state: object = None
    for i in range(3000):  # five clients, overlapping operations
        t = i * 1.0
        if rng.random() < 0.5:
            ops.append(r(i % 5, state, t - 2.5, t + 2.5))
        else:
            state = i
            ops.append(w(i % 5, i, t - 2.5, t + 2.5))
    assert linearizable(ops)


def test_reports_the_smallest_failing_sub_history_per_key() -> None:
    history = (
        [w(0, i, 2 * i, 2 * i + 1) for i in range(50)]
        + [op(1, "read", None, 200, 201, result=3)]
        + [op(0, "write", 1, 0, 1, key="y"), op(1, "read", None, 2, 3, result=1, key="y")]
    )
    report = check(history)
    assert report.valid is False
    [bad] = report.anomalies
    assert bad.key == "x"
    # The stale read and a write that completed after value 3 was written: nothing else.
    assert [o.f for o in bad.counterexample].count("read") == 1
    assert len(bad.counterexample) <= 3
    assert not linearizable(bad.counterexample)
    assert "NOT linearizable" in report.text()


def test_shrink_keeps_a_failing_history() -> None:
    h = [w(0, 1, 0, 1), w(0, 2, 2, 3), r(1, 1, 4, 5), r(2, 2, 4, 5)]
    small = shrink(h)
    assert not linearizable(small) and len(small) == 3


def test_lease_terms_must_not_overlap() -> None:
    from hakube.testing.jepsen.checks import check_leases

    ok = check_leases({"a": [(0, 3), (3, 4)], "b": [(4.5, 7)], "c": []})
    assert ok.valid and ok.holders == 2
    bad = check_leases({"a": [(0, 3)], "b": [(2.9, 5)]})
    assert not bad.valid and "b led from 2.900 s while a led until 3.000 s" in bad.overlaps[0]
    nested = check_leases({"a": [(0, 10)], "b": [(2, 3)], "c": [(11, 12)]})
    assert not nested.valid and len(nested.overlaps) == 1
