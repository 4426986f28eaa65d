"""seccomp profiles reach the container through CRI, on real containerd: the runtime's default
filter unless the pod says otherwise, Unconfined only where Pod Security allows it, and a
Localhost profile read from the node's profile directory that really filters system calls."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from hakube.api.convert import from_dict
from hakube.api.v1 import pod_pb2
from hakube.client import Client
from hakube.client.errors import Forbidden
from hakube.testing.containerd import BUSYBOX_IMAGE
from tests.agent.conftest import StartAgent, ctl, make_pod, wait_pod

pytestmark = [pytest.mark.containerd, pytest.mark.timeout(120)]

REPORT = (
    "grep Seccomp: /proc/self/status; "
    "mkdir /tmp/made 2>/dev/null && echo MKDIR-OK || echo MKDIR-REFUSED"
)
NO_MKDIR = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}],
}


def report_pod(name: str, node: str, **security: object) -> pod_pb2.Pod:
    container = {
        "name": "c",
        "image": BUSYBOX_IMAGE,
        "command": ["sh", "-c", REPORT],
        **({"securityContext": security} if security else {}),
    }
    return make_pod(name, node, [container], restartPolicy="Never")


def output(cluster: object, client: Client, name: str) -> str:
    wait_pod(client, name, lambda p: p.status.phase == "Succeeded", 60, "succeeded")
    return ctl(cluster, "logs", name)[1]  # type: ignore[arg-type]


def test_the_runtime_default_filter_applies_unless_the_pod_chooses(
    cluster: object, client: Client, start_agent: StartAgent, tmp_path: Path
) -> None:
    profiles = tmp_path / "seccomp"
    (profiles / "team").mkdir(parents=True)
    (profiles / "team" / "no-mkdir.json").write_text(json.dumps(NO_MKDIR))
    agent = start_agent(extra=["--seccomp-profile-root", str(profiles)])

    client.pods.create(report_pod("sc-default", agent.node))
    client.pods.create(
        report_pod("sc-runtime", agent.node, seccompProfile={"type": "RuntimeDefault"})
    )
    client.pods.create(
        report_pod(
            "sc-local",
            agent.node,
            seccompProfile={"type": "Localhost", "localhostProfile": "team/no-mkdir.json"},
        )
    )
    assert output(cluster, client, "sc-default") == "Seccomp:\t2\nMKDIR-OK\n"
    assert output(cluster, client, "sc-runtime") == "Seccomp:\t2\nMKDIR-OK\n"
    assert output(cluster, client, "sc-local") == "Seccomp:\t2\nMKDIR-REFUSED\n"


def test_unconfined_is_refused_at_baseline_and_runs_unfiltered_where_privileged(
    cluster: object, client: Client, start_agent: StartAgent
) -> None:
    agent = start_agent()
    ns = f"sc-{uuid.uuid4().hex[:6]}"  # no Pod Security label: baseline
    client.namespaces.create(
        from_dict({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    )
    try:
        open_pod = report_pod("sc-open", agent.node, seccompProfile={"type": "Unconfined"})
        open_pod.metadata.namespace = ns
        with pytest.raises(Forbidden, match='seccompProfile.type: seccomp profile "Unconfined"'):
            client.pods.create(open_pod)
    finally:
        client.namespaces.delete(ns)
    # the agent tests' default namespace is labelled privileged
    client.pods.create(report_pod("sc-open", agent.node, seccompProfile={"type": "Unconfined"}))
    assert output(cluster, client, "sc-open") == "Seccomp:\t0\nMKDIR-OK\n"


def test_a_node_without_the_default_runs_unnamed_profiles_unconfined(
    cluster: object, client: Client, start_agent: StartAgent
) -> None:
    agent = start_agent(extra=["--no-seccomp-default"])
    client.pods.create(report_pod("sc-nodefault", agent.node))
    assert output(cluster, client, "sc-nodefault") == "Seccomp:\t0\nMKDIR-OK\n"
