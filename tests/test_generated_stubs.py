"""The committed protobuf stubs are exactly what scripts/genproto.sh generates."""

from __future__ import annotations

import filecmp
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.timeout(120)
def test_regenerating_the_stubs_changes_nothing(tmp_path: Path) -> None:
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "genproto.sh"), str(tmp_path)], check=True, cwd=ROOT
    )
    generated = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert generated
    for p in generated:
        committed = ROOT / p.relative_to(tmp_path)
        assert committed.exists(), f"{committed} is generated but not committed"
        assert filecmp.cmp(p, committed, shallow=False), f"{committed} is stale: run genproto"
    for committed in ROOT.glob("hakube/**/*_pb2*.py*"):
        assert (tmp_path / committed.relative_to(ROOT)).exists() or os.path.basename(
            committed
        ).startswith("."), f"{committed} has no .proto"
