"""Fixtures for the CRI tests: a private real containerd (session-wide), a loopback registry,
and the simulated runtime, each wrapped as a ``Node`` so behavioural tests run against both.

Real containerd is required under CI: when CI=true and it cannot start, its tests fail with the
reason; elsewhere they are skipped with it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from hakube.cri import specs
from hakube.cri.client import CriClient
from hakube.cri.errors import CriError
from hakube.cri.simulated import SimulatedCri, SimulatedRuntime
from hakube.cri.v1 import api_pb2 as pb
from hakube.testing.containerd import (
    BUSYBOX_IMAGE,
    SANDBOX_IMAGE,
    Containerd,
    ContainerdUnavailable,
)
from hakube.testing.images import busybox_image
from hakube.testing.registry import LocalRegistry, RegistryUnavailable
from hakube.testing.wait import wait_for

IN_CI = os.environ.get("CI", "").lower() == "true"


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def containerd() -> Iterator[Containerd]:
    ctd = Containerd()
    problem = ""
    try:
        ctd.start()
        ctd.load_test_images()
    except (ContainerdUnavailable, RuntimeError, OSError) as e:  # image import raises these
        problem = str(e)
        ctd.stop()
    if problem:
        _unavailable(f"real containerd is unavailable: {problem}")
    yield ctd
    ctd.stop()


@pytest.fixture(scope="session")
def registry() -> Iterator[LocalRegistry]:
    reg = LocalRegistry()
    problem = ""
    try:
        reg.start()
    except (RegistryUnavailable, OSError) as e:
        problem = str(e)
    if problem:
        _unavailable(f"the local registry is unavailable: {problem}")
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def pushed_image(registry: LocalRegistry) -> str:
    """A reference that exists only in the local registry (never imported)."""
    return registry.push(busybox_image("pushed", cmd=("echo", "pulled")), "hakube/pulled", "v1")


SIM_REGISTRY_IMAGE = "registry.test/hakube/pulled:v1"


@dataclass
class Node:
    """A CRI runtime under test, with helpers that clean up after each test."""

    kind: str
    cri: CriClient
    log_root: Path
    pullable: Callable[[], str]
    missing_image: str
    cgroup_parent: Callable[[str], str] = lambda uid: ""
    image: str = BUSYBOX_IMAGE
    sandboxes: list[str] = field(default_factory=list)

    def run_pod(
        self,
        *,
        labels: Mapping[str, str] | None = None,
        hostname: str = "",
        host_network: bool = True,
    ) -> tuple[str, pb.PodSandboxConfig]:
        uid = uuid.uuid4().hex[:12]
        log_dir = self.log_root / uid
        log_dir.mkdir(parents=True, exist_ok=True)
        cfg = specs.sandbox_config(
            name=f"pod-{uid}",
            namespace="test",
            uid=uid,
            host_network=host_network,
            log_directory=str(log_dir),
            labels=labels,
            cgroup_parent=self.cgroup_parent(uid),
        )
        cfg.hostname = hostname  # set after the builder, which refuses it for host network
        sid = self.cri.run_pod_sandbox(cfg)
        self.sandboxes.append(sid)
        return sid, cfg

    def start_container(
        self,
        sandbox: tuple[str, pb.PodSandboxConfig],
        *,
        name: str = "c",
        command: Sequence[str] = (),
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        start: bool = True,
        **kw: object,
    ) -> str:
        sid, cfg = sandbox
        host_network = cfg.linux.security_context.namespace_options.network == pb.NODE
        cc = specs.container_config(
            name=name,
            image=self.image,
            command=command,
            args=args,
            env=env,
            labels=labels,
            annotations=annotations,
            log_path=f"{name}/0.log",
            host_network=host_network,
            **kw,  # type: ignore[arg-type]
        )
        cid = self.cri.create_container(sid, cc, cfg)
        if start:
            self.cri.start_container(cid)
        return cid

    def wait_state(self, cid: str, state: int, timeout: float = 15.0) -> pb.ContainerStatus:
        wait_for(
            lambda: self.cri.container_status(cid).state == state,
            timeout,
            f"{self.kind} container {cid[:12]} to reach {pb.ContainerState.Name(state)}",
        )
        return self.cri.container_status(cid)

    def cleanup(self) -> None:
        for sid in self.sandboxes:
            try:
                self.cri.stop_pod_sandbox(sid)
                self.cri.remove_pod_sandbox(sid)
            except CriError:
                pass
        self.sandboxes.clear()


@pytest.fixture
def real_node(containerd: Containerd, request: pytest.FixtureRequest) -> Iterator[Node]:
    with containerd.client() as cri:
        node = Node(
            kind="containerd",
            cri=cri,
            log_root=containerd.logs,
            pullable=lambda: request.getfixturevalue("pushed_image"),
            missing_image="127.0.0.1:1/hakube/never-pushed:v1",
            cgroup_parent=containerd.cgroup_parent,
        )
        yield node
        node.cleanup()


@pytest.fixture(scope="session")
def simulated_cri() -> Iterator[SimulatedCri]:
    runtime = SimulatedRuntime(
        node_name="sim-test",
        preloaded=[SANDBOX_IMAGE, BUSYBOX_IMAGE],
        registry=[SIM_REGISTRY_IMAGE],
    )
    with SimulatedCri(runtime) as server:
        yield server


@pytest.fixture
def sim_node(simulated_cri: SimulatedCri, tmp_path: Path) -> Iterator[Node]:
    with CriClient(simulated_cri.endpoint) as cri:
        node = Node(
            kind="simulated",
            cri=cri,
            log_root=tmp_path,
            pullable=lambda: SIM_REGISTRY_IMAGE,
            missing_image="registry.test/hakube/never-pushed:v1",
        )
        yield node
        node.cleanup()


@pytest.fixture(params=[pytest.param("containerd", marks=pytest.mark.containerd), "simulated"])
def node(request: pytest.FixtureRequest) -> Node:
    """The same behavioural test against real containerd and against the simulated runtime."""
    if request.param == "containerd":
        return request.getfixturevalue("real_node")
    return request.getfixturevalue("sim_node")
