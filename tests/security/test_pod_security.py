"""Pod Security admission against real masters: API access must not be root on every node.

A namespace without a label gets baseline: a privileged container, a hostPath of "/" and the
host's network are refused with the field and the level, and nothing is stored. A namespace
labelled privileged accepts them; one labelled restricted also wants non-root, no privilege
escalation and every capability dropped. Templates of workload kinds are checked the same way.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from hakube.api import convert
from hakube.api.podsecurity import LABEL_ENFORCE
from hakube.api.v1 import core_pb2, pod_pb2
from hakube.client import Client, Forbidden, Invalid, NotFound
from hakube.testing.cluster import LocalCluster

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def client(masters3: LocalCluster) -> Iterator[Client]:
    with masters3.client(timeout=20) as c:
        yield c


def namespace(client: Client, level: str | None) -> str:
    name = f"ps-{level or 'none'}-{uuid.uuid4().hex[:6]}"
    ns = core_pb2.Namespace()
    ns.metadata.name = name
    if level:
        ns.metadata.labels[LABEL_ENFORCE] = level
    client.create(ns)
    return name


def pod(name: str, ns: str, **spec: Any) -> pod_pb2.Pod:
    spec.setdefault("containers", [{"name": "c", "image": "busybox:1"}])
    p: pod_pb2.Pod = convert.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",  # type: ignore[assignment]
            "metadata": {"name": name, "namespace": ns},
            "spec": spec,
        }
    )
    return p


ROOT_ON_THE_NODE = [
    (
        "privileged",
        {
            "containers": [
                {"name": "c", "image": "busybox:1", "securityContext": {"privileged": True}}
            ]
        },
        "spec.containers[0].securityContext.privileged: privileged containers are not allowed",
    ),
    (
        "hostpath",
        {"volumes": [{"name": "root", "hostPath": {"path": "/"}}]},
        "spec.volumes[0].hostPath: hostPath volumes are not allowed",
    ),
    ("hostnet", {"hostNetwork": True}, "spec.hostNetwork: host namespaces are not allowed"),
]


@pytest.mark.parametrize(
    ("name", "spec", "field"), ROOT_ON_THE_NODE, ids=[c[0] for c in ROOT_ON_THE_NODE]
)
def test_a_default_namespace_refuses_host_access_with_the_field_and_the_level(
    client: Client, name: str, spec: dict[str, Any], field: str
) -> None:
    for ns in ("default", namespace(client, None)):
        with pytest.raises(Forbidden) as err:
            client.pods.create(pod(name, ns, **spec))
        assert str(err.value) == f'pod "{name}": violates PodSecurity "baseline": {field}'
        with pytest.raises(NotFound):
            client.pods.get(name, namespace=ns)


@pytest.mark.parametrize(
    ("name", "spec", "field"), ROOT_ON_THE_NODE, ids=[c[0] for c in ROOT_ON_THE_NODE]
)
def test_a_namespace_labelled_privileged_accepts_host_access(
    client: Client, name: str, spec: dict[str, Any], field: str
) -> None:
    ns = namespace(client, "privileged")
    client.pods.create(pod(name, ns, **spec))
    assert client.pods.get(name, namespace=ns).metadata.uid


def test_kube_system_is_privileged_unless_labelled(client: Client) -> None:
    name = f"sys-{uuid.uuid4().hex[:6]}"
    client.pods.create(pod(name, "kube-system", hostNetwork=True))
    client.pods.delete(name, namespace="kube-system", grace_period_seconds=0)


def test_a_restricted_namespace_wants_a_non_root_pod_without_privileges(client: Client) -> None:
    ns = namespace(client, "restricted")
    with pytest.raises(Forbidden) as err:
        client.pods.create(pod("root", ns))
    msg = str(err.value)
    assert msg.startswith('pod "root": violates PodSecurity "restricted": ')
    assert "spec.containers[0].securityContext.runAsNonRoot: must be true" in msg
    assert "allowPrivilegeEscalation: must be false" in msg
    hardened = {
        "name": "c",
        "image": "busybox:1",
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    client.pods.create(pod("hardened", ns, containers=[hardened]))


def test_templates_are_checked_and_unchanged_templates_may_still_be_updated(client: Client) -> None:
    ns = namespace(client, "privileged")
    body = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "agentish", "namespace": ns},
        "spec": {
            "selector": {"matchLabels": {"app": "a"}},
            "template": {
                "metadata": {"labels": {"app": "a"}},
                "spec": {"hostNetwork": True, "containers": [{"name": "c", "image": "busybox:1"}]},
            },
        },
    }
    client.create(convert.from_dict(body))
    # the namespace becomes stricter: the existing Deployment can still be scaled...
    nso = client.get(core_pb2.Namespace, ns)
    nso.metadata.labels[LABEL_ENFORCE] = "baseline"
    client.update(nso)
    d: Any = client.get("Deployment", "agentish", namespace=ns)
    d.spec.replicas = 3
    client.update(d)
    # ...but not changed into another pod spec the level forbids, nor created again
    d = client.get("Deployment", "agentish", namespace=ns)
    d.spec.template.spec.containers[0].image = "busybox:2"
    with pytest.raises(Forbidden) as err:
        client.update(d)
    assert str(err.value) == (
        'deployment "agentish": violates PodSecurity "baseline": '
        "spec.template.spec.hostNetwork: host namespaces are not allowed"
    )
    body["metadata"] = {"name": "again", "namespace": ns}
    with pytest.raises(Forbidden, match="spec.template.spec.hostNetwork"):
        client.create(convert.from_dict(body))
    cron = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "c", "namespace": ns},
        "spec": {
            "schedule": "* * * * *",
            "jobTemplate": {
                "spec": {
                    "template": {
                        "spec": {
                            "restartPolicy": "Never",
                            "volumes": [{"name": "h", "hostPath": {"path": "/"}}],
                            "containers": [{"name": "c", "image": "busybox:1"}],
                        }
                    }
                }
            },
        },
    }
    with pytest.raises(
        Forbidden,
        match=r"spec\.jobTemplate\.spec\.template\.spec\.volumes\[0\]"
        r"\.hostPath: hostPath volumes are not allowed",
    ):
        client.create(convert.from_dict(cron))


def test_an_unknown_level_label_is_refused_and_changes_nothing(client: Client) -> None:
    bad = core_pb2.Namespace()
    bad.metadata.name = f"ps-bad-{uuid.uuid4().hex[:6]}"
    bad.metadata.labels[LABEL_ENFORCE] = "permissive"
    with pytest.raises(Invalid) as err:
        client.create(bad)
    assert f'metadata.labels[{LABEL_ENFORCE}]: unknown Pod Security level "permissive"' in str(
        err.value
    )
    with pytest.raises(NotFound):
        client.get(core_pb2.Namespace, bad.metadata.name)
    ns = namespace(client, "restricted")
    obj = client.get(core_pb2.Namespace, ns)
    obj.metadata.labels[LABEL_ENFORCE] = "Privileged"
    with pytest.raises(Invalid):
        client.update(obj)
    assert client.get(core_pb2.Namespace, ns).metadata.labels[LABEL_ENFORCE] == "restricted"
