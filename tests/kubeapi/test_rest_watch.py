"""Watch semantics through the REST door with a short history: a compacted resourceVersion is
an ERROR event carrying a 410 Expired Status (clients relist), bookmarks carry the revision
reached, and ``timeoutSeconds`` ends a stream cleanly."""

from __future__ import annotations

import http.client
import json
import os
import ssl
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import pytest

from hakube.testing.cluster import LocalCluster

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(
        str(tmp_path_factory.mktemp("short")), 3, extra_args=["--history-size", "20"]
    ) as c:
        yield c


def _conn(cluster: LocalCluster) -> http.client.HTTPSConnection:
    c = cluster.credentials
    ctx = ssl.create_default_context(cadata=c.ca.decode())
    ctx.check_hostname = False
    with tempfile.TemporaryDirectory() as d:
        cert, key = os.path.join(d, "c"), os.path.join(d, "k")
        for path, data in ((cert, c.cert), (key, c.key)):
            with open(path, "wb") as f:
                f.write(data)
        ctx.load_cert_chain(cert, key)
    host, _, port = cluster.masters[0].k8s_api.rpartition(":")
    return http.client.HTTPSConnection(host, int(port), context=ctx, timeout=30)


def _request(cluster: LocalCluster, method: str, path: str, body: Any = None) -> Any:
    conn = _conn(cluster)
    try:
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        return json.loads(resp.read())
    finally:
        conn.close()


def _events(cluster: LocalCluster, path: str) -> list[dict[str, Any]]:
    """All events of a watch stream that ends by itself (timeoutSeconds or an error)."""
    conn = _conn(cluster)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("Transfer-Encoding") == "chunked"
        return [json.loads(line) for line in resp.read().splitlines() if line]
    finally:
        conn.close()


def test_a_compacted_resource_version_gets_410_expired(cluster: LocalCluster) -> None:
    base = "/api/v1/namespaces/default/configmaps"
    start = _request(cluster, "GET", base)["metadata"]["resourceVersion"]
    for i in range(30):
        _request(cluster, "POST", base, {"metadata": {"name": f"c-{i}"}})
    events = _events(cluster, f"{base}?watch=1&resourceVersion={start}&timeoutSeconds=5")
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    st = events[0]["object"]
    assert (st["kind"], st["code"], st["reason"]) == ("Status", 410, "Expired")
    # A recent revision still works: the events after it, then the stream ends at the timeout.
    recent = _request(cluster, "GET", f"{base}/c-28")["metadata"]["resourceVersion"]
    began = time.monotonic()
    events = _events(cluster, f"{base}?watch=1&resourceVersion={recent}&timeoutSeconds=2")
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "c-29")]
    assert 1.5 < time.monotonic() - began < 10


def test_bookmarks_carry_the_revision_reached(cluster: LocalCluster) -> None:
    base = "/api/v1/namespaces/default/configmaps"
    rv = _request(cluster, "GET", base)["metadata"]["resourceVersion"]
    events = _events(
        cluster, f"{base}?watch=1&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=12"
    )
    marks = [e for e in events if e["type"] == "BOOKMARK"]
    assert marks, events
    assert marks[0]["object"]["kind"] == "ConfigMap"
    assert int(marks[0]["object"]["metadata"]["resourceVersion"]) >= int(rv)
