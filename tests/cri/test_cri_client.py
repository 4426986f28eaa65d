"""The client's small pure parts: endpoints, error mapping, request builders, log parsing."""

from __future__ import annotations

import grpc
import pytest

from hakube.cri import logs, specs
from hakube.cri.client import normalize_endpoint
from hakube.cri.errors import (
    CallTimeout,
    CriError,
    ImagePullFailed,
    NotFound,
    RuntimeUnavailable,
    from_rpc_error,
)
from hakube.cri.v1 import api_pb2 as pb


def test_endpoints_accept_unix_urls_bare_paths_and_tcp():
    assert (
        normalize_endpoint("unix:///run/containerd/containerd.sock")
        == "unix:///run/containerd/containerd.sock"
    )
    assert (
        normalize_endpoint("/run/containerd/containerd.sock")
        == "unix:///run/containerd/containerd.sock"
    )
    assert normalize_endpoint("127.0.0.1:7000") == "127.0.0.1:7000"
    with pytest.raises(ValueError, match="absolute path"):
        normalize_endpoint("unix://relative.sock")


class _Err(grpc.RpcError, grpc.Call):
    def __init__(self, code, details):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


@pytest.mark.parametrize(
    ("method", "code", "cls"),
    [
        ("ContainerStatus", grpc.StatusCode.NOT_FOUND, NotFound),
        ("Version", grpc.StatusCode.UNAVAILABLE, RuntimeUnavailable),
        ("ExecSync", grpc.StatusCode.DEADLINE_EXCEEDED, CallTimeout),
        ("StartContainer", grpc.StatusCode.UNKNOWN, CriError),
        ("PullImage", grpc.StatusCode.NOT_FOUND, ImagePullFailed),
        ("PullImage", grpc.StatusCode.UNKNOWN, ImagePullFailed),
        ("PullImage", grpc.StatusCode.UNAVAILABLE, RuntimeUnavailable),
    ],
)
def test_grpc_errors_map_to_the_cri_error_tree(method, code, cls):
    e = from_rpc_error(_Err(code, "boom"), method=method, subject="x")
    assert type(e) is cls
    assert e.code == code and e.method == method
    assert str(e) == f"{method}(x): boom [{code.name}]"


def test_linux_resources_follow_the_kubelet_rules():
    r = specs.linux_resources(
        cpu_request_millis=250, cpu_limit_millis=500, memory_limit_bytes=1 << 20
    )
    assert (r.cpu_shares, r.cpu_period, r.cpu_quota, r.memory_limit_in_bytes) == (
        256,
        100_000,
        50_000,
        1 << 20,
    )
    assert specs.linux_resources().cpu_shares == 2
    assert specs.linux_resources(cpu_limit_millis=1).cpu_quota == 1000


def test_host_network_is_set_on_sandbox_and_container_and_refuses_a_hostname():
    sc = specs.sandbox_config(name="p", namespace="d", uid="u", host_network=True)
    cc = specs.container_config(
        name="c", image="i", host_network=True, env={"A": "1"}, run_as_user=0
    )
    assert sc.linux.security_context.namespace_options.network == pb.NODE
    assert cc.linux.security_context.namespace_options.network == pb.NODE
    assert cc.linux.security_context.HasField("run_as_user")  # uid 0 is explicit, not unset
    assert [(e.key, e.value) for e in cc.envs] == [("A", "1")]
    with pytest.raises(ValueError, match="must not set a hostname"):
        specs.sandbox_config(name="p", namespace="d", uid="u", host_network=True, hostname="h")


def test_cri_log_lines_are_parsed_and_partial_lines_joined():
    raw = [
        "2026-01-01T00:00:00.000000001Z stdout P hel\n",
        "2026-01-01T00:00:00.000000002Z stderr F oops\n",
        "2026-01-01T00:00:00.000000003Z stdout F lo world\n",
        "garbage\n",
        "2026-01-01T00:00:00.000000004Z stdout F \n",
    ]
    got = [(x.stream, x.text) for x in logs.parse(raw)]
    assert got == [("stderr", "oops"), ("stdout", "hello world"), ("stdout", "")]


def test_the_public_namespace_is_deliberate():
    import hakube.cri

    assert sorted(hakube.cri.__all__) == [
        "CRI_VERSION",
        "CallTimeout",
        "CriClient",
        "CriError",
        "DEFAULT_ENDPOINT",
        "ExecResult",
        "ImagePullFailed",
        "NotFound",
        "RuntimeUnavailable",
        "Timeouts",
    ]
    for name in hakube.cri.__all__:
        assert getattr(hakube.cri, name) is not None


def test_the_proto_speaks_runtime_v1_with_the_published_method_paths():
    services = pb.DESCRIPTOR.services_by_name
    assert sorted(services) == ["ImageService", "RuntimeService"]
    assert services["RuntimeService"].full_name == "runtime.v1.RuntimeService"
    methods = {m.name for m in services["RuntimeService"].methods}
    assert {
        "Version",
        "RunPodSandbox",
        "CreateContainer",
        "StartContainer",
        "ExecSync",
        "ContainerStats",
        "PodSandboxStats",
        "Status",
    } <= methods
    # a few field numbers that are easy to get wrong (checked against k8s.io/cri-api)
    fields = pb.LinuxContainerSecurityContext.DESCRIPTOR.fields_by_name
    assert (fields["run_as_user"].number, fields["run_as_group"].number) == (5, 12)
    assert pb.ImageSpec.DESCRIPTOR.fields_by_name["user_specified_image"].number == 18
    assert pb.LinuxSandboxSecurityContext.DESCRIPTOR.fields_by_name["run_as_group"].number == 8
