"""The load driver's accounting: operations, errors and percentiles, on trivial in-process ops.

No timing assertions: latencies come from a fake clock that each operation advances by a known
amount, and an operation that never awaits runs to completion before another one starts, so the
figures are exact whatever the machine's speed.
"""

from __future__ import annotations

import asyncio
import math

import pytest

from bench.loadgen import error_kind, percentile, run_load
from bench.report import format_failover_table, format_load_table


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_every_index_runs_once_and_latencies_give_exact_percentiles() -> None:
    clock = FakeClock()
    seen: list[int] = []

    async def op(i: int) -> None:
        seen.append(i)
        clock.now += (i + 1) / 1000  # op i "takes" i+1 ms

    result = asyncio.run(run_load(op, concurrency=8, count=100, clock=clock))

    assert sorted(seen) == list(range(100))
    assert (result.ops, result.errors) == (100, 0)
    assert result.p50_ms == pytest.approx(50)
    assert result.p99_ms == pytest.approx(99)
    assert result.max_ms == pytest.approx(100)
    assert result.elapsed_s == pytest.approx(5.05)  # 1 + 2 + ... + 100 ms
    assert result.ops_per_s == pytest.approx(100 / 5.05)


def test_failed_ops_are_counted_by_kind_and_left_out_of_latencies() -> None:
    clock = FakeClock()

    async def op(i: int) -> None:
        clock.now += 0.001
        if i % 10 == 0:
            raise ConnectionError("refused")
        if i % 10 == 1:
            raise KeyError(i)

    result = asyncio.run(run_load(op, concurrency=4, count=100, clock=clock))

    assert (result.ops, result.errors) == (80, 20)
    assert result.error_kinds == {"ConnectionError": 10, "KeyError": 10}
    assert result.p50_ms == pytest.approx(1)


def test_an_op_that_overruns_its_timeout_is_an_error_not_a_hang() -> None:
    async def op(i: int) -> None:
        if i == 0:
            await asyncio.Event().wait()  # never set

    result = asyncio.run(run_load(op, concurrency=2, count=5, op_timeout_s=0.01))

    assert (result.ops, result.errors) == (4, 1)
    assert result.error_kinds == {"TimeoutError": 1}


def test_a_duration_bound_stops_starting_new_ops() -> None:
    clock = FakeClock()

    async def op(i: int) -> None:
        clock.now += 0.001

    result = asyncio.run(run_load(op, concurrency=1, duration_s=0.05, clock=clock))

    assert result.ops == 50


def test_max_errors_stops_a_run_against_a_dead_system() -> None:
    async def op(i: int) -> None:
        raise ConnectionError("down")

    result = asyncio.run(run_load(op, concurrency=1, count=1000, max_errors=3))

    assert (result.ops, result.errors) == (0, 3)
    assert math.isnan(result.p50_ms) and math.isnan(result.max_ms)


def test_an_unbounded_run_is_refused() -> None:
    async def op(i: int) -> None:
        pass

    with pytest.raises(ValueError, match="bounded"):
        asyncio.run(run_load(op, concurrency=1))


def test_nearest_rank_percentiles_are_observed_values() -> None:
    assert percentile([5.0], 50) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 99) == 4.0
    assert math.isnan(percentile([], 50))


def test_error_kind_names_the_status_code_of_rpc_errors() -> None:
    class Code:
        name = "UNAVAILABLE"

    class RpcError(Exception):
        def code(self) -> Code:
            return Code()

    assert error_kind(RpcError()) == "RpcError(UNAVAILABLE)"
    assert error_kind(ValueError()) == "ValueError"


def test_report_shows_dashes_for_systems_that_did_not_run() -> None:
    clock = FakeClock()

    async def op(i: int) -> None:
        clock.now += 0.002

    etcd = asyncio.run(run_load(op, concurrency=1, count=10, clock=clock))
    table = format_load_table({"put, sequential": {"etcd": etcd}}, ("hakube", "etcd"), "etcd")
    header, rule, row = table.splitlines()

    assert "hakube/etcd ops/s" in header
    assert row.count("—") == 6  # four hakube cells and two ratios
    assert "500" in row and "2.00" in row

    failover = format_failover_table({"kill": {"etcd": [1.0, 3.0, 2.0]}}, ("hakube", "etcd"))
    cells = [c.strip() for c in failover.splitlines()[2].strip("|").split("|")]
    assert cells == ["kill", "—", "—", "—", "2.00", "3.00", "3"]
