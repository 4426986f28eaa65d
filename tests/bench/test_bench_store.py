"""The store benchmark's own logic, without starting any cluster."""

from __future__ import annotations

import pytest

from bench.bench_store import (
    BASELINE,
    RATIOS,
    REPORT_SYSTEMS,
    SYSTEMS,
    TLS_PAIRS,
    parse_args,
    settings_from,
)
from bench.hakube_system import PLAIN_REV
from bench.loadgen import LoadResult
from bench.report import (
    format_load_table,
    format_tls_cost_table,
    format_tls_failover_table,
    tls_ratios,
    tls_target_met,
)
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


def tls_rows(hakube: tuple[int, int], etcd: tuple[int, int]) -> dict[str, LoadResult]:
    """One scenario's results: (TLS, plain) ops/s of each product, p50 = 1000/ops ms."""
    names = {"hakube": hakube[0], "hakube-plain": hakube[1], "etcd-tls": etcd[0], "etcd": etcd[1]}
    return {
        n: LoadResult(ops=ops, errors=0, elapsed_s=1.0, p50_ms=1000 / ops, p99_ms=1.0, max_ms=1.0)
        for n, ops in names.items()
    }


@pytest.mark.parametrize(
    ("hakube", "etcd", "met"),
    [
        ((900, 1000), (900, 1000), True),  # same relative cost
        ((800, 1000), (900, 1000), True),  # 0.80 vs 0.90: exactly the 0.1 allowed
        ((790, 1000), (900, 1000), False),  # 0.79 vs 0.90: TLS costs hakube too much more
        ((500, 1000), (900, 1000), False),
        ((1000, 1000), (500, 1000), True),  # TLS costs hakube less: met
    ],
)
def test_tls_target_compares_relative_costs(
    hakube: tuple[int, int], etcd: tuple[int, int], met: bool
) -> None:
    subject, peer = TLS_PAIRS
    by_system = tls_rows(hakube, etcd)
    h_ops, h_p50 = tls_ratios(by_system, subject)
    e_ops, _ = tls_ratios(by_system, peer)

    assert h_ops == pytest.approx(hakube[0] / hakube[1])
    assert e_ops == pytest.approx(etcd[0] / etcd[1])
    assert h_p50 == pytest.approx(hakube[1] / hakube[0])
    assert tls_target_met(h_ops, e_ops) is met


def test_tls_cost_table_shows_ratios_and_verdict_and_dashes_for_missing_runs() -> None:
    subject, peer = TLS_PAIRS
    rows = {
        "put, sequential": tls_rows((790, 1000), (900, 1000)),
        "put, 256 in flight": tls_rows((900, 1000), (900, 1000)),
    }
    del rows["put, 256 in flight"]["etcd"]
    table = format_tls_cost_table(rows, subject, peer)
    lines = table.splitlines()
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]

    assert lines[0].count("|") == 15  # scenario, 6 per product, verdict
    assert cells[0][0] == "put, sequential"
    assert cells[0][1:4] == ["1,000", "790", "0.79"]
    assert cells[0][7:10] == ["1,000", "900", "0.90"]
    assert cells[0][-1] == "NO"
    assert cells[1][7] == "—" and cells[1][9] == "—" and cells[1][-1] == "—"


def test_tls_failover_table_checks_hakubes_median_against_two_seconds() -> None:
    table = format_tls_failover_table(
        {
            "fsync": {"hakube": [1.0, 3.0, 2.5], "etcd-tls": [1.0]},
            "no fsync": {"hakube": [0.5, 2.0, 9.0]},
        },
        "hakube",
        "etcd-tls",
        2.0,
    )
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()[2:]]

    assert cells == [["fsync", "2.50", "1.00", "NO"], ["no fsync", "2.00", "—", "yes"]]


def test_the_load_table_pairs_each_hakube_with_the_etcd_of_the_same_security() -> None:
    table = format_load_table(
        {"put": tls_rows((500, 1000), (400, 800))}, REPORT_SYSTEMS, BASELINE, RATIOS
    )
    header = [c.strip() for c in table.splitlines()[0].strip("|").split("|")]
    cells = [c.strip() for c in table.splitlines()[2].strip("|").split("|")]

    assert header[-6:] == [
        "hakube/etcd-tls ops/s",
        "hakube/etcd-tls p50",
        "hakube-plain/etcd ops/s",
        "hakube-plain/etcd p50",
        "hakube-batch/etcd-tls ops/s",
        "hakube-batch/etcd-tls p50",
    ]
    assert cells[-6:] == ["1.25", "0.80", "1.25", "0.80", "—", "—"]


def test_every_system_runs_by_default() -> None:
    args = parse_args([])
    assert args.systems.split(",") == ["hakube", "hakube-batch", "hakube-plain", "etcd-tls", "etcd"]
    assert set(REPORT_SYSTEMS) == set(SYSTEMS)
    assert args.plain_rev == PLAIN_REV and args.plain_tree is None
