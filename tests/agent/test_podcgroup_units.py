"""Pod cgroup files, written into a directory laid out as the cgroup filesystem (the real
thing, on containerd, is tests/agent/test_agent_pod_cgroup.py): the v2 interface (which the
test machine's cgroup v1 cannot exercise) and v1, limits from the pod-level resources, and
removal that never leaves the node's own subtree."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hakube.agent import cgroupdriver
from hakube.agent.podcgroup import PodCgroups, cpu_weight
from hakube.api.convert import from_dict
from hakube.api.v1 import pod_pb2


def _pod(uid: str, resources: dict[str, dict[str, str]] | None = None) -> pod_pb2.Pod:
    pod: pod_pb2.Pod = from_dict({  # type: ignore[assignment]
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "default", "uid": uid},
        "spec": {"containers": [{"name": "c", "image": "busybox"}],
                 **({"resources": resources} if resources else {})},
    })  # fmt: skip
    return pod


def test_cgroup_v2_gets_memory_max_cpu_max_and_weight(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    cg = PodCgroups("/hakube", "n1", fs_root=str(tmp_path))
    assert cg.v2
    path = cg.ensure(_pod("u1", {"limits": {"memory": "64Mi", "cpu": "500m"}}))
    assert path == "/hakube/n1/podu1"
    d = tmp_path / "hakube/n1/podu1"
    assert (d / "memory.max").read_text() == "67108864"
    assert (d / "cpu.max").read_text() == "50000 100000"
    assert (d / "cpu.weight").read_text() == str(cpu_weight(512))
    for parent in (tmp_path, tmp_path / "hakube", tmp_path / "hakube/n1"):
        assert (parent / "cgroup.subtree_control").read_text() == "+cpu +memory"
    cg.ensure(_pod("u2"))
    assert (tmp_path / "hakube/n1/podu2/memory.max").read_text() == "max"
    assert (tmp_path / "hakube/n1/podu2/cpu.max").read_text() == "max 100000"


def test_cgroup_v1_limits_and_removal_stay_in_the_nodes_subtree(tmp_path: Path) -> None:
    for h in ("memory", "cpu", "pids"):
        (tmp_path / h).mkdir()
    cg = PodCgroups("/hakube", "n1", fs_root=str(tmp_path))
    cg.ensure(_pod("u1", {"limits": {"memory": "64Mi"}, "requests": {"cpu": "250m"}}))
    mem, cpu = tmp_path / "memory/hakube/n1/podu1", tmp_path / "cpu/hakube/n1/podu1"
    assert (mem / "memory.limit_in_bytes").read_text() == "67108864"
    assert (cpu / "cpu.shares").read_text() == "256"
    assert (cpu / "cpu.cfs_quota_us").read_text() == "-1"
    # A plain directory tree takes no files' removal; drop the files a kernel would not have.
    for f in [*mem.iterdir(), *cpu.iterdir()]:
        f.unlink()
    (tmp_path / "pids/hakube/n1/podu1/cid").mkdir(parents=True)  # made by runc
    other = tmp_path / "memory/hakube/n2/podu9"  # another agent's pod
    other.mkdir(parents=True)
    assert cg.sweep(live={"u7"}) == ["u1"]
    assert not (tmp_path / "pids/hakube/n1/podu1").exists() and not mem.exists()
    assert other.is_dir()


@pytest.mark.parametrize("parent", ["hakube", "/a/../b"])
def test_a_parent_that_could_leave_the_tree_is_refused(parent: str) -> None:
    with pytest.raises(ValueError, match="absolute path"):
        PodCgroups(parent, "n1")


@pytest.mark.parametrize(
    ("config", "driver"),
    [
        (
            {"containerd": {"defaultRuntimeName": "runc",
                            "runtimes": {"runc": {"options": {"SystemdCgroup": True}}}}},
            "systemd",
        ),
        ({"containerd": {"runtimes": {"runc": {"options": {"Root": "/r"}}}}}, "cgroupfs"),
        ({"systemdCgroup": True}, "systemd"),  # the runc v1 shim's plugin-wide setting
        ({"containerd": {"defaultRuntimeName": "kata", "runtimes": {}}}, None),
        ("not json", None),
    ],
)  # fmt: skip
def test_the_cgroup_driver_is_read_from_the_runtime_status(
    config: object, driver: str | None
) -> None:
    text = config if isinstance(config, str) else json.dumps(config)
    assert cgroupdriver.driver_of({"config": text}) == driver
    assert (cgroupdriver.refusal({"config": text}, "unix:///c.sock") is None) == (
        driver != "systemd"
    )
