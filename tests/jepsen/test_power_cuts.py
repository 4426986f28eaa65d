"""A short seeded fault run whose only faults are power cuts: one master, the leader, a
majority, all of them — each killed with its lazy file system dropping everything unsynced
(hakube/testing/lazyfs). With ``--fsync`` (the masters' default) the history must be
linearizable and no acknowledged add lost. bench/jepsen.py --lazyfs mixes the power cuts with
every other fault."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hakube.testing import lazyfs
from hakube.testing.jepsen.nemesis import POWER_CUTS
from hakube.testing.jepsen.run import RunConfig, run
from hakube.testing.netns import unavailable_reason
from tests.conftest import require

pytestmark = [pytest.mark.netns, pytest.mark.timeout(400)]


def test_power_cuts_lose_no_acknowledged_write_and_keep_the_history_linearizable(
    tmp_path: Path,
) -> None:
    require(unavailable_reason())
    require(lazyfs.unavailable_reason())
    if shutil.which("nft") is None:
        require("nftables is not installed (scripts/install/nftables.sh)")
    result = run(
        RunConfig(
            masters=3,
            seconds=45,
            seed=20261206,
            out=tmp_path,
            fault_every=(1.0, 2.0),
            fault_for=(2.0, 4.0),
            kinds=POWER_CUTS,
            lazyfs=True,
        )
    )
    print(result.report)
    assert result.valid is True, result.report
    assert set(POWER_CUTS) <= {f.kind for f in result.faults}, result.report


def test_power_cuts_need_lazy_file_systems() -> None:
    with pytest.raises(ValueError, match="need RunConfig.lazyfs"):
        run(RunConfig(kinds=("power-cut",)))
