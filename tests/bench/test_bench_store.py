"""The store benchmark's own logic, without starting any cluster."""

from __future__ import annotations

import pytest

from bench.bench_store import parse_args, settings_from
from bench.loadgen import LoadResult
from bench.store_scenarios import Settings, median_round


def result(ops: int) -> LoadResult:
    return LoadResult(ops=ops, errors=0, elapsed_s=1.0, p50_ms=1.0, p99_ms=2.0, max_ms=3.0)


def test_the_median_round_is_kept_whole() -> None:
    rounds = [result(300), result(100), result(200)]
    assert median_round(rounds) is rounds[2]
    assert median_round([result(1), result(2)]).ops == 1


def test_command_line_becomes_settings() -> None:
    s = settings_from(parse_args(["--concurrency", "1,8", "--modes", "nofsync", "--rounds", "1"]))
    assert (s.concurrency, s.fsync_modes, s.rounds) == ((1, 8), (False,), 1)


def test_settings_refuse_a_run_that_measures_nothing() -> None:
    with pytest.raises(ValueError, match="rounds=0"):
        Settings(rounds=0)
