"""The manifest shapes Kubernetes' documentation gives for the fields people write today apply
unchanged to a real master, read back with what they asked for, and apply again as
``unchanged`` (defaults the server fills in do not count as a change). The behaviour of each
field is tested where it happens (agent, scheduler, controllers); this is the user's first
step, ``apply -f`` twice, for all of them in one place."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from hakube.api import convert
from hakube.client import Client
from hakube.testing.cluster import LocalCluster

pytestmark = pytest.mark.timeout(120)


def _pod(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


NGINX = {"name": "nginx", "image": "nginx:1.27"}
HELLO = "echo Hello from the postStart handler > /usr/share/message"

CASES: list[tuple[str, dict[str, Any], Callable[[dict[str, Any]], Any], Any]] = [
    (
        "sidecar containers (initContainers[].restartPolicy: Always) in a Deployment",
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "myapp", "labels": {"app": "myapp"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "myapp"}},
                "template": {
                    "metadata": {"labels": {"app": "myapp"}},
                    "spec": {
                        "containers": [
                            {
                                "name": "myapp",
                                "image": "alpine:latest",
                                "command": ["sh", "-c", "while true; do sleep 1; done"],
                                "volumeMounts": [{"name": "data", "mountPath": "/opt"}],
                            }
                        ],
                        "initContainers": [
                            {
                                "name": "logshipper",
                                "image": "alpine:latest",
                                "restartPolicy": "Always",
                                "command": ["sh", "-c", "tail -F /opt/logs.txt"],
                                "volumeMounts": [{"name": "data", "mountPath": "/opt"}],
                            }
                        ],
                        "volumes": [{"name": "data", "emptyDir": {}}],
                    },
                },
            },
        },
        lambda d: d["spec"]["template"]["spec"]["initContainers"][0]["restartPolicy"],
        "Always",
    ),
    (
        "lifecycle postStart exec and preStop exec / sleep",
        _pod(
            "lifecycle-demo",
            {
                "containers": [
                    {
                        "name": "lifecycle-demo-container",
                        "image": "nginx",
                        "lifecycle": {
                            "postStart": {
                                "exec": {
                                    "command": [
                                        "/bin/sh",
                                        "-c",
                                        HELLO,
                                    ]
                                }
                            },
                            "preStop": {"sleep": {"seconds": 5}},
                        },
                    }
                ]
            },
        ),
        lambda d: d["spec"]["containers"][0]["lifecycle"]["preStop"],
        {"sleep": {"seconds": 5}},
    ),
    (
        "gRPC liveness probe",
        _pod(
            "etcd-with-grpc",
            {
                "containers": [
                    {
                        "name": "etcd",
                        "image": "registry.k8s.io/etcd:3.5.1-0",
                        "command": ["/usr/local/bin/etcd", "--data-dir", "/var/lib/etcd"],
                        "ports": [{"containerPort": 2379}],
                        "livenessProbe": {"grpc": {"port": 2379}, "initialDelaySeconds": 10},
                    }
                ]
            },
        ),
        lambda d: d["spec"]["containers"][0]["livenessProbe"]["grpc"],
        {"port": 2379},
    ),
    (
        "seccompProfile and appArmorProfile",
        _pod(
            "audit-pod",
            {
                "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [
                    {
                        "name": "test-container",
                        "image": "hashicorp/http-echo:1.0",
                        "args": ["-text=just made some syscalls!"],
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "appArmorProfile": {"type": "RuntimeDefault"},
                        },
                    }
                ],
            },
        ),
        lambda d: d["spec"]["securityContext"]["seccompProfile"],
        {"type": "RuntimeDefault"},
    ),
    (
        "shareProcessNamespace",
        _pod(
            "nginx-shared",
            {
                "shareProcessNamespace": True,
                "containers": [
                    NGINX,
                    {
                        "name": "shell",
                        "image": "busybox:1.28",
                        "command": ["sleep", "3600"],
                        # The documented example adds SYS_PTRACE, which the baseline Pod
                        # Security level (hakube's default) refuses, as Kubernetes' does.
                        "stdin": True,
                        "tty": True,
                    },
                ],
            },
        ),
        lambda d: d["spec"]["shareProcessNamespace"],
        True,
    ),
    (
        "hostAliases",
        _pod(
            "hostaliases-pod",
            {
                "restartPolicy": "Never",
                "hostAliases": [
                    {"ip": "127.0.0.1", "hostnames": ["foo.local", "bar.local"]},
                    {"ip": "10.1.2.3", "hostnames": ["foo.remote", "bar.remote"]},
                ],
                "containers": [
                    {
                        "name": "cat-hosts",
                        "image": "busybox:1.28",
                        "command": ["cat"],
                        "args": ["/etc/hosts"],
                    }  # fmt: skip
                ],
            },
        ),
        lambda d: d["spec"]["hostAliases"][1]["hostnames"],
        ["foo.remote", "bar.remote"],
    ),
    (
        "dnsPolicy None with dnsConfig",
        _pod(
            "dns-example",
            {
                "containers": [{"name": "test", "image": "nginx"}],
                "dnsPolicy": "None",
                "dnsConfig": {
                    "nameservers": ["192.0.2.1"],
                    "searches": ["ns1.svc.cluster-domain.example", "my.dns.search.suffix"],
                    "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
                },
            },
        ),
        lambda d: d["spec"]["dnsConfig"]["options"],
        [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
    ),
    (
        "schedulingGates",
        _pod(
            "test-pod",
            {
                "schedulingGates": [{"name": "example.com/foo"}, {"name": "example.com/bar"}],
                "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.6"}],
            },
        ),
        lambda d: [g["name"] for g in d["spec"]["schedulingGates"]],
        ["example.com/foo", "example.com/bar"],
    ),
    (
        "pod-level resources, and whole-number quantities",
        _pod(
            "pod-resources-demo",
            {
                "resources": {
                    "limits": {"cpu": 1, "memory": "200Mi"},
                    "requests": {"cpu": 1, "memory": "100Mi"},
                },
                "containers": [
                    {
                        "name": "pod-resources-demo-ctr-1",
                        "image": "nginx",
                        "resources": {
                            "limits": {"cpu": "0.5", "memory": "100Mi"},
                            "requests": {"cpu": "0.5", "memory": "50Mi"},
                        },
                    },
                    {
                        "name": "pod-resources-demo-ctr-2",
                        "image": "fedora",
                        "command": ["sleep", "inf"],
                    },  # fmt: skip
                ],
            },
        ),
        lambda d: d["spec"]["resources"]["limits"],
        {"cpu": "1", "memory": "200Mi"},
    ),
    (
        "resizePolicy",
        _pod(
            "resize-demo",
            {
                "containers": [
                    {
                        "name": "pause",
                        "image": "registry.k8s.io/pause:3.8",
                        "resizePolicy": [
                            {"resourceName": "cpu", "restartPolicy": "NotRequired"},
                            {"resourceName": "memory", "restartPolicy": "RestartContainer"},
                        ],
                        "resources": {
                            "limits": {"memory": "200Mi", "cpu": "700m"},
                            "requests": {"memory": "200Mi", "cpu": "700m"},
                        },
                    }
                ]
            },
        ),
        lambda d: d["spec"]["containers"][0]["resizePolicy"][1],
        {"resourceName": "memory", "restartPolicy": "RestartContainer"},
    ),
    (
        "Service ipFamilyPolicy PreferDualStack (single-stack IPv4 here)",
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "my-service", "labels": {"app.kubernetes.io/name": "MyApp"}},
            "spec": {
                "ipFamilyPolicy": "PreferDualStack",
                "selector": {"app.kubernetes.io/name": "MyApp"},
                "ports": [{"protocol": "TCP", "port": 80}],
            },
        },
        lambda d: (d["spec"]["ipFamilyPolicy"], d["spec"]["ipFamilies"]),
        ("PreferDualStack", ["IPv4"]),
    ),
    (
        "StatefulSet mounting its volumeClaimTemplates",
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "web"},
            "spec": {
                "selector": {"matchLabels": {"app": "nginx"}},
                "serviceName": "nginx",
                "replicas": 3,
                "minReadySeconds": 10,
                "template": {
                    "metadata": {"labels": {"app": "nginx"}},
                    "spec": {
                        "terminationGracePeriodSeconds": 10,
                        "containers": [
                            {
                                "name": "nginx",
                                "image": "registry.k8s.io/nginx-slim:0.24",
                                "ports": [{"containerPort": 80, "name": "web"}],
                                "volumeMounts": [
                                    {"name": "www", "mountPath": "/usr/share/nginx/html"}
                                ],
                            }
                        ],
                    },
                },
                "volumeClaimTemplates": [
                    {
                        "metadata": {"name": "www"},
                        "spec": {
                            "accessModes": ["ReadWriteOnce"],
                            "storageClassName": "my-storage-class",
                            "resources": {"requests": {"storage": "1Gi"}},
                        },
                    }
                ],
            },
        },
        lambda d: d["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
        "www",
    ),
]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    with LocalCluster(str(tmp_path_factory.mktemp("masters")), 1) as cluster:
        with Client(cluster.endpoints(), timeout=20) as c:
            yield c


@pytest.mark.parametrize(
    ("manifest", "read", "expected"),
    [pytest.param(doc, read, want, id=what) for what, doc, read, want in CASES],
)
def test_documented_manifest_applies_reads_back_and_reapplies_unchanged(
    client: Client, manifest: dict[str, Any], read: Callable[[dict[str, Any]], Any], expected: Any
) -> None:
    doc = copy.deepcopy(manifest)
    created = client.apply(doc)
    assert created.action == "created"
    assert read(convert.to_dict(created.object)) == expected
    assert doc == manifest  # apply does not change the caller's manifest
    again = client.apply(copy.deepcopy(manifest))
    assert again.action == "unchanged"
    stored = client.get(created.kind, manifest["metadata"]["name"], namespace="default")
    assert read(convert.to_dict(stored)) == expected
