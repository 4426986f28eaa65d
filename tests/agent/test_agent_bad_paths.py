"""Defence in depth: a pod whose volume paths leave its directory, written into the store
past the API's validation, is refused by the node agent: it fails with the field named in its
status and in an Event, and nothing is written outside the pod's directory (nothing at all)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hakube.agent.agent import Agent
from hakube.agent.worker import REASON_INVALID
from hakube.api import convert
from hakube.api.v1 import core_pb2, pod_pb2
from hakube.client import AlreadyExists, Client, Invalid
from hakube.testing.rawstore import InProcessMaster
from hakube.testing.wait import wait_for
from tests.agent.conftest import running_sim_agent

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def master(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcessMaster]:
    with InProcessMaster(str(tmp_path_factory.mktemp("raw"))) as m:
        yield m


@pytest.fixture
def agent(master: InProcessMaster, tmp_path: Path) -> Iterator[Agent]:
    with running_sim_agent([master.endpoint], tmp_path / "node") as a:
        yield a


def _exploit(node: str, name: str, volume: dict[str, object], sub_path: str = "") -> pod_pb2.Pod:
    vname = str(volume.pop("name", "v"))
    mount = {"name": vname, "mountPath": "/v", **({"subPath": sub_path} if sub_path else {})}
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": node,
            "restartPolicy": "Always",
            "containers": [{"name": "c", "image": "busybox:1", "volumeMounts": [mount]}],
            "volumes": [{"name": vname, **volume}],
        },
    }
    pod: pod_pb2.Pod = convert.from_dict(body)  # type: ignore[assignment]
    return pod


def _items(path: str, **extra: object) -> dict[str, object]:
    return {"secret": {"secretName": "s", "items": [{"key": "k", "path": path, **extra}]}}


CASES: list[tuple[str, Callable[[Path], dict[str, object]], str, str]] = [
    (
        "dotdot",
        lambda _: _items("../../../../../escaped"),
        "",
        "spec.volumes[0].secret.items[0].path: must not contain '..'",
    ),
    (
        "absolute",
        lambda base: _items(str(base / "escaped")),
        "",
        "spec.volumes[0].secret.items[0].path: must be a relative path",
    ),
    (
        "setuid",
        lambda _: _items("f", mode=0o4777),
        "",
        "spec.volumes[0].secret.items[0].mode: invalid mode 0o4777",
    ),
    (
        "subpath",
        lambda _: {"emptyDir": {}},
        "../..",
        "spec.containers[0].volumeMounts[0].subPath: must not contain '..'",
    ),
    (
        "volname",
        lambda _: {"name": "../../../../../escaped", "emptyDir": {}},
        "",
        "spec.volumes[0].name: ",
    ),
]
Volume = Callable[[Path], dict[str, object]]


@pytest.mark.parametrize(("name", "volume", "sub_path", "field"), CASES, ids=[c[0] for c in CASES])
def test_the_api_refuses_the_exploit_with_the_field_and_stores_nothing(
    master: InProcessMaster, tmp_path: Path, name: str, volume: Volume, sub_path: str, field: str
) -> None:
    pod = _exploit("nowhere", name, volume(tmp_path), sub_path)
    with Client([master.endpoint], timeout=10) as client:
        with pytest.raises(Invalid) as err:
            client.pods.create(pod)
        assert field in str(err.value) and f'Pod "{name}" is invalid' in str(err.value)
        assert [p.metadata.name for p in client.pods.list(namespace="default").items] == []


@pytest.mark.parametrize(("name", "volume", "sub_path", "field"), CASES, ids=[c[0] for c in CASES])
def test_a_stored_exploit_is_refused_by_the_agent_with_an_event(
    master: InProcessMaster,
    agent: Agent,
    tmp_path: Path,
    name: str,
    volume: Volume,
    sub_path: str,
    field: str,
) -> None:
    with Client([master.endpoint], timeout=10) as client:
        secret = core_pb2.Secret()
        secret.metadata.name, secret.metadata.namespace = "s", "default"
        secret.data["k"] = b"planted"
        with contextlib.suppress(AlreadyExists):  # made by an earlier case
            client.create(secret)
        uid = master.write_raw(_exploit(agent.s.node_name, name, volume(tmp_path), sub_path))
        last: list[pod_pb2.Pod] = []

        def failed() -> bool:
            last[:] = [client.pods.get(name, namespace="default")]
            return last[0].status.phase == "Failed"

        wait_for(failed, 30, f"pod {name} refused by the agent")
        st = last[0].status
        assert st.reason == REASON_INVALID and field in st.message
        events = [
            e
            for e in client.events.list(namespace="default").items
            if e.involved_object.uid == uid and e.reason == REASON_INVALID
        ]
        assert events and field in events[0].message and events[0].type == "Warning"
        # nothing was prepared or run for it
        assert not (tmp_path / "node" / agent.s.node_name / "pods" / uid).exists()
        assert not agent.view.pod(uid).sandboxes
        assert not list(tmp_path.rglob("escaped"))
        client.pods.delete(name, namespace="default", grace_period_seconds=0)
