"""Fixtures for the node agent tests: one real 3-master cluster for the whole session, a
private real containerd (hakube.testing.containerd), and agents started as processes (so that
killing one is real) or in-process with the simulated runtime (fast). Every agent joins the
cluster with a bootstrap token (hakube.testing.join), as a real node does.

Under CI=true a containerd that cannot start fails the tests that need it; elsewhere they are
skipped with the reason (the tests/cri pattern).
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hakube.agent import tmpfs
from hakube.agent.agent import Agent
from hakube.agent.config import AgentSettings
from hakube.api import convert
from hakube.api.podsecurity import LABEL_ENFORCE, PRIVILEGED
from hakube.api.v1 import core_pb2, pod_pb2
from hakube.cli.ctl import main as hakubectl
from hakube.client import Client, NotFound
from hakube.cri.client import CriClient
from hakube.cri.errors import CriError
from hakube.lifecycle import Running
from hakube.testing.cluster import LocalCluster
from hakube.testing.containerd import Containerd, ContainerdUnavailable
from hakube.testing.images import busybox_image
from hakube.testing.join import agent_args, token_for
from hakube.testing.netnodes import AGENT_FAST
from hakube.testing.registry import LocalRegistry, RegistryUnavailable
from hakube.testing.wait import wait_for

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() == "true"

FAST = [*AGENT_FAST, "--pod-cidr-wait", "0"]
"""Short timings for tests (production defaults are 10 s leases, 10 s back-off); no wait for a
podCIDR, since these clusters run no controller-manager to allocate one."""


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(str(tmp_path_factory.mktemp("masters")), 3) as c:
        yield c


@pytest.fixture(scope="session")
def client(cluster: LocalCluster) -> Iterator[Client]:
    """A client of the session cluster, whose "default" namespace is labelled Pod Security
    privileged: these tests are about the agent running what it is given (hostPath, host
    network); admission itself is tested in tests/security."""
    with Client(cluster.endpoints(), timeout=20) as c:
        ns = c.get(core_pb2.Namespace, "default")
        ns.metadata.labels[LABEL_ENFORCE] = PRIVILEGED
        c.update(ns)
        yield c


@pytest.fixture(scope="session")
def containerd() -> Iterator[Containerd]:
    ctd = Containerd()
    problem = ""
    try:
        ctd.start()
        ctd.load_test_images()
    except (ContainerdUnavailable, RuntimeError, OSError) as e:
        problem = str(e)
        ctd.stop()
    if problem:
        if IN_CI:
            pytest.fail(f"CI=true but real containerd is unavailable: {problem}", pytrace=False)
        pytest.skip(f"real containerd is unavailable: {problem}")
    yield ctd
    ctd.stop()


@pytest.fixture(scope="session")
def pushed_image() -> Iterator[str]:
    """An image that exists only in a local registry (Debian docker-registry on loopback), so
    the agent's PullImage really transfers it."""
    reg = LocalRegistry()
    try:
        reg.start()
    except (RegistryUnavailable, OSError) as e:
        reg.stop()
        if IN_CI:
            pytest.fail(f"CI=true but the local registry is unavailable: {e}", pytrace=False)
        pytest.skip(f"the local registry is unavailable: {e}")
    image = busybox_image("agent-pulled", cmd=("sh", "-c", "echo pulled; exec sleep 3600"))
    yield reg.push(image, "hakube/agent-pulled", "v1")
    reg.stop()


class AgentProc:
    """One ``hakube agent`` process; the test's teardown kills it."""

    def __init__(self, node: str, args: list[str], log_path: Path) -> None:
        self.node = node
        self.args = args
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AgentProc:
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hakube", "agent", *self.args],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )
        log.close()
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self, n: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


StartAgent = Callable[..., AgentProc]


@pytest.fixture
def start_agent(
    cluster: LocalCluster, client: Client, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[StartAgent]:
    """Start an agent process on a fresh node name; waits until its Node is Ready."""
    started: list[AgentProc] = []
    runtimes: list[Containerd] = []

    def start(
        *,
        runtime: str = "containerd",
        containerd: Containerd | None = None,
        extra: list[str] | None = None,
        node: str = "",
        root: Path | None = None,
        listen: str | None = "127.0.0.1:0",
        node_ip: str = "127.0.0.1",
    ) -> AgentProc:
        """``listen`` None: the agent's default (the node IP, port 10250)."""
        name = node or f"n-{uuid.uuid4().hex[:6]}"
        root_dir = str(root or tmp_path / name)
        args = [
            "--node-name",
            name,
            "--servers",
            ",".join(cluster.endpoints()),
            "--root-dir",
            root_dir,
            *(["--listen", listen] if listen is not None else []),
            "--node-ip",
            node_ip,
            *agent_args(cluster.endpoints()),
            *FAST,
            *(extra or []),
        ]
        if runtime == "containerd":
            ctd: Containerd = containerd or request.getfixturevalue("containerd")
            args += ["--cri-endpoint", ctd.endpoint]
            if containerd is None and ctd not in runtimes:
                runtimes.append(ctd)  # a test's own containerd is the test's to clean
        else:
            args += ["--runtime", "simulated"]
        proc = AgentProc(name, args, tmp_path / f"agent-{name}-{len(started)}.log").start()
        started.append(proc)
        try:
            wait_for(lambda: node_ready(client, name), 30, f"node {name} Ready")
        except TimeoutError as e:
            raise TimeoutError(f"{e}; agent log:\n{proc.tail()}") from None
        return proc

    yield start
    for p in started:
        p.kill()
    for m in tmpfs.mounts_under(tmp_path):  # secret volumes of pods a killed agent left
        tmpfs.unmount(m)
    for ctd in runtimes:  # leave nothing running in the shared containerd
        with ctd.client() as cri:
            for node in {p.node for p in started}:
                wait_for(
                    functools.partial(_remove_sandboxes, cri, node),
                    20,
                    f"sandboxes of node {node} removed",
                )


def _remove_sandboxes(cri: CriClient, node: str) -> bool:
    """Stop and remove a node's sandboxes; False while one is still busy (a container the
    killed agent was starting cannot be removed until containerd finishes starting it)."""
    try:
        for sb in cri.list_pod_sandboxes(labels={"hakube.io/node": node}):
            cri.stop_pod_sandbox(sb.id)
            cri.remove_pod_sandbox(sb.id)
    except CriError:
        return False
    return True


def node_ready(client: Client, name: str) -> bool:
    try:
        node = client.nodes.get(name)
    except NotFound:
        return False
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions)


