"""The simulated runtime's own promises: declared behaviour, time without waiting, scale."""

from __future__ import annotations

import threading
from concurrent import futures

import grpc
import pytest

from hakube.cri import specs
from hakube.cri.behaviour import EXIT_CODE, OOM, RUN_SECONDS
from hakube.cri.client import CriClient
from hakube.cri.errors import CriError, RuntimeUnavailable
from hakube.cri.simulated import SimulatedCri, SimulatedFleet, SimulatedRuntime, normalize_image
from hakube.cri.v1 import api_pb2 as pb

pytestmark = pytest.mark.timeout(60)


class FakeClock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def cri(clock):
    rt = SimulatedRuntime(node_name="n1", preloaded=["busybox"], clock=clock)
    with SimulatedCri(rt) as server, CriClient(server.endpoint) as client:
        yield client


def _run(cri, *, command=(), annotations=None, host_network=False, name="c"):
    sc = specs.sandbox_config(name="p", namespace="d", uid="u", host_network=host_network)
    existing = cri.list_pod_sandboxes()
    sid = existing[0].id if existing else cri.run_pod_sandbox(sc)
    cc = specs.container_config(
        name=name,
        image="busybox",
        command=command,
        annotations=annotations,
        host_network=host_network,
    )
    cid = cri.create_container(sid, cc, sc)
    cri.start_container(cid)
    return sid, cid


def test_a_sleeping_container_exits_when_its_time_is_up_without_anyone_waiting(cri, clock):
    _, cid = _run(cri, command=["sleep", "30"])
    clock.now += 29.9
    assert cri.container_status(cid).state == pb.CONTAINER_RUNNING
    clock.now += 0.2
    st = cri.container_status(cid)
    assert (st.state, st.exit_code, st.reason) == (pb.CONTAINER_EXITED, 0, "Completed")
    assert st.finished_at - st.started_at == 30 * 10**9


def test_annotations_declare_run_time_and_exit_code_over_the_command(cri, clock):
    _, cid = _run(cri, command=["nginx"], annotations={RUN_SECONDS: "5", EXIT_CODE: "2"})
    clock.now += 5
    st = cri.container_status(cid)
    assert (st.state, st.exit_code, st.reason) == (pb.CONTAINER_EXITED, 2, "Error")


def test_a_server_runs_until_stopped(cri, clock):
    _, cid = _run(cri, command=["nginx", "-g", "daemon off;"])
    clock.now += 86_400
    assert cri.container_status(cid).state == pb.CONTAINER_RUNNING
    cri.stop_container(cid, grace_seconds=30)
    st = cri.container_status(cid)
    assert (st.exit_code, st.reason) == (143, "Error")


def test_an_oom_annotation_ends_the_container_oomkilled(cri, clock):
    _, cid = _run(cri, annotations={OOM: "true", RUN_SECONDS: "1"})
    clock.now += 1
    st = cri.container_status(cid)
    assert (st.exit_code, st.reason) == (137, "OOMKilled")


def test_stats_grow_with_running_time(cri, clock):
    _, cid = _run(cri, command=["sleep", "inf"], annotations={"sim.hakube.io/cpu-millis": "500"})
    clock.now += 2
    s = cri.container_stats(cid)
    assert s.cpu.usage_core_nano_seconds.value == 10**9  # 0.5 core for 2 s
    assert s.cpu.usage_nano_cores.value == 500_000_000


def test_pod_network_sandboxes_get_addresses_from_the_pod_cidr():
    rt = SimulatedRuntime(pod_cidr="10.9.8.0/29")
    ips = []
    for i in range(3):
        sid = rt.run_pod_sandbox(
            pb.RunPodSandboxRequest(
                config=specs.sandbox_config(
                    name=f"p{i}", namespace="d", uid=str(i), hostname=f"p{i}"
                )
            )
        ).pod_sandbox_id
        ips.append(
            rt.pod_sandbox_status(pb.PodSandboxStatusRequest(pod_sandbox_id=sid)).status.network.ip
        )
    assert ips == ["10.9.8.1", "10.9.8.2", "10.9.8.3"]


def test_a_sandbox_name_is_reserved_while_the_sandbox_exists(cri):
    sc = specs.sandbox_config(name="same", namespace="d", uid="u1")
    sid = cri.run_pod_sandbox(sc)
    with pytest.raises(CriError, match="reserve sandbox name") as info:
        cri.run_pod_sandbox(sc)
    assert info.value.code == grpc.StatusCode.UNKNOWN
    cri.remove_pod_sandbox(sid)
    cri.run_pod_sandbox(sc)


def test_image_names_are_normalised_like_containerd_does():
    assert normalize_image("busybox") == "docker.io/library/busybox:latest"
    assert normalize_image("me/app:1") == "docker.io/me/app:1"
    assert normalize_image("localhost:5000/app") == "localhost:5000/app:latest"
    assert normalize_image("hakube.test/pause:1") == "hakube.test/pause:1"
    assert normalize_image("r.io/a@sha256:ab") == "r.io/a@sha256:ab"


def test_a_tcp_address_gets_a_port_at_start():
    with SimulatedCri(address="127.0.0.1:0") as server, CriClient(server.endpoint) as cri:
        assert server.endpoint.startswith("127.0.0.1:") and not server.endpoint.endswith(":0")
        assert cri.version().runtime_name == "hakube-simulated"


def test_hundreds_of_nodes_share_one_executor_without_a_thread_per_container():
    before = threading.active_count()
    pool = futures.ThreadPoolExecutor(max_workers=4)
    servers = [
        SimulatedCri(
            SimulatedRuntime(node_name=f"n{i}", preloaded=["busybox"]), executor=pool
        ).start()
        for i in range(100)
    ]
    try:
        for s in servers:
            with CriClient(s.endpoint) as cri:
                for _ in range(3):
                    _run(cri, command=["sleep", "60"], name=f"c{_}")
        # one gRPC polling thread per server, the shared pool, nothing per container
        assert threading.active_count() - before <= len(servers) + 4 + 2
    finally:
        for s in servers:
            s.stop(grace=None)
        pool.shutdown()


def test_a_fleet_serves_a_thousand_nodes_from_one_server():
    before = threading.active_count()
    with SimulatedFleet() as fleet:
        for i in range(1000):
            fleet.add_node(SimulatedRuntime(node_name=f"node-{i}", preloaded=["busybox"]))
        for i in (0, 499, 999):
            with fleet.client(f"node-{i}") as cri:
                _run(cri, command=["sleep", "60"])
                assert len(cri.list_containers()) == 1
        assert len(fleet.node("node-1").list_containers(pb.ListContainersRequest()).containers) == 0
        assert threading.active_count() - before <= 8 + 2
        with CriClient(fleet.endpoint) as anonymous:
            with pytest.raises(RuntimeUnavailable, match="no simulated node"):
                anonymous.version()
