"""The HPA scales its target on CPU utilization: formula, tolerance, limits, stabilization."""

from __future__ import annotations

import io
import time

import pytest

from hakube.api.v1 import pod_pb2
from hakube.cli import ctl
from hakube.client import Client
from hakube.controllers.hpa import USAGE_ANNOTATION, desired_replicas
from hakube.testing.cluster import LocalCluster
from hakube.testing.components import ComponentProcs
from hakube.testing.fakekubelet import set_running
from hakube.testing.wait import wait_for
from tests.controllers.batch.objs import container, manifest, template, update_spec

pytestmark = pytest.mark.timeout(150)
REQUEST = {"resources": {"requests": {"cpu": "100m"}}}


def test_the_formula_tolerance_and_missing_metrics() -> None:
    req = {"a": 100, "b": 100}
    assert desired_replicas(2, {"a": 200, "b": 200}, req, 50) == (8, 200)
    assert desired_replicas(2, {"a": 54, "b": 54}, req, 50) == (2, 54)  # within 10 %
    assert desired_replicas(2, {"a": 10, "b": 10}, req, 50) == (1, 10)
    # b without a metric counts as 0 % when scaling up: (100 + 0) / 2 = 50 % of target 25
    assert desired_replicas(2, {"a": 100}, req, 25) == (4, 100)
    # ... and as 100 % when scaling down, which here flips the direction: no change
    assert desired_replicas(2, {"a": 10}, req, 50) == (2, 10)


def set_usage(client: Client, name: str, cpu: str) -> None:
    pod = client.pods.get(name)
    pod.metadata.annotations[USAGE_ANNOTATION] = cpu
    update_spec(client.pods, pod)


def replicas(client: Client) -> int:
    return client.deployments.get("load").spec.replicas


def test_autoscale_up_to_max_then_down_after_the_window(
    client: Client, managers: ComponentProcs, cluster: LocalCluster
) -> None:
    managers.start(
        "cm-a",
        "--controllers",
        "horizontalpodautoscaling",
        "--hpa-sync-period",
        "0.3",
        "--hpa-downscale-stabilization",
        "3",
    )
    spec = {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "load"}},
        "template": template({"app": "load"}, containers=[container(**REQUEST)]),
    }
    client.deployments.create(manifest("Deployment", "load", spec))
    for name in ("load-a", "load-b"):  # the pods a deployment controller would run
        pod: pod_pb2.Pod = manifest(
            "Pod", name, {"containers": [container(**REQUEST)]}, labels={"app": "load"}
        )
        client.pods.create(pod)
        set_running(client, name)
        set_usage(client, name, "200m")

    out, err = io.StringIO(), io.StringIO()
    argv = ["-s", ",".join(cluster.endpoints()), "autoscale", "deployment", "load"]
    code = ctl.main([*argv, "--min", "1", "--max", "5", "--cpu-percent", "50"], out=out, err=err)
    assert code == 0, err.getvalue()
    bad = ctl.main(
        ["-s", ",".join(cluster.endpoints()), "autoscale", "pod", "load-a", "--max", "3"],
        out=out,
        err=err,
    )
    assert bad == 2 and "cannot be autoscaled" in err.getvalue()

    wait_for(lambda: replicas(client) == 5, 20, "scale up to maxReplicas")  # 8 clamped to 5
    hpa = client.horizontalpodautoscalers.get("load")
    wait_for(
        lambda: client.horizontalpodautoscalers.get("load").status.current_metrics, 20, "status"
    )
    st = client.horizontalpodautoscalers.get("load").status
    assert st.current_metrics[0].resource.current.average_utilization == 200
    assert hpa.spec.min_replicas == 1

    for name in ("load-a", "load-b"):
        set_usage(client, name, "10m")
    low_at = time.monotonic()
    wait_for(lambda: replicas(client) == 1, 20, "scale down to minReplicas")
    assert time.monotonic() - low_at >= 2.5  # not before the 3 s stabilization window