@contextlib.contextmanager
def running_sim_agent(
    servers: list[str], root: Path, cluster: LocalCluster | None = None
) -> Iterator[Agent]:
    """An in-process agent with the simulated runtime (no processes, starts in ~0.1 s); with
    ``cluster``, it has a node certificate from that cluster's CA and serves its API."""
    name = f"sim-{uuid.uuid4().hex[:6]}"
    token, ca_hash = token_for(servers)
    settings = AgentSettings(
        token=token,
        ca_cert_hash=ca_hash,
        node_name=name,
        servers=tuple(servers),
        root_dir=str(root / name),
        runtime="simulated",
        secret_volumes_on_disk=True,  # no containers read them; nothing to unmount after
        listen="127.0.0.1:0",
        node_ip="127.0.0.1",
        labels={"zone": "a"},
        lease_interval=0.5,
        lease_duration=5,
        status_interval=1,
        relist_interval=0.2,
        resync_interval=2,
        backoff_base=0.5,
        backoff_max=2,
        usage_interval=0.5,
    )
    running = Running.start(Agent(settings))
    try:
        assert running.wait_ready(30), f"simulated agent did not become ready: {running.error!r}"
        yield running.service
    finally:
        running.stop(15)


@pytest.fixture
def sim_agent(cluster: LocalCluster, client: Client, tmp_path: Path) -> Iterator[Agent]:
    with running_sim_agent(cluster.endpoints(), tmp_path) as agent:
        yield agent


def make_pod(name: str, node: str, containers: list[dict[str, Any]], **spec: Any) -> pod_pb2.Pod:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": node, "containers": containers, **spec},
    }
    pod: pod_pb2.Pod = convert.from_dict(body)  # type: ignore[assignment]
    return pod


def ctl(cluster: LocalCluster, *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = hakubectl(["-s", ",".join(cluster.endpoints()), *args], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def ctl_endpoints(client: Client, *args: str) -> tuple[int, str, str]:
    """hakubectl against the masters ``client`` talks to."""
    out, err = io.StringIO(), io.StringIO()
    code = hakubectl(["-s", ",".join(client.servers), *args], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def first(p: pod_pb2.Pod) -> pod_pb2.ContainerStatus:
    """The first container's status (empty before the agent reported one)."""
    cs = p.status.container_statuses
    return cs[0] if cs else pod_pb2.ContainerStatus()


def get_pod(client: Client, name: str) -> pod_pb2.Pod | None:
    try:
        return client.pods.get(name, namespace="default")
    except NotFound:
        return None


def condition(pod: pod_pb2.Pod | None, ctype: str) -> str:
    if pod is None:
        return ""
    return next((c.status for c in pod.status.conditions if c.type == ctype), "")


def wait_pod(
    client: Client, name: str, cond: Callable[[pod_pb2.Pod], bool], timeout: float, what: str
) -> pod_pb2.Pod:
    """Wait until the pod exists and ``cond`` holds; the failure shows the last status."""
    last: list[Any] = [None]

    def check() -> bool:
        last[0] = get_pod(client, name)
        return last[0] is not None and bool(cond(last[0]))

    try:
        wait_for(check, timeout, f"pod {name}: {what}", interval=0.1)
    except TimeoutError as e:
        raise TimeoutError(f"{e}; last status:\n{last[0].status if last[0] else None}") from None
    assert last[0] is not None
    return last[0]  # type: ignore[no-any-return]


def configmap(name: str, data: dict[str, str]) -> core_pb2.ConfigMap:
    return convert.from_dict(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",  # type: ignore
            "metadata": {"name": name, "namespace": "default"},
            "data": data,
        }
    )


def secret(name: str, data: dict[str, str]) -> core_pb2.Secret:
    return convert.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Secret",  # type: ignore
            "metadata": {"name": name, "namespace": "default"},
            "stringData": data,
        }
    )
