"""hakubectl against a real cluster: the round trips people do every day."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import time

import pytest
import yaml

from hakube.testing.cluster import LocalCluster
from tests.cli.conftest import EXAMPLES, REPO, Ctl, ctl_command, ctl_env, pump

pytestmark = pytest.mark.timeout(90)

POD = """apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: {app}, tier: {tier}}}
spec:
  containers:
  - name: c
    image: busybox
"""


def test_apply_get_delete_round_trip_of_the_example(ctl: Ctl) -> None:
    r = ctl("apply", "-f", os.path.join(EXAMPLES, "hello.yaml"))
    assert r.rc == 0, r.err
    assert r.lines == [
        "namespace/demo created",
        "configmap/web-config created",
        "deployment.apps/web created",
        "service/web created",
    ]
    again = ctl("apply", "-f", os.path.join(EXAMPLES, "hello.yaml"))
    assert again.lines == [x.replace("created", "unchanged") for x in r.lines]
    deploy = ctl("get", "deploy", "-n", "demo")
    assert deploy.lines[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert deploy.lines[1].split()[:4] == ["web", "0/2", "0", "0"]
    svc = ctl("get", "svc/web", "-n", "demo", "-o", "json")
    assert json.loads(svc.out)["spec"]["ports"] == [
        {"port": 8080, "targetPort": 8080, "protocol": "TCP"}
    ]
    gone = ctl("delete", "-f", os.path.join(EXAMPLES, "hello.yaml"))
    assert gone.rc == 0, gone.err
    assert 'deployment.apps "web" deleted' in gone.lines
    missing = ctl("get", "deployment", "web", "-n", "demo")
    assert missing.rc == 1
    assert missing.err.strip() == 'Error from server (NotFound): deployments "web" not found'


def test_create_makes_each_object_once_and_reports_the_rest(ctl: Ctl) -> None:
    docs = POD.format(name="made", app="made", tier="a")
    first = ctl("create", "-f", "-", stdin=docs)
    assert (first.rc, first.lines) == (0, ["pod/made created"]), first.err
    both = docs + "---\n" + POD.format(name="made-2", app="made", tier="a")
    again = ctl("create", "-f", "-", "-o", "name", stdin=both)
    assert again.rc == 1 and again.lines == ["pod/made-2"]
    assert "AlreadyExists" in again.err and "pod/made" in again.err
    assert ctl("delete", "pod", "made", "made-2").rc == 0


def test_yaml_output_re_applies_as_unchanged(ctl: Ctl, tmp_path: object) -> None:
    assert ctl("apply", "-f", "-", stdin=POD.format(name="rt", app="rt", tier="a")).rc == 0
    one = ctl("get", "pod", "rt", "-o", "yaml")
    assert yaml.safe_load(one.out)["metadata"]["name"] == "rt"
    assert ctl("apply", "-f", "-", stdin=one.out).lines == ["pod/rt unchanged"]
    many = ctl("get", "pods", "-o", "yaml")
    doc = yaml.safe_load(many.out)
    assert doc["kind"] == "List" and any(i["metadata"]["name"] == "rt" for i in doc["items"])
    applied = ctl("apply", "-f", "-", stdin=many.out)
    assert applied.rc == 0 and "pod/rt unchanged" in applied.lines
    changed = ctl("apply", "-f", "-", stdin=POD.format(name="rt", app="rt", tier="b"))
    assert changed.lines == ["pod/rt configured"]


def test_selectors_namespaces_and_output_formats(ctl: Ctl) -> None:
    docs = "---\n".join(
        POD.format(name=f"sel-{i}", app="sel", tier=t)
        for i, t in enumerate(["front", "front", "back"])
    )
    assert ctl("apply", "-f", "-", stdin=docs).rc == 0
    assert (
        ctl(
            "apply",
            "-n",
            "kube-public",
            "-f",
            "-",
            stdin=POD.format(name="sel-x", app="sel", tier="front"),
        ).rc
        == 0
    )
    front = ctl("get", "po", "-l", "app=sel,tier=front", "-o", "name")
    assert front.lines == ["pod/sel-0", "pod/sel-1"]
    assert ctl("get", "pods", "-l", "app=sel,tier notin (front)", "-o", "name").lines == [
        "pod/sel-2"
    ]
    assert ctl("get", "pods", "--field-selector", "metadata.name=sel-1", "-o", "name").lines == [
        "pod/sel-1"
    ]
    everywhere = ctl("get", "pods", "-A", "-l", "app=sel")
    assert everywhere.lines[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert ["kube-public", "sel-x"] in [line.split()[:2] for line in everywhere.lines]
    wide = ctl("get", "pods", "-l", "app=sel", "-o", "wide", "--show-labels")
    assert wide.lines[0].split() == [
        "NAME",
        "READY",
        "STATUS",
        "RESTARTS",
        "AGE",
        "IP",
        "NODE",
        "NOMINATED",
        "NODE",
        "READINESS",
        "GATES",
        "LABELS",
    ]
    as_json = json.loads(ctl("get", "pods", "-l", "app=sel", "-o", "json").out)
    assert as_json["kind"] == "List" and len(as_json["items"]) == 3
    none = ctl("get", "pods", "-l", "app=nothing")
    assert none.rc == 0 and none.out == ""
    assert none.err.strip() == "No resources found in default namespace."
    both = ctl("get", "pods/sel-0", "po/sel-2", "-o", "name")
    assert both.lines == ["pod/sel-0", "pod/sel-2"]
    mixed = ctl("get", "po,ns", "-o", "name")
    assert "namespace/default" in mixed.lines and "pod/sel-0" in mixed.lines
    gone = ctl("delete", "pods", "-l", "tier=front")
    assert gone.lines == ['pod "sel-0" deleted', 'pod "sel-1" deleted']


def test_scale_label_and_describe(ctl: Ctl, tmp_path: object) -> None:
    # Its own copy of the example: the first test deleted namespace "demo", which stays
    # Terminating until a namespace controller exists.
    manifest = os.path.join(str(tmp_path), "hello.yaml")
    with open(os.path.join(EXAMPLES, "hello.yaml")) as src, open(manifest, "w") as dst:
        dst.write(src.read().replace("demo", "demo2"))
    assert ctl("apply", "-f", manifest).rc == 0
    assert ctl("scale", "deploy/web", "--replicas", "5", "-n", "demo2").lines == [
        "deployment.apps/web scaled"
    ]
    assert ctl("get", "deploy", "web", "-n", "demo2").lines[1].split()[1] == "0/5"
    refused = ctl(
        "scale", "deploy", "web", "--replicas", "1", "--current-replicas", "3", "-n", "demo2"
    )
    assert refused.rc == 1 and "expected 3 replicas, found 5" in refused.err
    assert ctl("label", "deploy", "web", "owner=ops", "-n", "demo2").lines == [
        "deployment.apps/web labeled"
    ]
    clash = ctl("label", "deploy/web", "owner=dev", "-n", "demo2")
    assert clash.rc == 1 and "--overwrite" in clash.err
    # Re-applying the manifest keeps what others changed: replicas is in the manifest and
    # comes back to 2, the hand-made label is not and stays.
    assert ctl("apply", "-f", manifest).rc == 0
    d = json.loads(ctl("get", "deploy", "web", "-n", "demo2", "-o", "json").out)
    assert d["spec"]["replicas"] == 2 and d["metadata"]["labels"]["owner"] == "ops"
    text = ctl("describe", "deployment", "web", "-n", "demo2").out
    assert "Name:               web" in text and "owner=ops" in text
    assert "Replicas:  2" in text and "Events:" in text


def test_get_watch_prints_each_change(ctl: Ctl, cluster: object, home: str) -> None:
    env = ctl_env(
        home,
        HAKUBE_SERVER=",".join(cluster.endpoints()),  # type: ignore[attr-defined]
        HAKUBE_CONFIG=cluster.admin_config,
    )  # type: ignore[attr-defined]
    proc = subprocess.Popen(
        ctl_command("get", "pods", "-l", "app=watched", "--watch", "--output-watch-events"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    lines: queue.Queue[str] = queue.Queue()
    pump(proc.stdout, lines)

    def next_line(timeout: float = 15) -> str:
        return lines.get(timeout=timeout)

    try:
        assert ctl("apply", "-f", "-", stdin=POD.format(name="wp", app="watched", tier="a")).rc == 0
        assert next_line().split() == ["EVENT", "NAME", "READY", "STATUS", "RESTARTS", "AGE"]
        assert next_line().split()[:3] == ["ADDED", "wp", "0/1"]
        assert ctl("label", "pod", "wp", "extra=1").rc == 0
        assert next_line().split()[:2] == ["MODIFIED", "wp"]
        assert ctl("delete", "pod", "wp").rc == 0
        assert next_line().split()[:2] == ["DELETED", "wp"]
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode in (0, 130)


def test_cluster_status_shows_every_master(ctl: Ctl) -> None:
    table = ctl("cluster", "status")
    assert table.rc == 0, table.err
    assert table.lines[0].split() == [
        "NAME",
        "ENDPOINT",
        "STATE",
        "LEADER",
        "TERM",
        "COMMIT",
        "APPLIED",
        "LAG",
        "READY",
    ]
    assert sorted(line.split()[0] for line in table.lines[1:4]) == ["m1", "m2", "m3"]
    assert "cluster: healthy" in table.out
    report = json.loads(ctl("cluster", "status", "-o", "json").out)
    assert report["healthy"] and report["leader"] in ("m1", "m2", "m3")
    states = sorted(m["state"] for m in report["masters"])
    assert states == ["follower", "follower", "leader"]


def test_cluster_status_counts_a_master_reached_by_two_addresses_once(
    ctl: Ctl, cluster: LocalCluster
) -> None:
    """As with a config naming the VIP beside the masters: the VIP answers as one of them."""
    alias = "localhost:" + cluster.masters[0].api.rsplit(":", 1)[1]
    servers = ",".join([alias, *cluster.endpoints()])
    report = json.loads(ctl("cluster", "status", "-o", "json", env={"HAKUBE_SERVER": servers}).out)
    assert sorted(m["name"] for m in report["masters"]) == ["m1", "m2", "m3"]
    assert (report["ready"], report["total"], report["quorum"]) == (3, 3, 2)
    assert next(m for m in report["masters"] if m["name"] == "m1")["alsoVia"]


def test_kinds_answer_to_short_names_plurals_and_groups(ctl: Ctl) -> None:
    for word in ("ns", "namespaces", "namespace", "Namespace", "namespace.v1"):
        assert "default" in ctl("get", word, "-o", "name").out.replace("namespace/", " ")
    names = ctl("api-resources").out
    assert "deployments" in names and "deploy" in names
    t0 = time.monotonic()
    assert (
        ctl("get", "deploy,rs,sts,ds,job,cj,hpa,svc,ep,cm,secrets,leases,ev,pvc,pc,no", "-A").rc
        == 0
    )
    assert time.monotonic() - t0 < 20
