"""The security context reaches the container through CRI, on real containerd: users, groups,
capabilities, no_new_privs, a read-only root, runAsNonRoot (checked by the agent), and seccomp
-- the runtime's default filter unless the pod says otherwise, Unconfined only where Pod
Security allows it, and a Localhost profile from the node's profile directory that really
filters system calls."""

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


SECURITY_REPORT = (
    "grep -E '^(CapEff|NoNewPrivs):' /proc/self/status; id -u; id -g; id -G; "
    "touch /made 2>/dev/null && echo ROOTFS-RW || echo ROOTFS-RO"
)


def security_pod(
    name: str, node: str, pod_sc: dict[str, object], sc: dict[str, object]
) -> pod_pb2.Pod:
    container = {
        "name": "c",
        "image": BUSYBOX_IMAGE,
        "command": ["sh", "-c", SECURITY_REPORT],
        "securityContext": sc,
    }
    return make_pod(name, node, [container], restartPolicy="Never", securityContext=pod_sc)


def test_users_groups_capabilities_and_a_read_only_root_reach_the_container(
    cluster: object, client: Client, start_agent: StartAgent
) -> None:
    agent = start_agent()
    client.pods.create(
        security_pod(
            "hardened",
            agent.node,
            {"runAsUser": 1000, "runAsGroup": 3000, "fsGroup": 2000, "supplementalGroups": [4000]},
            {
                "allowPrivilegeEscalation": False,
                "readOnlyRootFilesystem": True,
                "capabilities": {"drop": ["ALL"]},
            },
        )
    )
    client.pods.create(security_pod("plain", agent.node, {}, {}))
    hardened = output(cluster, client, "hardened").splitlines()
    assert hardened[0] == "CapEff:\t0000000000000000"
    assert hardened[1] == "NoNewPrivs:\t1"
    assert hardened[2:4] == ["1000", "3000"]
    assert {"2000", "4000"} <= set(hardened[4].split())
    assert hardened[5] == "ROOTFS-RO"
    plain = output(cluster, client, "plain").splitlines()
    assert plain[0] != "CapEff:\t0000000000000000" and plain[1] == "NoNewPrivs:\t0"
    assert plain[2] == "0" and plain[5] == "ROOTFS-RW"


def test_run_as_non_root_refuses_a_root_image_and_runs_a_numeric_user(
    cluster: object, client: Client, start_agent: StartAgent
) -> None:
    agent = start_agent()
    client.pods.create(security_pod("as-root", agent.node, {"runAsNonRoot": True}, {}))
    client.pods.create(
        security_pod("as-user", agent.node, {"runAsNonRoot": True, "runAsUser": 1000}, {})
    )

    def refused(p: pod_pb2.Pod) -> bool:
        return any(
            s.state.waiting.reason == "CreateContainerConfigError"
            and "runAsNonRoot" in s.state.waiting.message
            for s in p.status.container_statuses
        )

    wait_pod(client, "as-root", refused, 30, "CreateContainerConfigError")
    assert output(cluster, client, "as-user").splitlines()[2] == "1000"


def test_share_process_namespace_puts_the_containers_in_one_pid_namespace(
    cluster: object, client: Client, start_agent: StartAgent
) -> None:
    agent = start_agent()
    # the sibling's process (comm "sleep") is visible only in a PID namespace shared by the
    # pod; nothing in the looking container is called sleep
    look = "cat /proc/[0-9]*/comm | grep -c '^sleep$'"
    for name, shared in (("pid-shared", True), ("pid-own", False)):
        containers = [
            {"name": "sibling", "image": BUSYBOX_IMAGE, "command": ["sleep", "4321"]},
            {"name": "c", "image": BUSYBOX_IMAGE, "command": ["sh", "-c", look]},
        ]
        client.pods.create(
            make_pod(
                name, agent.node, containers, restartPolicy="Never", shareProcessNamespace=shared
            )
        )

    def c_output(name: str) -> str:
        def done(p: pod_pb2.Pod) -> bool:
            return any(
                s.name == "c" and s.state.HasField("terminated")
                for s in p.status.container_statuses
            )

        wait_pod(client, name, done, 60, "container c finished")
        return ctl(cluster, "logs", name, "-c", "c")[1]  # type: ignore[arg-type]

    assert int(c_output("pid-shared")) >= 1
    assert int(c_output("pid-own")) == 0
