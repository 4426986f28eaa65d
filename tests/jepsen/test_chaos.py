"""A short seeded fault run on five masters: partitions (majority/minority, isolated leader,
bridge), packet loss, packets delayed and reordered, kill -9 and restart, SIGSTOP pauses of the
leader, a full disk — while
clients read, write and compare-and-set registers, add to a set and watch every master. The
history must be linearizable, no acknowledged add lost, every watcher must see every change
once, in order, and no two lease candidates may believe they lead at the same time. The long
runs are bench/jepsen.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hakube.testing.jepsen.run import RunConfig, run
from hakube.testing.netns import unavailable_reason
from tests.conftest import require

pytestmark = [pytest.mark.netns, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def prerequisites() -> None:
    require(unavailable_reason())
    if shutil.which("nft") is None:
        require("nftables is not installed (scripts/install/nftables.sh)")
    if shutil.which("iptables") is None:
        require("iptables is not installed (scripts/install/iptables.sh)")


def test_a_seeded_fault_run_is_linearizable_and_loses_nothing(
    prerequisites: None, tmp_path: Path
) -> None:
    result = run(
        RunConfig(
            masters=5,
            seconds=100,
            seed=20261205,
            out=tmp_path,
            fault_every=(1.0, 3.0),
            fault_for=(3.0, 6.0),
            disk_mb=64,
            # one of each family, so that a loaded machine's fewer faults still cover them all
            kinds=(
                "partition-majority",
                "isolate-leader",
                "bridge",
                "loss",
                "reorder",
                "kill",
                "pause-leader",
            ),
        )
    )
    print(result.report)
    assert result.valid is True, result.report
    assert result.svg.startswith("<svg") and (tmp_path / "timeline.svg").exists()
    assert result.ops > 1000, result.report
    drawn = {f.kind for f in result.faults}
    assert {"partition-majority", "kill", "pause-leader", "disk-full", "reorder"} <= drawn, (
        result.report
    )
