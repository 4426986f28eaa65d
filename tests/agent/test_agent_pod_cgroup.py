"""Pod-level cgroups on real containerd (``--pod-cgroup-parent``): a pod's containers run
under ``<parent>/<node>/pod<uid>``, whose memory limit is the pod's ``spec.resources``; a pod
without pod-level resources gets its cgroup too and runs; the cgroup goes with the pod, and one
left behind while the agent was down is swept when it starts again. The parent lies under the
containerd harness's own cgroup root, so nothing outside it is touched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hakube.agent import cgroupdriver
from hakube.agent.podcgroup import PodCgroups
from hakube.api.v1 import pod_pb2
from hakube.client import Client
from hakube.testing.cluster import LocalCluster
from hakube.testing.containerd import BUSYBOX_IMAGE, Containerd, ContainerdSettings
from hakube.testing.join import agent_args
from hakube.testing.wait import wait_for
from tests.agent.conftest import (
    FAST,
    ROOT,
    StartAgent,
    ctl_endpoints,
    get_pod,
    make_pod,
    wait_pod,
)

MI64 = 64 * 1024 * 1024
CGROUP = Path("/sys/fs/cgroup")


def _pod(name: str, node: str, **spec: object) -> pod_pb2.Pod:
    return make_pod(
        name,
        node,
        [{"name": "c", "image": BUSYBOX_IMAGE, "command": ["sleep", "3600"]}],
        terminationGracePeriodSeconds=1,
        **spec,
    )


def _memory_limit(cg: PodCgroups, path: str) -> int:
    if cg.v2:
        text = (CGROUP / path.lstrip("/") / "memory.max").read_text().strip()
        return -1 if text == "max" else int(text)
    return int((CGROUP / "memory" / path.lstrip("/") / "memory.limit_in_bytes").read_text())


def _exists(path: str) -> bool:
    return any((h / path.lstrip("/")).is_dir() for h in [CGROUP, *CGROUP.iterdir()])


@pytest.mark.containerd
@pytest.mark.timeout(180)
def test_a_pods_containers_run_in_its_cgroup_limited_by_pod_level_resources(
    client: Client, start_agent: StartAgent, containerd: Containerd, tmp_path: Path
) -> None:
    parent = f"{containerd.cgroup_root}/agents"
    agent = start_agent(extra=["--pod-cgroup-parent", parent])
    cg = PodCgroups(parent, agent.node)
    client.pods.create(_pod("cg-limited", agent.node, resources={"limits": {"memory": "64Mi"}}))
    client.pods.create(_pod("cg-plain", agent.node))
    limited = wait_pod(client, "cg-limited", lambda p: p.status.phase == "Running", 60, "Running")
    plain = wait_pod(client, "cg-plain", lambda p: p.status.phase == "Running", 60, "Running")
    pod_path = cg.path(limited.metadata.uid)
    assert pod_path == f"{parent}/{agent.node}/pod{limited.metadata.uid}"
    code, out, err = ctl_endpoints(client, "exec", "cg-limited", "--", "cat", "/proc/self/cgroup")
    assert code == 0, err
    mine = [
        line.split(":", 2)[2]
        for line in out.splitlines()
        if line.split(":")[1] in (("",) if cg.v2 else ("memory",))
    ]
    assert mine and mine[0].startswith(pod_path + "/"), out
    assert _memory_limit(cg, pod_path) == MI64
    plain_path = cg.path(plain.metadata.uid)
    assert _exists(plain_path)
    assert _memory_limit(cg, plain_path) > MI64  # no pod-level limit

    client.pods.delete("cg-limited", namespace="default")
    wait_for(lambda: get_pod(client, "cg-limited") is None, 30, "pod cg-limited removed")
    wait_for(lambda: not _exists(pod_path), 20, "its cgroup removed")

    # Left behind while the agent was down (the pod deleted, its sandbox removed by hand):
    # the agent's start sweeps it.
    agent.kill()
    client.pods.delete("cg-plain", namespace="default", grace_period_seconds=0)
    with containerd.client() as cri:
        for sb in cri.list_pod_sandboxes(labels={"hakube.io/node": agent.node}):
            cri.stop_pod_sandbox(sb.id)
            cri.remove_pod_sandbox(sb.id)
    assert _exists(plain_path)
    start_agent(node=agent.node, root=tmp_path / agent.node, extra=["--pod-cgroup-parent", parent])
    wait_for(lambda: not _exists(plain_path), 20, "the gone pod's cgroup swept at start")


@pytest.mark.containerd
@pytest.mark.timeout(120)
def test_pod_cgroups_are_refused_at_start_on_a_systemd_driver_runtime(
    cluster: LocalCluster, containerd: Containerd, tmp_path: Path
) -> None:
    """The agent's pod cgroups are cgroupfs paths; on a containerd whose runc uses the systemd
    driver (as the Ansible role configures it) every container would fail, so the agent
    refuses to start, in one line naming the flag and the driver."""
    assert containerd.endpoint  # the shared one (cgroupfs) ran the tests above
    with Containerd(ContainerdSettings(systemd_cgroup=True)) as systemd_ctd:
        with systemd_ctd.client() as cri:
            assert cgroupdriver.driver_of(cri.info()) == cgroupdriver.SYSTEMD
        with containerd.client() as cri:
            assert cgroupdriver.driver_of(cri.info()) == cgroupdriver.CGROUPFS
        node = f"n-systemd-{os.getpid()}"
        args = [
            "--node-name", node,
            "--servers", ",".join(cluster.endpoints()),
            "--root-dir", str(tmp_path / node),
            "--listen", "127.0.0.1:0",
            "--node-ip", "127.0.0.1",
            *agent_args(cluster.endpoints()),
            *FAST,
            "--cri-endpoint", systemd_ctd.endpoint,
            "--pod-cgroup-parent", f"{systemd_ctd.cgroup_root}/agents",
        ]  # fmt: skip
        done = subprocess.run(
            [sys.executable, "-m", "hakube", "agent", *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
            timeout=90,
        )
    assert done.returncode != 0
    last = done.stderr.strip().splitlines()[-1]
    assert "--pod-cgroup-parent needs the cgroupfs cgroup driver" in last, done.stderr
    assert "systemd driver (containerd: SystemdCgroup = true)" in last, done.stderr
