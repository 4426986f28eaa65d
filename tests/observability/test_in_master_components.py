"""With ``hakube master --with-controllers`` (the Ansible deployment), the scheduler and the
controller-manager run inside each master and their metrics are served on the master's own
/metrics: one scrape target per master covers all three."""

from __future__ import annotations

import os
import urllib.request

import pytest

from hakube.testing.cluster import LocalCluster
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(120)


def test_in_master_components_are_served_on_the_masters_metrics(tmp_path: str) -> None:
    with LocalCluster(os.path.join(str(tmp_path), "c"), 1, extra_args=["--with-controllers"]) as c:
        url = f"http://{c.masters[0].metrics}/metrics"

        def text() -> str:
            with urllib.request.urlopen(url, timeout=5) as r:
                return str(r.read().decode())

        def leading_both() -> bool:
            body = text()
            return all(
                f'hakube_leader_election_is_leader{{lease="{lease}"}} 1.0' in body
                for lease in ("hakube-scheduler", "hakube-controller-manager")
            )

        wait_for(leading_both, 30, "the in-master components to lead", interval=0.2)
        wanted = (
            "hakube_raft_has_leader",
            'hakube_scheduler_schedule_attempts_total{result="scheduled"}',
            'hakube_scheduler_pending_pods{queue="active"}',
            'hakube_controller_syncs_total{controller="deployment",result="ok"}',
            'hakube_controller_queue_depth{controller="replicaset"}',
            "process_cpu_seconds_total",
            "python_info",
        )

        def missing() -> list[str]:
            body = text()
            return [name for name in wanted if name not in body]

        # a component's series appear once its loop ran after it took the lease
        try:
            wait_for(lambda: not missing(), 30, "every component's series", interval=0.2)
        except TimeoutError as e:
            raise AssertionError(f"{e}: missing {missing()}") from None
