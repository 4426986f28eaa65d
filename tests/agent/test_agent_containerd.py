"""The node agent against real containerd and a real 3-master cluster: pods run, restart,
report status, are deleted gracefully, and survive an agent restart; logs and exec work."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hakube.api.agent.v1 import agent_pb2
from hakube.api.v1 import nodeproxy_pb2, pod_pb2
from hakube.client import Client
from hakube.cri.v1 import api_pb2 as cri_pb
from hakube.testing.cluster import LocalCluster
from hakube.testing.containerd import BUSYBOX_IMAGE, Containerd
from hakube.testing.wait import wait_for
from tests.agent.conftest import (
    AgentProc,
    StartAgent,
    condition,
    configmap,
    ctl,
    first,
    get_pod,
    make_pod,
    secret,
    wait_pod,
)

pytestmark = [pytest.mark.containerd, pytest.mark.timeout(120)]


def running_ready(p: pod_pb2.Pod) -> bool:
    return p.status.phase == "Running" and condition(p, "Ready") == "True"


def test_a_pod_runs_with_env_configmap_secret_and_volumes_visible_inside(
    cluster: LocalCluster,
    client: Client,
    start_agent: StartAgent,
    tmp_path: object,
    containerd: Containerd,
) -> None:
    agent = start_agent()
    client.configmaps.create(configmap("web-cfg", {"greeting": "hello", "MODE": "fast"}))
    client.secrets.create(secret("web-sec", {"password": "s3cret"}))
    host_dir = containerd.base / "hostpath-web"
    host_dir.mkdir()
    (host_dir / "from-host").write_text("host data")
    script = (
        "echo GREETING=$GREETING MODE=$MODE PASSWORD=$PASSWORD POD=$POD_NAME "
        "NS=$POD_NS IP=$POD_IP LITERAL=$LITERAL; cat /etc/cfg/greeting; echo; "
        "cat /etc/sec/password; echo; cat /host/from-host; echo; "
        "echo scratch > /scratch/file; exec sleep 3600"
    )
    pod = make_pod(
        "web",
        agent.node,
        [
            {
                "name": "main",
                "image": BUSYBOX_IMAGE,
                "command": ["sh", "-c", script],
                "workingDir": "/scratch",
                "env": [
                    {
                        "name": "GREETING",
                        "valueFrom": {"configMapKeyRef": {"name": "web-cfg", "key": "greeting"}},
                    },
                    {
                        "name": "PASSWORD",
                        "valueFrom": {"secretKeyRef": {"name": "web-sec", "key": "password"}},
                    },
                    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                    {
                        "name": "POD_NS",
                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                    },
                    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {"name": "LITERAL", "value": "lit-$(POD_NAME)"},
                ],
                "envFrom": [{"configMapRef": {"name": "web-cfg"}, "prefix": ""}],
                "resources": {"limits": {"cpu": "500m", "memory": "64Mi"}},
                "volumeMounts": [
                    {"name": "cfg", "mountPath": "/etc/cfg"},
                    {"name": "sec", "mountPath": "/etc/sec"},
                    {"name": "scratch", "mountPath": "/scratch"},
                    {"name": "host", "mountPath": "/host"},
                ],
            }
        ],
        volumes=[
            {"name": "cfg", "configMap": {"name": "web-cfg"}},
            {"name": "sec", "secret": {"secretName": "web-sec"}},
            {"name": "scratch", "emptyDir": {}},
            {"name": "host", "hostPath": {"path": str(host_dir)}},
        ],
    )
    client.pods.create(pod)
    p = wait_pod(client, "web", running_ready, 30, "Running and Ready")
    st = p.status
    assert st.host_ip == "127.0.0.1" and st.pod_ip == "127.0.0.1" and st.start_time
    assert st.qos_class == "Guaranteed"
    assert {c.type: c.status for c in st.conditions} == {
        "PodScheduled": "True",
        "Initialized": "True",
        "ContainersReady": "True",
        "Ready": "True",
    }
    cs = st.container_statuses[0]
    assert cs.ready and cs.restart_count == 0 and cs.state.running.started_at
    assert cs.container_id.startswith("containerd://") and cs.image_id.startswith("sha256:")

    def logs() -> str:
        return ctl(cluster, "logs", "web")[1]

    wait_for(lambda: "host data" in logs(), 10, "the container's output")
    out = logs()
    assert (
        "GREETING=hello MODE=fast PASSWORD=s3cret POD=web NS=default IP=127.0.0.1 LITERAL=lit-web"
    ) in out
    assert "hello\ns3cret\nhost data\n" in out
    code, out, err = ctl(
        cluster, "exec", "web", "--", "sh", "-c", "pwd; cat /scratch/file; echo oops >&2; exit 7"
    )
    assert (code, out, err) == (7, "/scratch\nscratch\n", "oops\n")
    assert ctl(cluster, "logs", "web", "--tail", "1")[1] == "host data\n"
    # the memory limit reached the container's cgroup
    code, out, _ = ctl(
        cluster,
        "exec",
        "web",
        "--",
        "sh",
        "-c",
        "cat /sys/fs/cgroup/memory.max 2>/dev/null || "
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
    )
    assert code == 0 and out.strip() == str(64 * 2**20)
    reasons = {
        e.reason
        for e in client.events.list(namespace="default").items
        if e.involved_object.name == "web"
    }
    assert {"Created", "Started"} <= reasons
    # usage, as `hakubectl top` shows it, comes from containerd's cgroup stats
    stats = client.transport.stubs(client.servers[0]).node_proxy.Stats(
        nodeproxy_pb2.NodeStatsRequest(
            node=agent.node, request=agent_pb2.StatsRequest(namespace="default")
        ),
        timeout=15,
    )
    web = {p.name: p for p in stats.pods}["web"]
    assert 0 < web.memory_working_set_bytes <= 64 * 2**20
    assert stats.node_memory_working_set_bytes > web.memory_working_set_bytes
    assert stats.node_cpu_nano_cores > 0
    code, out, _ = ctl(cluster, "top", "pods", "web")
    assert code == 0 and out.split("\n")[1].split()[0] == "web"


def test_a_crashing_container_restarts_with_back_off_and_growing_restart_count(
    cluster: LocalCluster, client: Client, start_agent: StartAgent
) -> None:
    agent = start_agent()
    client.pods.create(
        make_pod(
            "crash",
            agent.node,
            [
                {
                    "name": "c",
                    "image": BUSYBOX_IMAGE,
                    "command": ["sh", "-c", "echo run at $(date +%s%N); exit 3"],
                }
            ],
        )
    )
    p = wait_pod(client, "crash", lambda p: first(p).restart_count >= 3, 40, "restartCount >= 3")
    cs = p.status.container_statuses[0]
    last = cs.last_state.terminated if cs.last_state.HasField("terminated") else cs.state.terminated
    assert last.exit_code == 3 and last.reason == "Error"
    assert p.status.phase == "Running"
    p = wait_pod(
        client,
        "crash",
        lambda p: first(p).state.waiting.reason == "CrashLoopBackOff",
        20,
        "CrashLoopBackOff",
    )
    assert condition(p, "Ready") == "False" and first(p).last_state.terminated.exit_code == 3
    code, out, _ = ctl(cluster, "logs", "crash", "--previous")
    assert code == 0 and out.startswith("run at ")
    reasons = {
        e.reason
        for e in client.events.list(namespace="default").items
        if e.involved_object.name == "crash"
    }
    assert "BackOff" in reasons


def test_deleting_a_pod_stops_it_with_its_grace_period_then_removes_it(
    client: Client, start_agent: StartAgent, containerd: Containerd
) -> None:
    agent = start_agent()
    # Handles SIGTERM: gone long before its grace period ends.
    polite = "trap 'echo bye; exit 0' TERM; while true; do sleep 0.2; done"
    client.pods.create(
        make_pod(
            "polite",
            agent.node,
            [{"name": "c", "image": BUSYBOX_IMAGE, "command": ["sh", "-c", polite]}],
            terminationGracePeriodSeconds=20,
        )
    )
    # Ignores SIGTERM (PID 1 without a handler): killed when its 2 s are up.
    client.pods.create(
        make_pod(
            "stubborn",
            agent.node,
            [{"name": "c", "image": BUSYBOX_IMAGE, "command": ["sleep", "3600"]}],
            terminationGracePeriodSeconds=2,
        )
    )
    for name in ("polite", "stubborn"):
        wait_pod(client, name, running_ready, 30, "Running")
    t0 = time.monotonic()
    res = client.pods.delete("polite", namespace="default")
    assert res.object is not None and not res.deleted  # marked, not removed
    assert res.object.metadata.deletion_timestamp
    wait_for(lambda: get_pod(client, "polite") is None, 15, "polite pod removed")
    polite_took = time.monotonic() - t0
    t0 = time.monotonic()
    client.pods.delete("stubborn", namespace="default")
    wait_for(lambda: get_pod(client, "stubborn") is None, 20, "stubborn pod removed")
    stubborn_took = time.monotonic() - t0
    assert polite_took < 10, polite_took
    assert stubborn_took >= 1.8, stubborn_took
    with containerd.client() as cri:
        assert cri.list_pod_sandboxes(labels={"hakube.io/node": agent.node}) == []


def test_a_restarted_agent_adopts_running_containers_without_restarting_them(
    client: Client, start_agent: StartAgent, containerd: Containerd
) -> None:
    agent = start_agent()
    client.pods.create(
        make_pod(
            "steady",
            agent.node,
            [{"name": "c", "image": BUSYBOX_IMAGE, "command": ["sleep", "3600"]}],
        )
    )
    before = wait_pod(client, "steady", running_ready, 30, "Running").status
    agent.kill()
    again = start_agent(node=agent.node)
    # The new agent queues every pod it finds at start, "steady" first; once a pod created
    # after the restart runs, "steady" has been reconciled too.
    client.pods.create(
        make_pod(
            "after",
            again.node,
            [{"name": "c", "image": BUSYBOX_IMAGE, "command": ["sleep", "3600"]}],
        )
    )
    wait_pod(client, "after", running_ready, 30, "a new pod Running after the restart")
    p = wait_pod(client, "steady", running_ready, 10, "still Running")
    cs, old = p.status.container_statuses[0], before.container_statuses[0]
    assert cs.container_id == old.container_id
    assert cs.restart_count == 0 and cs.state.running.started_at == old.state.running.started_at
    with containerd.client() as cri:
        mine = cri.list_containers(
            labels={"hakube.io/node": agent.node, "hakube.io/pod-name": "steady"}
        )
        assert [c.id for c in mine] == [old.container_id.split("://")[1]]
        assert (
            len(
                cri.list_pod_sandboxes(
                    labels={"hakube.io/node": agent.node, "hakube.io/pod-name": "steady"}
                )
            )
            == 1
        )


def test_a_missing_image_reports_err_image_pull_then_image_pull_back_off(
    client: Client, start_agent: StartAgent
) -> None:
    agent = start_agent()
    client.pods.create(
        make_pod("noimage", agent.node, [{"name": "c", "image": "127.0.0.1:1/hakube/missing:v1"}])
    )
    seen: set[str] = set()

    def reason(p: pod_pb2.Pod) -> bool:
        seen.add(first(p).state.waiting.reason)
        return {"ErrImagePull", "ImagePullBackOff"} <= seen

    p = wait_pod(client, "noimage", reason, 30, "ErrImagePull and ImagePullBackOff")
    assert p.status.phase == "Pending"
    msg = p.status.container_statuses[0].state.waiting.message
    assert "127.0.0.1:1/hakube/missing:v1" in msg


def test_a_failing_liveness_probe_restarts_the_container(
    client: Client, start_agent: StartAgent
) -> None:
    agent = start_agent()
    probe = {
        "exec": {"command": ["test", "-f", "/tmp/alive"]},
        "periodSeconds": 1,
        "failureThreshold": 2,
    }
    client.pods.create(
        make_pod(
            "live",
            agent.node,
            [
                {
                    "name": "c",
                    "image": BUSYBOX_IMAGE,
                    "command": [
                        "sh",
                        "-c",
                        "touch /tmp/alive; sleep 2; rm /tmp/alive; exec sleep 3600",
                    ],
                    "livenessProbe": probe,
                }
            ],
            terminationGracePeriodSeconds=1,
        )
    )
    p = wait_pod(
        client, "live", lambda p: first(p).restart_count >= 1, 30, "restarted by its liveness probe"
    )
    assert first(p).last_state.terminated.reason in ("Error", "Completed")
    reasons = {
        e.reason
        for e in client.events.list(namespace="default").items
        if e.involved_object.name == "live"
    }
    assert {"Unhealthy", "Killing"} <= reasons


def test_a_readiness_probe_flips_the_ready_condition(
    cluster: LocalCluster, client: Client, start_agent: StartAgent
) -> None:
    agent = start_agent()
    probe = {
        "exec": {"command": ["test", "-f", "/tmp/ready"]},
        "periodSeconds": 1,
        "failureThreshold": 1,
    }
    client.pods.create(
        make_pod(
            "ready",
            agent.node,
            [
                {
                    "name": "c",
                    "image": BUSYBOX_IMAGE,
                    "command": ["sleep", "3600"],
                    "readinessProbe": probe,
                }
            ],
        )
    )
    p = wait_pod(client, "ready", lambda p: p.status.phase == "Running", 30, "Running")
    assert condition(p, "Ready") == "False" and not first(p).ready
    assert ctl(cluster, "exec", "ready", "--", "touch", "/tmp/ready")[0] == 0
    wait_pod(client, "ready", lambda p: condition(p, "Ready") == "True", 10, "Ready")
    assert ctl(cluster, "exec", "ready", "--", "rm", "/tmp/ready")[0] == 0
    p = wait_pod(client, "ready", lambda p: condition(p, "Ready") == "False", 10, "not Ready")
    assert first(p).restart_count == 0 and first(p).state.HasField("running")


def test_an_image_only_in_a_registry_is_pulled_and_its_logs_can_be_followed(
    cluster: LocalCluster, client: Client, start_agent: StartAgent, pushed_image: str
) -> None:
    agent = start_agent()
    client.pods.create(
        make_pod(
            "pulled",
            agent.node,
            [{"name": "c", "image": pushed_image, "imagePullPolicy": "Always"}],
        )
    )
    wait_pod(client, "pulled", running_ready, 60, "Running")
    reasons = [
        e.reason
        for e in client.events.list(namespace="default").items
        if e.involved_object.name == "pulled"
    ]
    assert "Pulling" in reasons and "Pulled" in reasons
    assert ctl(cluster, "logs", "pulled")[1] == "pulled\n"
    # --follow streams what is printed later, and ends when the container does.
    client.pods.create(
        make_pod(
            "talker",
            agent.node,
            [
                {
                    "name": "c",
                    "image": BUSYBOX_IMAGE,
                    "command": ["sh", "-c", "for i in 1 2 3; do echo line$i; sleep 0.7; done"],
                }
            ],
            restartPolicy="Never",
        )
    )
    wait_pod(client, "talker", lambda p: p.status.phase in ("Running", "Succeeded"), 30, "started")
    code, out, err = ctl(cluster, "logs", "talker", "-f")
    assert (code, out) == (0, "line1\nline2\nline3\n"), err


def test_pods_survive_a_containerd_restart_and_the_agent_carries_on(
    client: Client, start_agent: StartAgent, tmp_path: Path
) -> None:
    ctd = Containerd()  # its own, so the shared one is never restarted under other tests
    agent: AgentProc | None = None
    try:
        ctd.start()
        ctd.load_test_images()
        agent = start_agent(containerd=ctd)
        client.pods.create(
            make_pod(
                "survivor",
                agent.node,
                [{"name": "c", "image": BUSYBOX_IMAGE, "command": ["sleep", "3600"]}],
            )
        )
        before = first(wait_pod(client, "survivor", running_ready, 30, "Running"))
        ctd.restart()
        client.pods.create(
            make_pod(
                "newcomer",
                agent.node,
                [{"name": "c", "image": BUSYBOX_IMAGE, "command": ["sleep", "3600"]}],
            )
        )
        wait_pod(client, "newcomer", running_ready, 30, "Running after the restart")
        p = wait_pod(client, "survivor", running_ready, 10, "still Running")
        assert first(p).container_id == before.container_id
        assert first(p).restart_count == 0
        with ctd.client() as cri:
            cid = before.container_id.split("://")[1]
            assert cri.container_status(cid).state == cri_pb.CONTAINER_RUNNING
    finally:
        if agent is not None:
            agent.kill()  # before containerd stops, so no sandbox is made while it does
        ctd.stop()
