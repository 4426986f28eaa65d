"""Manifest shapes Kubernetes accepts (and refuses) that published examples use every day:
numbers as quantities, StatefulSet volumes from claim templates; a Secret's data must be
standard base64 and a manifest must say its apiVersion."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from hakube.api import convert, kinds
from hakube.apiserver.errors import Invalid
from hakube.apiserver.validation import default_and_validate
from hakube.cli import manifests


def _pod(resources: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"name": "c", "image": "busybox", "resources": resources}]},
    }


def _validated(doc: dict[str, Any]) -> Any:
    msg = convert.from_dict(doc)
    msg.metadata.namespace = "default"  # type: ignore[attr-defined]
    default_and_validate(kinds.BY_MESSAGE[type(msg)], msg)
    return msg


def test_whole_and_fractional_numbers_are_quantities() -> None:
    pod = _validated(
        _pod(
            {
                "limits": {"cpu": 2, "memory": 1, "example.com/dongle": 3},
                "requests": {"cpu": 0.5, "memory": 1e3},
            }
        )
    )
    res = pod.spec.containers[0].resources
    assert dict(res.limits) == {"cpu": "2", "memory": "1", "example.com/dongle": "3"}
    assert dict(res.requests) == {"cpu": "0.5", "memory": "1000"}


def test_number_quantities_in_volumes_claims_and_autoscalers() -> None:
    pod = convert.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p"},
            "spec": {
                "containers": [{"name": "c", "image": "i"}],
                "volumes": [{"name": "v", "emptyDir": {"sizeLimit": 1}}],
            },
        }
    )
    assert pod.spec.volumes[0].empty_dir.size_limit == "1"  # type: ignore[attr-defined]
    pvc = convert.from_dict(
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "c"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": 8}}},
        }
    )
    assert dict(pvc.spec.resources.requests) == {"storage": "8"}  # type: ignore[attr-defined]


def test_a_quantity_that_is_not_a_number_or_text_names_the_field() -> None:
    with pytest.raises(convert.ManifestError, match=r"Pod p: .*spec\.containers.*limits"):
        convert.from_dict(_pod({"limits": {"cpu": True}}))
    with pytest.raises(Invalid, match=r"spec\.containers\[0\]\.resources\.limits\[cpu\]"):
        _validated(_pod({"limits": {"cpu": "two"}}))


def test_numbers_stay_refused_where_kubernetes_wants_text() -> None:
    doc = _pod({})
    doc["metadata"]["labels"] = {"tier": 1}
    with pytest.raises(convert.ManifestError, match="metadata.labels"):
        convert.from_dict(doc)


@pytest.mark.parametrize("value", ["hello world", "p@ss", "a-b_", "YWJj\n", "abc"])
def test_secret_data_must_be_standard_base64(value: str) -> None:
    doc = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"password": value},
    }
    with pytest.raises(convert.ManifestError, match=r"Secret s: data\[password\]: illegal base64"):
        convert.from_dict(doc)


def test_secret_base64_and_string_data_still_convert() -> None:
    s = _validated(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "s"},
            "data": {"a": "aGVsbG8=", "empty": ""},
            "stringData": {"b": "x y"},
        }
    )
    assert dict(s.data) == {"a": b"hello", "empty": b"", "b": b"x y"}


def _stateful_set(mounts: list[dict[str, str]]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "web"},
        "spec": {
            "serviceName": "nginx",
            "replicas": 2,
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {
                    "containers": [{"name": "nginx", "image": "nginx", "volumeMounts": mounts}]
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "www"},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}},
                    },
                }
            ],
        },
    }


def test_stateful_set_containers_mount_their_claim_templates() -> None:
    _validated(_stateful_set([{"name": "www", "mountPath": "/usr/share/nginx/html"}]))
    with pytest.raises(Invalid, match=r'volumeMounts\[0\]\.name: volume "data" not found'):
        _validated(_stateful_set([{"name": "data", "mountPath": "/data"}]))


def test_a_manifest_file_without_api_version_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "pod.yaml"
    f.write_text(
        "kind: Pod\nmetadata: {name: bare}\nspec: {containers: [{name: c, image: busybox}]}\n"
    )
    with pytest.raises(manifests.ManifestError, match="Pod bare: apiVersion not set"):
        manifests.load([str(f)])
    f.write_text("apiVersion: v1\n" + f.read_text())
    assert [m.kind.name for m in manifests.load([str(f)])] == ["Pod"]


def _service(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}], **spec},
    }


def test_services_are_single_stack_ipv4() -> None:
    svc = _validated(_service())
    assert (svc.spec.ip_family_policy, list(svc.spec.ip_families)) == ("SingleStack", ["IPv4"])
    prefer = _validated(_service(ipFamilyPolicy="PreferDualStack"))
    assert list(prefer.spec.ip_families) == ["IPv4"]  # the one family there is
    with pytest.raises(
        Invalid,
        match="spec.ipFamilyPolicy: RequireDualStack: this cluster is "
        "not configured for dual-stack",
    ):
        _validated(_service(ipFamilyPolicy="RequireDualStack"))
    with pytest.raises(Invalid, match=r"spec.ipFamilies\[0\]: IPv6: .*IPv4 only"):
        _validated(_service(ipFamilies=["IPv6"]))
    assert convert.to_dict(_validated(_service(ipFamilies=["IPv4"])))["spec"]["ipFamilies"] == [
        "IPv4"
    ]


@pytest.mark.parametrize(
    ("patch", "field", "reason"),
    [
        (
            {
                "containers": [
                    {"name": "c", "image": "i", "resources": {"claims": [{"name": "gpu"}]}}
                ]
            },
            r"spec.containers\[0\].resources.claims",
            "dynamic resource allocation is not enabled",
        ),
        (
            {"volumes": [{"name": "tools", "image": {"reference": "quay.io/tools:1"}}]},
            r"spec.volumes\[0\].image",
            "image volumes are not enabled",
        ),
        (
            {"securityContext": {"windowsOptions": {"runAsUserName": "ContainerUser"}}},
            "spec.securityContext.windowsOptions",
            "Linux only",
        ),
        (
            {
                "containers": [
                    {
                        "name": "c",
                        "image": "i",
                        "securityContext": {"windowsOptions": {"hostProcess": True}},
                    }
                ]
            },
            r"spec.containers\[0\].securityContext.windowsOptions",
            "Linux only",
        ),
    ],
)
def test_features_this_cluster_lacks_are_refused_by_name(
    patch: dict[str, Any], field: str, reason: str
) -> None:
    doc = _pod({})
    doc["spec"].update(patch)
    with pytest.raises(Invalid, match=f"{field}: not supported on this cluster: .*{reason}"):
        _validated(doc)


def _pod_level(resources: dict[str, Any], containers: list[dict[str, Any]]) -> dict[str, Any]:
    doc = _pod({})
    doc["spec"]["resources"] = resources
    doc["spec"]["containers"] = containers
    return doc


def test_pod_level_resources_default_the_request_from_the_limit() -> None:
    pod = _validated(
        _pod_level(
            {"limits": {"cpu": "2", "memory": "1Gi"}},
            [{"name": "c", "image": "i", "resources": {"requests": {"cpu": "500m"}}}],
        )
    )
    assert dict(pod.spec.resources.requests) == {"cpu": "2", "memory": "1Gi"}


@pytest.mark.parametrize(
    ("resources", "container", "field"),
    [
        ({"requests": {"nvidia.com/gpu": "1"}}, {}, "spec.resources.requests[nvidia.com/gpu]"),
        ({"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}, {}, "spec.resources.requests[cpu]"),
        ({"requests": {"cpu": "1"}}, {"requests": {"cpu": "2"}}, "spec.resources.requests[cpu]"),
        (
            {"limits": {"memory": "1Gi"}},
            {"limits": {"memory": "2Gi"}},
            "spec.containers[0].resources.limits[memory]",
        ),
        ({"requests": {"cpu": "lots"}}, {}, "spec.resources.requests[cpu]"),
    ],
)
def test_pod_level_resources_are_checked_against_the_containers(
    resources: dict[str, Any], container: dict[str, Any], field: str
) -> None:
    doc = _pod_level(resources, [{"name": "c", "image": "i", "resources": container}])
    with pytest.raises(Invalid, match=re.escape(f"{field}:")):
        _validated(doc)


def test_resize_policy_is_stored_and_validated() -> None:
    ok = {
        "name": "c",
        "image": "i",
        "resizePolicy": [
            {"resourceName": "cpu", "restartPolicy": "NotRequired"},
            {"resourceName": "memory", "restartPolicy": "RestartContainer"},
        ],
    }
    pod = _validated(_pod_level({}, [ok]))
    assert [p.restart_policy for p in pod.spec.containers[0].resize_policy] == [
        "NotRequired",
        "RestartContainer",
    ]
    bad = {**ok, "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "Sometimes"}]}
    with pytest.raises(
        Invalid, match=re.escape("spec.containers[0].resizePolicy[0].restartPolicy:")
    ):
        _validated(_pod_level({}, [bad]))


def _claim(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], **spec},
    }


def test_claims_default_the_volume_mode_and_refuse_data_sources_by_name() -> None:
    claim = _validated(_claim({"resources": {"requests": {"storage": "1Gi"}}}))
    assert claim.spec.volume_mode == "Filesystem"
    snapshot = {"dataSource": {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot",
                               "name": "snap-1"}}  # fmt: skip
    with pytest.raises(Invalid, match=re.escape("spec.dataSource: not supported on this cluster")):
        _validated(_claim(snapshot))
    with pytest.raises(Invalid, match=re.escape('spec.accessModes[0]: unsupported value "RWX"')):
        _validated({**_claim({}), "spec": {"accessModes": ["RWX"]}})
