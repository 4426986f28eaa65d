"""What only real containerd can show: cgroup limits, users, working dirs, a live registry, and
that the harness leaves nothing behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hakube.cri import specs
from hakube.cri.client import CriClient
from hakube.cri.errors import ImagePullFailed, RuntimeUnavailable
from hakube.cri.v1 import api_pb2 as pb
from hakube.testing.containerd import Containerd, ContainerdUnavailable

pytestmark = [pytest.mark.containerd, pytest.mark.timeout(120)]

# Inside the container the cgroup files are at the v1 or the v2 place, depending on the host.
_MEMORY_LIMIT = (
    "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"
)
_CPU_QUOTA = (
    "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d' ' -f1 /sys/fs/cgroup/cpu.max"
)


def test_cpu_and_memory_limits_reach_the_container_cgroup(real_node):
    pod = real_node.run_pod()
    res = specs.linux_resources(
        cpu_request_millis=250, cpu_limit_millis=500, memory_limit_bytes=64 * 1024 * 1024
    )
    cid = real_node.start_container(pod, command=["sleep", "300"], resources=res)
    real_node.wait_state(cid, pb.CONTAINER_RUNNING)
    mem = real_node.cri.exec_sync(cid, ["sh", "-c", _MEMORY_LIMIT])
    cpu = real_node.cri.exec_sync(cid, ["sh", "-c", _CPU_QUOTA])
    assert int(mem.stdout) == 64 * 1024 * 1024
    assert int(cpu.stdout) == 50_000
    status = real_node.cri.container_status(cid)
    assert status.resources.linux.cpu_quota == 50_000
    assert status.resources.linux.cpu_shares == 256


def test_run_as_user_and_working_dir_apply(real_node):
    pod = real_node.run_pod()
    cid = real_node.start_container(
        pod, command=["sleep", "300"], run_as_user=65534, working_dir="/tmp"
    )
    real_node.wait_state(cid, pb.CONTAINER_RUNNING)
    r = real_node.cri.exec_sync(cid, ["sh", "-c", "id -u; pwd"])
    assert r.stdout.decode().split() == ["65534", "/tmp"]


def test_host_network_pods_see_the_node_hostname(real_node):
    pod = real_node.run_pod()
    cid = real_node.start_container(pod, command=["sleep", "300"])
    real_node.wait_state(cid, pb.CONTAINER_RUNNING)
    r = real_node.cri.exec_sync(cid, ["hostname"])
    assert r.stdout.decode().strip() == os.uname().nodename


def test_a_registry_miss_is_not_found(real_node, registry):
    with pytest.raises(ImagePullFailed, match="not found") as info:
        real_node.cri.pull_image(f"{registry.host}/hakube/absent:v1")
    assert info.value.code is not None and info.value.code.name == "NOT_FOUND"


def test_a_pulled_image_runs(real_node, pushed_image):
    real_node.cri.pull_image(pushed_image)
    real_node.image = pushed_image
    pod = real_node.run_pod()
    cid = real_node.start_container(pod)  # the image's own command: echo pulled
    st = real_node.wait_state(cid, pb.CONTAINER_EXITED)
    assert st.exit_code == 0
    assert "pulled" in Path(st.log_path).read_text()
    real_node.cri.remove_pod_sandbox(pod[0])
    real_node.cri.remove_image(pushed_image)


def test_a_missing_socket_gives_runtime_unavailable(tmp_path):
    with CriClient(f"unix://{tmp_path}/absent.sock") as cri:
        with pytest.raises(RuntimeUnavailable) as info:
            cri.version(timeout=2)
    assert info.value.__cause__ is not None


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is gone for our purposes


def test_the_harness_stops_everything_it_started(containerd):
    # A second, separate private containerd, left with a running pod on purpose.
    ctd = Containerd()
    try:
        ctd.start()
    except ContainerdUnavailable as e:  # the session one started, so this one must too
        pytest.fail(str(e))
    try:
        ctd.load_test_images()
        with ctd.client() as cri:
            cfg = specs.sandbox_config(
                name="leftover",
                namespace="t",
                uid="leftover",
                host_network=True,
                cgroup_parent=ctd.cgroup_parent("l"),
            )
            sid = cri.run_pod_sandbox(cfg)
            cc = specs.container_config(
                name="c", image="hakube.test/busybox:1", command=["sleep", "300"], host_network=True
            )
            cri.start_container(cri.create_container(sid, cc, cfg))
        pids = [int(p.read_text()) for p in ctd.state.rglob("*.pid")]
        assert pids, "expected shim and container pid files"
        base = str(ctd.base)
    finally:
        ctd.stop()
    assert not [p for p in pids if _alive(p)]
    assert not [
        line for line in Path("/proc/self/mountinfo").read_text().splitlines() if base in line
    ]
    assert not Path(base).exists()
    assert not any(
        Path(h, ctd.cgroup_root.lstrip("/")).exists() for h in Path("/sys/fs/cgroup").iterdir()
    )
    ctd.stop()  # idempotent
