"""Table-driven checks of the rules behind pod admission: volume paths and modes
(hakube.api.podpaths, through the API's validation) and the Pod Security levels
(hakube.api.podsecurity), plus the agent's own path guard (hakube.agent.volumes)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from hakube.agent import volumes
from hakube.agent.env import PodFacts
from hakube.api import convert, kinds, podpaths, podsecurity
from hakube.api.v1 import core_pb2, pod_pb2
from hakube.apiserver.errors import Invalid
from hakube.apiserver.validation import default_and_validate


def pod(spec: dict[str, Any], annotations: dict[str, str] | None = None) -> pod_pb2.Pod:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "x", "namespace": "default", "annotations": annotations or {}},
        "spec": {"containers": [{"name": "c", "image": "busybox:1"}], **spec},
    }
    p: pod_pb2.Pod = convert.from_dict(body)  # type: ignore[assignment]
    return p


def container(**extra: Any) -> list[dict[str, Any]]:
    return [{"name": "c", "image": "busybox:1", **extra}]


SECRET_ITEMS = {"name": "s", "secret": {"secretName": "s", "items": [{"key": "k", "path": "P"}]}}


def _secret_items(path: str, **extra: Any) -> dict[str, Any]:
    return {
        "volumes": [
            {
                "name": "s",
                "secret": {"secretName": "s", "items": [{"key": "k", "path": path, **extra}]},
            }
        ]
    }


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        (
            _secret_items("../../etc/cron.d/x"),
            "spec.volumes[0].secret.items[0].path",
            "must not contain '..'",
        ),
        (
            _secret_items("/etc/passwd"),
            "spec.volumes[0].secret.items[0].path",
            "must be a relative path",
        ),
        (
            _secret_items("..data"),
            "spec.volumes[0].secret.items[0].path",
            "must not start with '..'",
        ),
        (
            _secret_items("a/../../b"),
            "spec.volumes[0].secret.items[0].path",
            "must not contain '..'",
        ),
        (_secret_items(""), "spec.volumes[0].secret.items[0].path", "required value"),
        (_secret_items("ok", mode=0o4777), "spec.volumes[0].secret.items[0].mode", "invalid mode"),
        (_secret_items("ok", mode=-1), "spec.volumes[0].secret.items[0].mode", "invalid mode"),
        (
            {"volumes": [{"name": "c", "configMap": {"name": "c", "defaultMode": 0o2755}}]},
            "spec.volumes[0].configMap.defaultMode",
            "invalid mode",
        ),
        (
            {
                "volumes": [
                    {
                        "name": "c",
                        "configMap": {"name": "c", "items": [{"key": "k", "path": "../x"}]},
                    }
                ]
            },
            "spec.volumes[0].configMap.items[0].path",
            "must not contain '..'",
        ),
        (
            {
                "volumes": [
                    {
                        "name": "p",
                        "projected": {
                            "sources": [
                                {"configMap": {"name": "c"}},
                                {"secret": {"name": "s", "items": [{"key": "k", "path": "/abs"}]}},
                            ]
                        },
                    }
                ]
            },
            "spec.volumes[0].projected.sources[1].secret.items[0].path",
            "must be a relative path",
        ),
        (
            {"volumes": [{"name": "p", "projected": {"defaultMode": 0o1777, "sources": []}}]},
            "spec.volumes[0].projected.defaultMode",
            "invalid mode",
        ),
        (
            {
                "volumes": [
                    {
                        "name": "d",
                        "downwardAPI": {
                            "items": [
                                {"path": "../../name", "fieldRef": {"fieldPath": "metadata.name"}}
                            ]
                        },
                    }
                ]
            },
            "spec.volumes[0].downwardAPI.items[0].path",
            "must not contain '..'",
        ),
        (
            {
                "volumes": [{"name": "e", "emptyDir": {}}],
                "containers": container(
                    volumeMounts=[{"name": "e", "mountPath": "/m", "subPath": "../.."}]
                ),
            },
            "spec.containers[0].volumeMounts[0].subPath",
            "must not contain '..'",
        ),
        (
            {
                "volumes": [{"name": "e", "emptyDir": {}}],
                "initContainers": container(
                    volumeMounts=[{"name": "e", "mountPath": "/m", "subPath": "/etc"}]
                ),
            },
            "spec.initContainers[0].volumeMounts[0].subPath",
            "must be a relative path",
        ),
    ],
)
def test_volume_paths_that_leave_the_pod_directory_are_invalid(
    spec: dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(Invalid) as err:
        default_and_validate(kinds.BY_NAME["Pod"], pod(spec))
    assert f"{field}: {message}" in str(err.value)
    assert str(err.value).startswith('Pod "x" is invalid: ')


@pytest.mark.parametrize(
    "spec",
    [
        _secret_items("dir/file", mode=0o400),
        _secret_items("a..b", mode=0o777),
        {"volumes": [{"name": "c", "configMap": {"name": "c", "defaultMode": 0}}]},
    ],
)
def test_ordinary_paths_and_modes_are_valid(spec: dict[str, Any]) -> None:
    default_and_validate(kinds.BY_NAME["Pod"], pod(spec))


def test_a_sub_path_inside_the_volume_and_a_dotted_name_are_valid() -> None:
    spec = {
        "volumes": [{"name": "e", "emptyDir": {}}, SECRET_ITEMS],
        "containers": container(
            volumeMounts=[{"name": "e", "mountPath": "/m", "subPath": "a/b..c/d"}]
        ),
    }
    default_and_validate(kinds.BY_NAME["Pod"], pod(spec))


B, R = podsecurity.BASELINE, podsecurity.RESTRICTED
SECCOMP = {"seccompProfile": {"type": "RuntimeDefault"}}
RESTRICTED_OK = {
    "securityContext": {**SECCOMP, "runAsNonRoot": True},
    "containers": container(
        securityContext={"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    ),
}


@pytest.mark.parametrize(
    ("level", "spec", "annotations", "expected"),
    [
        (B, {}, {}, []),
        (
            B,
            {"containers": container(securityContext={"privileged": True})},
            {},
            [
                (
                    "spec.containers[0].securityContext.privileged",
                    "privileged containers are not allowed",
                )
            ],
        ),
        (B, {"hostNetwork": True}, {}, [("spec.hostNetwork", "host namespaces are not allowed")]),
        (
            B,
            {"volumes": [{"name": "h", "hostPath": {"path": "/"}}]},
            {},
            [("spec.volumes[0].hostPath", "hostPath volumes are not allowed")],
        ),
        (
            B,
            {"containers": container(ports=[{"containerPort": 80, "hostPort": 8080}])},
            {},
            [("spec.containers[0].ports[0].hostPort", "host ports are not allowed")],
        ),
        (
            B,
            {"containers": container(securityContext={"capabilities": {"add": ["SYS_ADMIN"]}})},
            {},
            [
                (
                    "spec.containers[0].securityContext.capabilities.add[0]",
                    'adding capability "SYS_ADMIN" is not allowed',
                )
            ],
        ),
        (
            B,
            {"containers": container(securityContext={"capabilities": {"add": ["CHOWN"]}})},
            {},
            [],
        ),
        (
            B,
            {},
            {"container.apparmor.security.beta.kubernetes.io/c": "unconfined"},
            [
                (
                    "metadata.annotations[container.apparmor.security.beta.kubernetes.io/c]",
                    'AppArmor profile "unconfined" is not allowed (runtime/default or localhost/*)',
                )
            ],
        ),
        (B, {}, {"container.apparmor.security.beta.kubernetes.io/c": "localhost/mine"}, []),
        (
            B,
            {},
            {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"},
            [
                (
                    "metadata.annotations[seccomp.security.alpha.kubernetes.io/pod]",
                    'seccomp profile "unconfined" is not allowed',
                )
            ],
        ),
        (
            podsecurity.PRIVILEGED,
            {"hostNetwork": True, "containers": container(securityContext={"privileged": True})},
            {},
            [],
        ),
        (R, RESTRICTED_OK, {}, []),
        (
            R,
            {**RESTRICTED_OK, "securityContext": {"runAsNonRoot": True}},
            {},
            [
                (
                    "spec.containers[0].securityContext.seccompProfile",
                    "must be RuntimeDefault or Localhost (here or in the pod's securityContext)",
                )
            ],
        ),
        (
            B,
            {
                "securityContext": {"seccompProfile": {"type": "Unconfined"}},
                "containers": container(
                    securityContext={"appArmorProfile": {"type": "Unconfined"}}
                ),
            },
            {},
            [
                (
                    "spec.securityContext.seccompProfile.type",
                    'seccomp profile "Unconfined" is not allowed',
                ),
                (
                    "spec.containers[0].securityContext.appArmorProfile.type",
                    'AppArmor profile "Unconfined" is not allowed',
                ),
            ],
        ),
        (
            R,
            {
                **RESTRICTED_OK,
                "securityContext": {
                    "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}
                },
            },
            {},
            [
                (
                    "spec.containers[0].securityContext.runAsNonRoot",
                    "must be true (here or in the pod's securityContext)",
                )
            ],
        ),
        (
            R,
            {**RESTRICTED_OK, "securityContext": {**SECCOMP, "runAsNonRoot": True, "runAsUser": 0}},
            {},
            [("spec.securityContext.runAsUser", "must not be 0 (root)")],
        ),
        (
            R,
            {
                "securityContext": {**SECCOMP, "runAsNonRoot": True},
                "containers": container(
                    securityContext={
                        "runAsNonRoot": False,
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                    }
                ),
            },
            {},
            [("spec.containers[0].securityContext.runAsNonRoot", "must be true")],
        ),
        (
            R,
            {"securityContext": {**SECCOMP, "runAsNonRoot": True}, "containers": container()},
            {},
            [
                ("spec.containers[0].securityContext.allowPrivilegeEscalation", "must be false"),
                ("spec.containers[0].securityContext.capabilities.drop", 'must include "ALL"'),
            ],
        ),
        (
            R,
            {
                "securityContext": {**SECCOMP, "runAsNonRoot": True},
                "containers": container(
                    securityContext={
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE", "CHOWN"]},
                    }
                ),
            },
            {},
            [
                (
                    "spec.containers[0].securityContext.capabilities.add[1]",
                    'adding capability "CHOWN" is not allowed (only NET_BIND_SERVICE)',
                )
            ],
        ),
        (
            R,
            {**RESTRICTED_OK, "volumes": [{"name": "h", "hostPath": {"path": "/tmp"}}]},
            {},
            [("spec.volumes[0].hostPath", "hostPath volumes are not allowed")],
        ),
    ],
)
def test_pod_security_levels_name_each_forbidden_field(
    level: str, spec: dict[str, Any], annotations: dict[str, str], expected: list[tuple[str, str]]
) -> None:
    p = pod(spec, annotations)
    assert (
        podsecurity.violations(p.spec, level, annotations=dict(p.metadata.annotations)) == expected
    )


@pytest.mark.parametrize("value", ["", "Baseline", "strict", "privileged-ish"])
def test_an_unknown_enforce_label_value_is_invalid(value: str) -> None:
    ns = core_pb2.Namespace(kind="Namespace", api_version="v1")
    ns.metadata.name = "team"
    ns.metadata.labels[podsecurity.LABEL_ENFORCE] = value
    with pytest.raises(Invalid) as err:
        default_and_validate(kinds.BY_NAME["Namespace"], ns)
    assert f"metadata.labels[{podsecurity.LABEL_ENFORCE}]: unknown Pod Security level" in str(
        err.value
    )


# -- the agent's own guard -----------------------------------------------------------------------


def _prepare(tmp_path: Path, p: pod_pb2.Pod) -> dict[str, volumes.HostVolume]:
    secret = core_pb2.Secret()
    secret.data["k"] = b"value"
    p.metadata.uid = "uid-1"
    return volumes.prepare(
        p,
        str(tmp_path / "root"),
        lambda *_: secret,
        PodFacts(pod_ip="", host_ip="", node_cpu_millis=0, node_memory_bytes=0),
        secrets_on_disk=True,
    )


@pytest.mark.parametrize("path", ["../../../outside", "/abs/outside", "a/../../../outside"])
def test_the_agent_writes_nothing_outside_the_volume_for_a_bad_item_path(
    tmp_path: Path, path: str
) -> None:
    (tmp_path / "root").mkdir()
    with pytest.raises(volumes.PathEscape):
        _prepare(tmp_path, pod(_secret_items(path)))
    assert not (tmp_path / "outside").exists() and not Path("/abs/outside").exists()


def test_the_agent_refuses_a_setuid_mode(tmp_path: Path) -> None:
    with pytest.raises(volumes.PathEscape, match="invalid mode"):
        _prepare(tmp_path, pod(_secret_items("f", mode=0o4777)))
    files = [p for p in (tmp_path / "root").rglob("*") if p.is_file()]
    assert all(not (f.stat().st_mode & 0o7000) for f in files)


def test_a_symlink_planted_in_an_empty_dir_does_not_lead_a_sub_path_out(tmp_path: Path) -> None:
    p = pod(
        {
            "volumes": [{"name": "e", "emptyDir": {}}],
            "containers": container(
                volumeMounts=[{"name": "e", "mountPath": "/m", "subPath": "link"}]
            ),
        }
    )
    vols = _prepare(tmp_path, p)
    os.symlink("/", os.path.join(vols["e"].path, "link"))  # what a container could do
    with pytest.raises(volumes.PathEscape, match="resolves outside"):
        volumes.mounts(p.spec.containers[0], vols)


def test_the_default_level_applies_to_unlabelled_namespaces_and_kube_system_is_privileged() -> None:
    from hakube.apiserver.admission import PodSecurity
    from hakube.store.fsm import StoreFSM

    fsm = StoreFSM()
    assert PodSecurity(fsm).level("team") == podsecurity.BASELINE
    assert PodSecurity(fsm, "restricted").level("team") == podsecurity.RESTRICTED
    assert PodSecurity(fsm, "restricted").level("kube-system") == podsecurity.PRIVILEGED
    with pytest.raises(ValueError, match='unknown Pod Security level "lax"'):
        PodSecurity(fsm, "lax")


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: setattr(p.metadata, "uid", "../.."), "metadata.uid"),
        (lambda p: setattr(p.metadata, "namespace", ".."), "metadata.namespace"),
        (lambda p: p.spec.volumes.add(name="../../x", empty_dir={}), "spec.volumes[0].name"),
        (lambda p: setattr(p.spec.containers[0], "name", "a/b"), "spec.containers[0].name"),
    ],
)
def test_the_agent_also_checks_the_names_it_turns_into_node_paths(mutate: Any, field: str) -> None:
    p = pod({})
    p.metadata.uid = "u-1"
    assert podpaths.node_problems(p) == []
    mutate(p)
    assert [f for f, _ in podpaths.node_problems(p)] == [field]


def test_removing_a_pod_with_a_climbing_uid_removes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "node"
    (root / "pods").mkdir(parents=True)
    (tmp_path / "precious").write_text("keep")
    volumes.remove(str(root), "../..")
    volumes.remove(str(root), "..")
    assert (tmp_path / "precious").read_text() == "keep" and (root / "pods").is_dir()
