"""Native sidecars and lifecycle hooks on real containerd: a sidecar starts before the app
containers and keeps running (restarted when it exits) beside them; a pod whose app containers
finish succeeds and its sidecar is stopped after them; postStart runs in the container as it
starts, preStop before it is stopped, and a failing postStart gets the container restarted."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hakube.api.v1 import pod_pb2
from hakube.client import Client
from hakube.client.errors import Invalid
from hakube.cri.v1 import api_pb2 as cri_pb
from hakube.testing.cluster import LocalCluster
from hakube.testing.containerd import BUSYBOX_IMAGE, Containerd
from hakube.testing.wait import wait_for
from tests.agent.conftest import StartAgent, ctl, get_pod, make_pod, wait_pod

pytestmark = [pytest.mark.containerd, pytest.mark.timeout(150)]

SHARED = [{"name": "shared", "mountPath": "/shared"}]
WAIT_FOR = "while [ ! -f {f} ]; do sleep 0.1; done; "
LOOP = "trap 'exit 0' TERM; while true; do sleep 0.2; done"


def sh(name: str, script: str, **extra: object) -> dict[str, object]:
    return {
        "name": name,
        "image": BUSYBOX_IMAGE,
        "command": ["sh", "-c", script],
        "volumeMounts": SHARED,
        **extra,
    }


def statuses(p: pod_pb2.Pod) -> dict[str, pod_pb2.ContainerStatus]:
    return {s.name: s for s in [*p.status.init_container_statuses, *p.status.container_statuses]}


def runtime_state(ctd: Containerd, pod: str, container: str) -> int | None:
    """The CRI state of the newest instance of ``container`` of ``pod``."""
    with ctd.client() as cri:
        found = cri.list_containers(
            labels={"hakube.io/pod-name": pod, "hakube.io/container-name": container}
        )
    if not found:
        return None
    return max(found, key=lambda c: c.metadata.attempt).state


def logs(cluster: LocalCluster, pod: str, container: str) -> str:
    return ctl(cluster, "logs", pod, "-c", container)[1]


def test_a_sidecar_runs_before_and_beside_the_app_and_stops_after_it(
    cluster: LocalCluster, client: Client, start_agent: StartAgent, containerd: Containerd
) -> None:
    agent = start_agent()
    client.pods.create(
        make_pod(
            "with-sidecar",
            agent.node,
            [sh("app", WAIT_FOR.format(f="/shared/ready") + "cat /shared/ready; sleep 1")],
            restartPolicy="Never",
            initContainers=[
                sh("setup", "echo setup > /shared/setup"),
                sh(
                    "proxy",
                    "cat /shared/setup; echo proxy-up > /shared/ready; " + LOOP,
                    restartPolicy="Always",
                ),
            ],
            volumes=[{"name": "shared", "emptyDir": {}}],
        )
    )
    running = wait_pod(client, "with-sidecar", lambda p: p.status.phase == "Running", 40, "Running")
    st = statuses(running)
    assert st["setup"].state.terminated.exit_code == 0
    assert st["proxy"].state.HasField("running")
    done = wait_pod(client, "with-sidecar", lambda p: p.status.phase == "Succeeded", 40, "done")
    assert statuses(done)["app"].state.terminated.exit_code == 0
    assert logs(cluster, "with-sidecar", "app") == "proxy-up\n"  # the sidecar ran first
    assert logs(cluster, "with-sidecar", "proxy") == "setup\n"  # after the init container
    wait_for(
        lambda: runtime_state(containerd, "with-sidecar", "proxy") == cri_pb.CONTAINER_EXITED,
        30,
        "the sidecar stopped after the app finished",
    )


def test_an_exited_sidecar_is_restarted_while_the_app_runs_on(
    client: Client, start_agent: StartAgent
) -> None:
    agent = start_agent(extra=["--backoff-base", "0.2"])
    client.pods.create(
        make_pod(
            "flaky-sidecar",
            agent.node,
            [sh("app", LOOP)],
            restartPolicy="Never",
            initContainers=[sh("helper", "sleep 1; exit 3", restartPolicy="Always")],
            volumes=[{"name": "shared", "emptyDir": {}}],
        )
    )

    def restarted(p: pod_pb2.Pod) -> bool:
        st = statuses(p)
        return "helper" in st and st["helper"].restart_count >= 2

    p = wait_pod(client, "flaky-sidecar", restarted, 60, "the sidecar restarted twice")
    assert p.status.phase == "Running"
    assert statuses(p)["app"].restart_count == 0 and statuses(p)["app"].state.HasField("running")


def test_post_start_and_pre_stop_hooks_run_in_the_container(
    client: Client, start_agent: StartAgent, containerd: Containerd
) -> None:
    agent = start_agent()
    host_dir = containerd.base / f"hooks-{agent.node}"
    host_dir.mkdir()
    app = {
        "name": "app",
        "image": BUSYBOX_IMAGE,
        "command": ["sh", "-c", WAIT_FOR.format(f="/host/post") + LOOP],
        "volumeMounts": [{"name": "host", "mountPath": "/host"}],
        "lifecycle": {
            "postStart": {"exec": {"command": ["sh", "-c", "echo started > /host/post"]}},
            "preStop": {"exec": {"command": ["sh", "-c", "echo stopping > /host/pre"]}},
        },
    }
    client.pods.create(
        make_pod(
            "hooked",
            agent.node,
            [app],
            volumes=[{"name": "host", "hostPath": {"path": str(host_dir)}}],
        )
    )
    wait_pod(client, "hooked", lambda p: p.status.phase == "Running", 40, "Running")
    assert (host_dir / "post").read_text() == "started\n"
    assert not (host_dir / "pre").exists()
    client.pods.delete("hooked", namespace="default")
    wait_for(lambda: get_pod(client, "hooked") is None, 40, "pod removed")
    assert (host_dir / "pre").read_text() == "stopping\n"


def test_a_failing_post_start_hook_restarts_the_container(
    client: Client, start_agent: StartAgent
) -> None:
    agent = start_agent(extra=["--backoff-base", "0.2"])
    app = {
        "name": "app",
        "image": BUSYBOX_IMAGE,
        "command": ["sh", "-c", LOOP],
        "lifecycle": {"postStart": {"exec": {"command": ["sh", "-c", "exit 7"]}}},
    }
    client.pods.create(make_pod("bad-hook", agent.node, [app]))

    def failed_hook() -> bool:
        return any(
            e.reason == "FailedPostStartHook" and e.involved_object.name == "bad-hook"
            for e in client.events.list(namespace="default").items
        )

    wait_for(failed_hook, 40, "a FailedPostStartHook event")

    def restarted(p: pod_pb2.Pod) -> bool:
        st = statuses(p).get("app")
        return st is not None and st.restart_count >= 1

    p = wait_pod(client, "bad-hook", restarted, 40, "restarted")
    assert p.status.phase == "Running"


def test_bad_sidecars_and_hooks_are_refused_naming_the_field(
    client: Client, tmp_path: Path
) -> None:
    cases = [
        (
            {"initContainers": [sh("s", "true", restartPolicy="OnFailure")]},
            "spec.initContainers[0].restartPolicy",
        ),
        (
            {"initContainers": [sh("s", "true", readinessProbe={"exec": {"command": ["true"]}})]},
            "spec.initContainers[0].readinessProbe",
        ),
        (
            {"containers": [sh("c", "true", restartPolicy="Always")]},
            "spec.containers[0].restartPolicy",
        ),
        (
            {"containers": [sh("c", "true", lifecycle={"preStop": {"tcpSocket": {"port": 80}}})]},
            "spec.containers[0].lifecycle.preStop.tcpSocket",
        ),
        (
            {"containers": [sh("c", "true", lifecycle={"postStart": {"sleep": {"seconds": 0}}})]},
            "spec.containers[0].lifecycle.postStart.sleep.seconds",
        ),
    ]
    for spec, field in cases:
        containers = spec.pop("containers", [sh("c", "true")])
        pod = make_pod(
            "bad", "nowhere", containers, volumes=[{"name": "shared", "emptyDir": {}}], **spec
        )
        with pytest.raises(Invalid, match=re.escape(f"{field}:")):
            client.pods.create(pod)
