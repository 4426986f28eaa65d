"""A pod's ServiceAccount token on a real containerd node: admission adds the projected
``kube-api-access-*`` volume, the agent requests a token bound to the pod (as the node), writes
it with the CA certificate and the namespace into a tmpfs, the container reads it, and the token
authenticates at the REST door as the pod's account."""

from __future__ import annotations

import http.client
import json
import ssl
import uuid
from pathlib import Path

import pytest

from hakube.agent import tmpfs
from hakube.api.v1 import core_pb2
from hakube.apiserver.serviceaccounts import MOUNT_PATH
from hakube.client import Client
from hakube.testing.cluster import LocalCluster
from hakube.testing.containerd import BUSYBOX_IMAGE
from hakube.testing.wait import wait_for
from tests.agent.conftest import StartAgent, ctl_endpoints, make_pod, wait_pod


def _list_pods_as(cluster: LocalCluster, token: str) -> tuple[int, dict[str, object]]:
    ctx = ssl.create_default_context(cadata=cluster.credentials.ca.decode())
    ctx.check_hostname = False
    host, _, port = cluster.masters[0].k8s_api.rpartition(":")
    conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)
    try:
        conn.request(
            "GET", "/api/v1/namespaces/default/pods", headers={"Authorization": f"Bearer {token}"}
        )
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


@pytest.mark.containerd
@pytest.mark.timeout(150)
def test_a_pod_reads_its_serviceaccount_token_and_calls_the_api_with_it(
    cluster: LocalCluster, client: Client, start_agent: StartAgent, tmp_path: Path
) -> None:
    account = f"sa-{uuid.uuid4().hex[:6]}"
    client.serviceaccounts.create(
        core_pb2.ServiceAccount(metadata={"name": account, "namespace": "default"})
    )
    made_cm = False
    if not [
        c
        for c in client.configmaps.list(namespace="default").items
        if c.metadata.name == "kube-root-ca.crt"
    ]:
        # This session's cluster runs no controller-manager: publish the CA as it would.
        client.configmaps.create(
            core_pb2.ConfigMap(
                metadata={"name": "kube-root-ca.crt", "namespace": "default"},
                data={"ca.crt": cluster.credentials.ca.decode()},
            )
        )
        made_cm = True
    try:
        agent = start_agent()
        pod = make_pod(
            "sa-reader",
            agent.node,
            [{"name": "c", "image": BUSYBOX_IMAGE, "command": ["sh", "-c", "exec sleep 3600"]}],
            serviceAccountName=account,
            terminationGracePeriodSeconds=1,
        )
        made = client.pods.create(pod)
        [vol] = [v.name for v in made.spec.volumes if v.name.startswith("kube-api-access-")]
        p = wait_pod(client, "sa-reader", lambda p: p.status.phase == "Running", 60, "Running")
        host_dir = tmp_path / agent.node / "pods" / p.metadata.uid / "volumes" / vol
        assert tmpfs.is_tmpfs(host_dir), "the token volume is not a tmpfs"
        code, token, err = ctl_endpoints(
            client, "exec", "sa-reader", "--", "cat", f"{MOUNT_PATH}/token"
        )
        assert code == 0, err
        assert token == (host_dir / "token").read_text()
        code, ns, _ = ctl_endpoints(
            client, "exec", "sa-reader", "--", "cat", f"{MOUNT_PATH}/namespace"
        )
        assert (code, ns) == (0, "default")
        code, ca, _ = ctl_endpoints(
            client, "exec", "sa-reader", "--", "cat", f"{MOUNT_PATH}/ca.crt"
        )
        assert (code, ca) == (0, cluster.credentials.ca.decode())
        status, doc = _list_pods_as(cluster, token)
        assert status == 403 and f'"system:serviceaccount:default:{account}"' in str(doc["message"])
        client.pods.delete("sa-reader", namespace="default", grace_period_seconds=0)
        wait_for(
            lambda: _list_pods_as(cluster, token)[0] == 401,
            20,
            "the token of the deleted pod refused",
        )
    finally:
        client.serviceaccounts.delete(account, namespace="default")
        if made_cm:
            client.configmaps.delete("kube-root-ca.crt", namespace="default")
