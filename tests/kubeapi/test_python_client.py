"""The official Kubernetes Python client (PyPI ``kubernetes``) against a three-master hakube
cluster, configured from the kubeconfig hakube writes: typed reads and writes of a Deployment,
paged lists, pod logs, and ``watch.Watch()`` streams that outlive the death of another master
and resume from a resourceVersion."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from hakube.agent.agent import Agent
from hakube.testing.cluster import LocalCluster
from hakube.testing.wait import wait_for
from tests.conftest import require
from tests.kubeapi.conftest import IMAGE

try:
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config
    from kubernetes import watch as k8s_watch
    from kubernetes.client.rest import ApiException
    from urllib3.exceptions import ProtocolError
except ImportError:  # pragma: no cover - the dev extra installs it
    k8s = None  # type: ignore[assignment]

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def api(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """An ApiClient of the first master (the one the kill below spares)."""
    require(None if k8s is not None else "the kubernetes Python client is not installed")
    path = cluster.kubeconfig(str(tmp_path_factory.mktemp("py") / "kubeconfig"))
    with k8s_config.new_client_from_config(config_file=path) as c:
        yield c


def _deployment(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "containers": [
                        {
                            "name": "c",
                            "image": IMAGE,
                            "command": ["sh", "-c", "echo from python; sleep 3600"],
                        }
                    ]
                },
            },
        },
    }


def test_create_patch_read_logs_and_delete_a_deployment(
    api: Any, components: None, node: Agent
) -> None:
    apps, core = k8s.AppsV1Api(api), k8s.CoreV1Api(api)
    name = f"py-{uuid.uuid4().hex[:6]}"
    created = apps.create_namespaced_deployment("default", _deployment(name))
    assert created.metadata.name == name and created.metadata.uid
    patched = apps.patch_namespaced_deployment(
        name, "default", {"metadata": {"labels": {"patched": "yes"}}, "spec": {"replicas": 2}}
    )
    assert patched.metadata.labels == {"app": name, "patched": "yes"}
    assert patched.spec.replicas == 2
    assert patched.spec.template.spec.containers[0].image == IMAGE

    def available() -> bool:
        d = apps.read_namespaced_deployment(name, "default")
        return (d.status.available_replicas or 0) == 2

    wait_for(available, 60, "2 available replicas")
    pods = core.list_namespaced_pod("default", label_selector=f"app={name}").items
    assert len(pods) == 2
    log = core.read_namespaced_pod_log(pods[0].metadata.name, "default")
    assert log == "from python\n"

    with pytest.raises(ApiException) as err:
        apps.create_namespaced_deployment("default", _deployment(name))
    assert (err.value.status, err.value.reason) == (409, "Conflict")

    apps.delete_namespaced_deployment(name, "default", propagation_policy="Foreground")
    wait_for(
        lambda: (
            not core.list_namespaced_pod("default", label_selector=f"app={name}").items
            and not apps.list_namespaced_deployment("default", label_selector=f"app={name}").items
        ),
        60,
        "the deployment and its pods to be gone",
    )


def test_lists_page_with_limit_and_continue(api: Any) -> None:
    core = k8s.CoreV1Api(api)
    ns = f"paged-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns}})
    for i in range(5):
        core.create_namespaced_config_map(ns, {"metadata": {"name": f"cm-{i}"}})
    names, token, pages = [], None, 0
    while True:
        page = core.list_namespaced_config_map(ns, limit=2, _continue=token)
        names += [i.metadata.name for i in page.items]
        pages += 1
        token = page.metadata._continue
        if not token:
            break
    assert names == [f"cm-{i}" for i in range(5)] and pages == 3
    core.patch_namespaced_config_map("cm-1", ns, {"metadata": {"labels": {"keep": "yes"}}})
    core.delete_collection_namespaced_config_map(ns, label_selector="!keep")
    left = core.list_namespaced_config_map(ns, field_selector="metadata.name=cm-1").items
    assert [i.metadata.name for i in core.list_namespaced_config_map(ns).items] == ["cm-1"]
    assert [i.metadata.name for i in left] == ["cm-1"]


def test_a_watch_survives_another_masters_death_and_resumes(
    api: Any, cluster: LocalCluster
) -> None:
    core = k8s.CoreV1Api(api)
    ns = f"watched-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns}})
    start = core.list_namespaced_config_map(ns).metadata.resource_version
    seen: list[tuple[str, str]] = []
    w = k8s_watch.Watch()

    def follow() -> None:
        try:
            for ev in w.stream(core.list_namespaced_config_map, ns, resource_version=start):
                seen.append((ev["type"], ev["object"].metadata.name))
        except ProtocolError:
            assert w._stop  # Watch.stop() shuts the socket down under the reading thread

    t = threading.Thread(target=follow, daemon=True)
    t.start()
    core.create_namespaced_config_map(ns, {"metadata": {"name": "before"}})
    wait_for(lambda: ("ADDED", "before") in seen, 20, "the first event")
    mid = core.read_namespaced_config_map("before", ns).metadata.resource_version

    leader = cluster.leader()
    victim = leader if leader is not cluster.masters[0] else cluster.masters[2]
    cluster.kill(victim)
    wait_for(lambda: _creates(core, ns, "after"), 30, "a write through the survivor")
    wait_for(lambda: ("ADDED", "after") in seen, 20, "the event after the kill")
    core.delete_namespaced_config_map("before", ns)
    wait_for(lambda: ("DELETED", "before") in seen, 20, "the delete event")
    w.stop()
    t.join(20)
    assert not t.is_alive()

    # A new watch from a resourceVersion seen before the kill gets what came since.
    resumed = []
    w2 = k8s_watch.Watch()
    for ev in w2.stream(
        core.list_namespaced_config_map, ns, resource_version=mid, timeout_seconds=5
    ):
        resumed.append((ev["type"], ev["object"].metadata.name))
        if len(resumed) == 2:
            w2.stop()
            break
    assert resumed[:2] == [("ADDED", "after"), ("DELETED", "before")]


def _creates(core: Any, ns: str, name: str) -> bool:
    try:
        core.create_namespaced_config_map(ns, {"metadata": {"name": name}})
        return True
    except ApiException as exc:
        if exc.status == 409:
            return True
        return False
    except Exception:  # noqa: BLE001 - connection errors while the cluster re-elects
        return False


def test_a_watch_on_the_master_that_dies_resumes_on_another_from_its_last_version(
    api: Any,
    cluster: LocalCluster,
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    """The master a Watch() streams from is killed (SIGKILL): the stream breaks, and a new
    Watch() on another master from the last resourceVersion the first one delivered gets
    every change made meanwhile, none twice."""
    for m in cluster.masters:  # an earlier test may have killed one: three again
        if not m.alive:
            cluster.start(m)
    cluster.wait_ready()
    doomed = cluster.masters[1]
    path = cluster.kubeconfig(str(tmp_path / "kubeconfig"), master=doomed)
    core = k8s.CoreV1Api(api)  # masters[0], which survives
    ns = f"failover-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": ns}})
    start = core.list_namespaced_config_map(ns).metadata.resource_version
    seen: list[tuple[str, str]] = []
    last = [start]
    ended: list[BaseException] = []

    with k8s_config.new_client_from_config(config_file=path) as doomed_api:
        w = k8s_watch.Watch()

        def follow() -> None:
            try:
                doomed_core = k8s.CoreV1Api(doomed_api)
                for ev in w.stream(
                    doomed_core.list_namespaced_config_map, ns, resource_version=start
                ):
                    seen.append((ev["type"], ev["object"].metadata.name))
                    last[0] = ev["object"].metadata.resource_version
            except Exception as exc:  # noqa: BLE001 - the broken stream, whatever urllib3 says
                ended.append(exc)

        t = threading.Thread(target=follow, daemon=True)
        t.start()
        core.create_namespaced_config_map(ns, {"metadata": {"name": "before"}})
        wait_for(lambda: ("ADDED", "before") in seen, 20, "the event on the doomed master")
        cluster.kill(doomed)
        t.join(30)
        assert not t.is_alive() and ended, "the watch on the killed master did not end"
    wait_for(lambda: _creates(core, ns, "during"), 30, "a write through the survivor")
    core.delete_namespaced_config_map("before", ns)

    resumed: list[tuple[str, str]] = []
    w2 = k8s_watch.Watch()
    for ev in w2.stream(
        core.list_namespaced_config_map, ns, resource_version=last[0], timeout_seconds=10
    ):
        resumed.append((ev["type"], ev["object"].metadata.name))
        if len(resumed) == 2:
            w2.stop()
            break
    assert seen == [("ADDED", "before")]
    assert resumed == [("ADDED", "during"), ("DELETED", "before")]
    cluster.start(doomed)
    cluster.wait_ready()
