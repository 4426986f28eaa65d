"""gRPC probes: the agent asks a real gRPC health service (grpc.health.v1) and the pod's Ready
condition follows its answer. The agent runs on the simulated runtime; the pod uses the host
network, so the probe reaches the health server this test serves on the node's address."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from hakube.agent.agent import Agent
from hakube.client import Client
from hakube.client.errors import Invalid
from tests.agent.conftest import condition, make_pod, wait_pod

pytestmark = pytest.mark.timeout(90)
SERVICE = "shop.Cart"


@pytest.fixture
def health_server() -> Iterator[tuple[health.HealthServicer, int]]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield servicer, port
    server.stop(0)


def probed_pod(name: str, node: str, port: int, **extra: object) -> object:
    probe = {"grpc": {"port": port, "service": SERVICE}, "periodSeconds": 1, **extra}
    container = {"name": "c", "image": "hakube.test/busybox:1", "readinessProbe": probe}
    return make_pod(name, node, [container], hostNetwork=True)


def test_readiness_follows_the_health_service(
    client: Client, sim_agent: Agent, health_server: tuple[health.HealthServicer, int]
) -> None:
    servicer, port = health_server
    servicer.set(SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING)
    client.pods.create(probed_pod("cart", sim_agent.s.node_name, port))
    pod = wait_pod(client, "cart", lambda p: p.status.phase == "Running", 30, "running")
    assert condition(pod, "Ready") != "True"
    servicer.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
    wait_pod(client, "cart", lambda p: condition(p, "Ready") == "True", 20, "Ready")
    servicer.set(SERVICE, health_pb2.HealthCheckResponse.NOT_SERVING)
    wait_pod(client, "cart", lambda p: condition(p, "Ready") == "False", 20, "not Ready")


def test_bad_grpc_probes_are_refused_naming_the_field(client: Client, sim_agent: Agent) -> None:
    node = sim_agent.s.node_name
    with pytest.raises(Invalid, match=r"readinessProbe.grpc.port: must be between 1 and 65535"):
        client.pods.create(probed_pod("bad-port", node, 70000))
    two = probed_pod("two", node, 50051, tcpSocket={"port": 50051})
    with pytest.raises(Invalid, match=r"may not specify more than 1 handler type"):
        client.pods.create(two)
