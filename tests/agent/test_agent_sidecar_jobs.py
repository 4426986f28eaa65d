"""Two promises of native sidecars and hooks that need more than one pod's view, on real
containerd: a Job whose pod has a sidecar completes (the sidecar, still running when the main
container exits, is stopped and does not hold the Job open), and a ``preStop`` hook (here the
``sleep`` handler) runs within the pod's grace period -- the pod is gone once the grace period
is over, however long the hook would take; ``httpGet`` hooks reach their server (here one the
test runs on loopback, named by the hook's ``host``) with their path and headers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from hakube.api import convert
from hakube.api.v1 import workloads_pb2
from hakube.client import Client
from hakube.testing.cluster import LocalCluster
from hakube.testing.components import ComponentProcs
from hakube.testing.containerd import BUSYBOX_IMAGE
from hakube.testing.wait import wait_for
from tests.agent.conftest import StartAgent, get_pod, make_pod, wait_pod

pytestmark = [pytest.mark.containerd, pytest.mark.timeout(150)]

LOOP = "trap 'exit 0' TERM; while true; do sleep 0.2; done"


@pytest.fixture
def job_controller(cluster: LocalCluster, tmp_path: Path) -> Iterator[ComponentProcs]:
    with ComponentProcs("controller-manager", cluster.endpoints(), str(tmp_path)) as cms:
        cms.start("cm-sidecar-jobs", "--controllers", "job")
        yield cms


def test_a_job_whose_pod_has_a_sidecar_completes(
    client: Client, start_agent: StartAgent, job_controller: ComponentProcs
) -> None:
    agent = start_agent()
    job: workloads_pb2.Job = convert.from_dict(  # type: ignore[assignment]
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "with-sidecar", "namespace": "default"},
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "spec": {
                        "nodeName": agent.node,
                        "restartPolicy": "Never",
                        "initContainers": [
                            {
                                "name": "proxy",
                                "image": BUSYBOX_IMAGE,
                                "restartPolicy": "Always",
                                "command": ["sh", "-c", LOOP],
                            }
                        ],
                        "containers": [
                            {
                                "name": "work",
                                "image": BUSYBOX_IMAGE,
                                "command": ["sh", "-c", "sleep 1; echo done"],
                            }
                        ],
                    }
                },
            },
        }
    )
    client.create(job)

    def complete() -> bool:
        j = client.get(workloads_pb2.Job, "with-sidecar", namespace="default")
        return any(c.type == "Complete" and c.status == "True" for c in j.status.conditions)

    wait_for(complete, 90, "the Job Complete")
    j = client.get(workloads_pb2.Job, "with-sidecar", namespace="default")
    assert (j.status.succeeded, j.status.failed) == (1, 0)
    pods = client.pods.list(namespace="default", label_selector="job-name=with-sidecar").items
    assert [p.status.phase for p in pods] == ["Succeeded"]
    client.delete(workloads_pb2.Job, "with-sidecar", namespace="default")
    for p in pods:
        client.pods.delete(p.metadata.name, namespace="default")


def test_a_pre_stop_sleep_is_cut_at_the_grace_period(
    client: Client, start_agent: StartAgent
) -> None:
    agent = start_agent()
    app = {
        "name": "app",
        "image": BUSYBOX_IMAGE,
        "command": ["sh", "-c", LOOP],  # exits at once on SIGTERM: only the hook holds it
        "lifecycle": {"preStop": {"sleep": {"seconds": 120}}},
    }
    grace = 8  # well above the second or two a container that exits on SIGTERM takes
    client.pods.create(
        make_pod("sleepy-stop", agent.node, [app], terminationGracePeriodSeconds=grace)
    )
    wait_pod(client, "sleepy-stop", lambda p: p.status.phase == "Running", 40, "Running")
    t0 = time.monotonic()
    client.pods.delete("sleepy-stop", namespace="default")
    wait_for(lambda: get_pod(client, "sleepy-stop") is None, 60, "pod removed")
    took = time.monotonic() - t0
    assert took >= grace - 0.5, f"removed after {took:.1f}s: the preStop sleep did not run"
    assert took < 60, f"removed after {took:.1f}s: the hook outlived the grace period"


class _Recorder(BaseHTTPRequestHandler):
    seen: list[tuple[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802 - the http.server protocol
        self.seen.append((self.path, self.headers.get("X-Hook", "")))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook_server() -> Iterator[tuple[int, list[tuple[str, str]]]]:
    """An HTTP server on loopback recording (path, X-Hook header) of each request."""
    handler = type("Recorder", (_Recorder,), {"seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler.seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_http_get_hooks_reach_their_server_with_path_and_headers(
    client: Client, start_agent: StartAgent, hook_server: tuple[int, list[tuple[str, str]]]
) -> None:
    port, seen = hook_server
    agent = start_agent()

    def hook(path: str, tag: str) -> dict[str, object]:
        get = {"host": "127.0.0.1", "port": port, "path": path}
        return {"httpGet": {**get, "httpHeaders": [{"name": "X-Hook", "value": tag}]}}

    app = {
        "name": "app",
        "image": BUSYBOX_IMAGE,
        "command": ["sh", "-c", LOOP],
        "lifecycle": {"postStart": hook("/started", "post"), "preStop": hook("/stopping", "pre")},
    }
    client.pods.create(make_pod("http-hooks", agent.node, [app]))
    wait_pod(client, "http-hooks", lambda p: p.status.phase == "Running", 40, "Running")
    assert seen == [("/started", "post")]
    client.pods.delete("http-hooks", namespace="default")
    wait_for(lambda: get_pod(client, "http-hooks") is None, 40, "pod removed")
    assert seen == [("/started", "post"), ("/stopping", "pre")]
