"""Pods for networking tests: a namespace that allows hostPort, a busybox web server that names
its pod and echoes the client's address, and waiting for a pod's address."""

from __future__ import annotations

from typing import Any

from hakube.api import convert
from hakube.api.v1 import pod_pb2
from hakube.client import Client
from hakube.testing.netnodes import NET_IMAGE, NetCluster
from hakube.testing.wait import wait_for

NS = "podnet"
SERVE = (
    "mkdir -p /www/cgi-bin && hostname > /www/index.html"
    " && printf '#!/bin/sh\\necho Content-Type: text/plain\\necho\\necho $REMOTE_ADDR\\n'"
    " > /www/cgi-bin/remote && chmod 755 /www/cgi-bin/remote"
    " && exec httpd -f -p 8080 -h /www"
)
"""A web server on port 8080 whose /index.html names the pod and whose /cgi-bin/remote answers
the client's address as the server saw it."""


def pod(
    name: str, node: str, command: str, *, namespace: str = NS, **container: Any
) -> pod_pb2.Pod:
    """A pod of one NET_IMAGE container running ``sh -c command``, bound to ``node``."""
    out: pod_pb2.Pod = convert.from_dict(  # type: ignore[assignment]
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "nodeName": node,
                "terminationGracePeriodSeconds": 1,
                "containers": [
                    {"name": "c", "image": NET_IMAGE, "command": ["sh", "-c", command], **container}
                ],
            },
        }
    )
    return out


def running(client: Client, name: str, timeout: float = 60, namespace: str = NS) -> pod_pb2.Pod:
    """Wait until the pod runs and has an address; return it."""

    def ok() -> bool:
        p = client.pods.get(name, namespace=namespace)
        return p.status.phase == "Running" and bool(p.status.pod_ip)

    wait_for(ok, timeout, f"pod {namespace}/{name} Running with an address", interval=0.2)
    return client.pods.get(name, namespace=namespace)


def pod_cidr(c: NetCluster, node: str) -> str:
    return c.client.nodes.get(node).spec.pod_cidr
