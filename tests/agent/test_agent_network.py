"""Pod networks through CNI: with --pod-cidr and --cni-mode bridge the agent configures a bridge
for containerd, and pods that do not ask for the host network get their own address from the
node's CIDR, their own hostname, and reach each other and the node over the bridge. (The
default, routed pod veths, is what tests/net runs on its nodes.)"""

from __future__ import annotations

import ipaddress
import random
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from hakube.client import Client
from hakube.testing.containerd import CNI_PLUGINS, Containerd
from hakube.testing.images import DEFAULT_APPLETS, build_image, busybox_layer
from tests.agent.conftest import (
    IN_CI,
    AgentProc,
    StartAgent,
    condition,
    ctl_endpoints,
    make_pod,
    wait_pod,
)

pytestmark = [pytest.mark.containerd, pytest.mark.timeout(120)]
WEB_IMAGE = "hakube.test/web:1"


@pytest.fixture
def own_containerd() -> Iterator[Containerd]:
    """A containerd of this test's own: a CNI config makes a runtime NetworkReady, which must
    not change how the shared one runs other tests' pods."""
    if not (CNI_PLUGINS / "bridge").exists():
        reason = f"CNI plugins missing in {CNI_PLUGINS} (scripts/install/cni.sh)"
        if IN_CI:
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)
    ctd = Containerd()
    try:
        ctd.start()
        ctd.load_test_images()
        ctd.import_image(
            build_image(
                WEB_IMAGE,
                rootfs_tar=busybox_layer(applets=(*DEFAULT_APPLETS, "httpd", "wget")),
                cmd=("sh",),
            )
        )
    except BaseException:
        ctd.stop()
        raise
    yield ctd
    ctd.stop()


def test_pods_get_their_own_addresses_on_a_bridge_from_the_node_pod_cidr(
    client: Client, start_agent: StartAgent, own_containerd: Containerd
) -> None:
    cidr = f"10.{random.randint(200, 250)}.{random.randint(0, 255)}.0/24"
    bridge = f"hk{uuid.uuid4().hex[:8]}"
    agent: AgentProc | None = None
    try:
        agent = start_agent(
            containerd=own_containerd,
            extra=[
                "--pod-cidr",
                cidr,
                "--cni-conf-dir",
                str(own_containerd.cni_conf_dir),
                "--cni-mode",
                "bridge",
                "--cni-bridge",
                bridge,
            ],
        )
        assert client.nodes.get(agent.node).spec.pod_cidr == cidr
        serve = "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 8080 -h /www"
        # Ready only once the agent, on the node, has fetched the page from the pod's address.
        client.pods.create(
            make_pod(
                "net-web",
                agent.node,
                [
                    {
                        "name": "c",
                        "image": WEB_IMAGE,
                        "command": ["sh", "-c", serve],
                        "readinessProbe": {
                            "httpGet": {"path": "/index.html", "port": 8080},
                            "periodSeconds": 1,
                        },
                    }
                ],
            )
        )
        client.pods.create(
            make_pod(
                "net-peer",
                agent.node,
                [{"name": "c", "image": WEB_IMAGE, "command": ["sleep", "3600"]}],
            )
        )
        client.pods.create(
            make_pod(
                "net-host",
                agent.node,
                [{"name": "c", "image": WEB_IMAGE, "command": ["sleep", "3600"]}],
                hostNetwork=True,
            )
        )
        web = wait_pod(client, "net-web", lambda p: condition(p, "Ready") == "True", 40, "Ready")
        peer = wait_pod(client, "net-peer", lambda p: p.status.phase == "Running", 30, "Running")
        hostnet = wait_pod(client, "net-host", lambda p: p.status.phase == "Running", 30, "Running")
        net = ipaddress.ip_network(cidr)
        assert ipaddress.ip_address(web.status.pod_ip) in net
        assert ipaddress.ip_address(peer.status.pod_ip) in net
        assert web.status.pod_ip != peer.status.pod_ip
        assert web.status.host_ip == "127.0.0.1" and hostnet.status.pod_ip == "127.0.0.1"
        assert ctl_endpoints(client, "exec", "net-web", "--", "hostname")[1] == "net-web\n"
        code, out, err = ctl_endpoints(
            client,
            "exec",
            "net-peer",
            "--",
            "wget",
            "-qO-",
            f"http://{web.status.pod_ip}:8080/index.html",
        )
        assert (code, out) == (0, "hello\n"), err
        ports = subprocess.run(
            ["ip", "-o", "link", "show", "master", bridge], capture_output=True, text=True
        ).stdout
        assert len(ports.splitlines()) == 2, ports  # the two pods' veths are on the bridge
    finally:
        if agent is not None:
            agent.kill()  # before containerd stops, so no sandbox is made while it does
        own_containerd.stop()  # sandboxes (and their network namespaces) go first
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, timeout=10)
