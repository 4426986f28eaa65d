"""The scale run's script end to end at a tiny size: every phase runs and reports its figures.

Real masters, scheduler, controller-manager and hakubectl, so a change that breaks the full-size
run (a phase that never finishes, a figure that is not measured) fails here in about a minute.
No timing assertions: the figures are whatever this machine gives.
"""

from __future__ import annotations

import pytest

from bench.bench_scale import main

pytestmark = pytest.mark.timeout(420)


def test_a_tiny_scale_run_measures_every_phase() -> None:
    out = main(
        [
            "--quick",
            "--timeout",
            "240",
        ]
    )
    pods = out["pods"]
    assert out["pods_per_s"] > 0 and out["cpu_ms_per_pod"] > 0
    assert out["get_pods_all_lines"] >= pods + 1, "hakubectl get pods -A missed pods"
    assert out["list_pods_all"] >= pods
    assert out["rollout_pods"] >= 50 and out["rollout_probes"] > 0
    assert out["rollout_delivery_p99_ms"] >= 0
    rss = out["rss_mib_now_peak"]
    assert {"m1", "m2", "m3", "scheduler", "controller-manager"} <= set(rss)
    assert all(now > 0 for now, _ in rss.values())
    assert out["nodes_not_ready"] == 0
    assert set(out["terms_logged"].values()) >= {1}
