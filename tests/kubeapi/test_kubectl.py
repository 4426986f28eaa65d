"""The real ``kubectl`` against a three-master hakube cluster through its Kubernetes REST API:
what users type every day, with the output and messages they know.

The tests share one cluster and run in file order; the last one kills a master."""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import subprocess
import time
import uuid
from typing import Any

import pytest
import yaml

from hakube.agent.agent import Agent
from hakube.apiserver import apiwarnings
from hakube.testing.cluster import LocalCluster
from hakube.testing.wait import wait_for
from tests.kubeapi.conftest import IMAGE, Kubectl, user_credentials

pytestmark = pytest.mark.timeout(120)


def _manifests(image: str, name: str = "web") -> str:
    return f"""
apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}-config
data:
  greeting: hello
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app: {name}}}
spec:
  replicas: 2
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: web
        image: {image}
        command: ["sh", "-c", "echo serving; sleep 3600"]
        ports:
        - containerPort: 80
        env:
        - name: MODE
          value: test
---
apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  selector: {{app: {name}}}
  ports:
  - port: 80
    targetPort: 80
"""


def _configmap(name: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{a: '1'}}\n"


def test_apply_creates_then_leaves_unchanged_then_configures(kubectl: Kubectl) -> None:
    first = kubectl.ok("apply", "-f", "-", stdin=_manifests(IMAGE))
    assert first.split("\n")[:3] == [
        "configmap/web-config created",
        "deployment.apps/web created",
        "service/web created",
    ]
    again = kubectl.ok("apply", "-f", "-", stdin=_manifests(IMAGE))
    assert again.count("unchanged") == 3, again
    changed = kubectl.ok("apply", "-f", "-", stdin=_manifests(IMAGE + "-v2"))
    assert "deployment.apps/web configured" in changed
    assert "configmap/web-config unchanged" in changed
    # The strategic merge patch kept what the change did not name (the env list).
    got = json.loads(kubectl.ok("get", "deploy", "web", "-o", "json"))
    c = got["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == IMAGE + "-v2" and c["env"] == [{"name": "MODE", "value": "test"}]
    kubectl.ok("apply", "-f", "-", stdin=_manifests(IMAGE))


def test_server_side_apply_creates_and_updates(kubectl: Kubectl) -> None:
    out = kubectl.ok("apply", "--server-side", "-f", "-", stdin=_manifests(IMAGE, "ssa"))
    assert out.count("serverside-applied") == 3, out
    out = kubectl.ok("apply", "--server-side", "-f", "-", stdin=_manifests(IMAGE + "-v2", "ssa"))
    assert "deployment.apps/ssa serverside-applied" in out
    path = "{.spec.template.spec.containers[0].image}"
    assert kubectl.ok("get", "deploy", "ssa", "-o", f"jsonpath={path}") == IMAGE + "-v2"
    assert kubectl.ok("delete", "deploy/ssa", "svc/ssa", "cm/ssa-config").count("deleted") == 3


RESIZE_WARNING = (
    "Warning: spec.template.spec.containers[0].resizePolicy: in-place resize is not "
    "supported on this cluster; the policy is stored and has no effect"
)


def _with_resize_policy(deployment: str) -> str:
    """The Deployment manifest with a resizePolicy on its first container."""
    policy = "resizePolicy: [{resourceName: memory, restartPolicy: RestartContainer}]"
    out = deployment.replace("image:", f"{policy}\n        image:", 1)
    assert out != deployment
    return out


def test_resize_policy_is_stored_with_a_warning_kubectl_prints(kubectl: Kubectl) -> None:
    """The server's ``Warning: 299`` header reaches the user as kubectl's ``Warning:`` line,
    for a client-side create and a server-side apply alike; nothing else warns."""
    doc = _manifests(IMAGE, "resized").split("---")[1]
    assert "kind: Deployment" in doc
    resized = _with_resize_policy(doc)
    warning = RESIZE_WARNING
    r = kubectl("apply", "-f", "-", stdin=resized)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "deployment.apps/resized created"
    assert r.stderr.splitlines() == [warning]
    path = "{.spec.template.spec.containers[0].resizePolicy[0].resourceName}"
    assert kubectl.ok("get", "deploy", "resized", "-o", f"jsonpath={path}") == "memory"
    r = kubectl(
        "apply", "--server-side", "-f", "-", stdin=resized.replace("resized", "ssa-resized")
    )
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [warning]
    r = kubectl("apply", "-f", "-", stdin=doc.replace("resized", "plain"))
    assert r.returncode == 0 and r.stderr == "", r.stderr
    # Two warnings travel in one header, comma-separated; kubectl prints each.
    policy = "resizePolicy: [{resourceName: cpu, restartPolicy: NotRequired}]"
    pod = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: resized-pod}\nspec:\n  containers:\n"
        f"  - {{name: a, image: {IMAGE}, {policy}}}\n"
        f"  - {{name: b, image: {IMAGE}, {policy}}}\n"
    )
    r = kubectl("create", "-f", "-", stdin=pod)
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [
        warning.replace("template.spec.containers[0]", f"containers[{i}]") for i in (0, 1)
    ]
    kubectl.ok("delete", "pod/resized-pod", "deploy/resized", "deploy/ssa-resized", "deploy/plain")


def test_a_refused_write_brings_its_warnings_kubectl_prints(kubectl: Kubectl) -> None:
    """As Kubernetes: the warnings found before a refusal travel with it (code 422 and the
    ``Warning`` header), kubectl prints them and the error naming the field, and exits 1;
    a request cannot make the server send more than ``MAX_WARNINGS`` of them."""
    doc = _with_resize_policy(_manifests(IMAGE, "refused").split("---")[1])
    doc = doc.replace("replicas: 2", "replicas: -1", 1)
    assert "replicas: -1" in doc
    r = kubectl("apply", "-f", "-", stdin=doc)
    assert r.returncode == 1
    warning, error = r.stderr.splitlines()
    assert warning == RESIZE_WARNING
    assert 'Deployment "refused" is invalid: spec.replicas: must be greater than or equal' in error
    assert kubectl("get", "deploy", "refused").returncode != 0  # nothing stored
    policy = "resizePolicy: [{resourceName: cpu, restartPolicy: NotRequired}]"
    containers = "".join(f"  - {{name: c{i}, image: {IMAGE}, {policy}}}\n" for i in range(50))
    pod = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: many-warnings}\n"
        f"spec:\n  restartPolicy: Sometimes\n  containers:\n{containers}"
    )
    r = kubectl("create", "-f", "-", stdin=pod)
    assert r.returncode == 1
    *warnings, error = r.stderr.splitlines()
    assert warnings == [
        f"Warning: spec.containers[{i}].resizePolicy: in-place resize is not supported on this "
        "cluster; the policy is stored and has no effect"
        for i in range(apiwarnings.MAX_WARNINGS)
    ]
    assert 'Pod "many-warnings" is invalid: spec.restartPolicy' in error, error


def test_server_side_apply_conflicts_force_and_removes_dropped_fields(kubectl: Kubectl) -> None:
    name = f"owned-{uuid.uuid4().hex[:6]}"

    def cm(labels: str, data: str) -> str:
        return (
            f"apiVersion: v1\nkind: ConfigMap\n"
            f"metadata: {{name: {name}, labels: {{{labels}}}}}\ndata: {{{data}}}\n"
        )

    def apply(manager: str, doc: str, *extra: str) -> subprocess.CompletedProcess[str]:
        return kubectl(
            "apply", "--server-side", f"--field-manager={manager}", *extra, "-f", "-", stdin=doc
        )

    assert apply("team-a", cm("team: a, tier: web", "x: '1', w: '2'")).returncode == 0
    r = apply("team-b", cm("", "x: '9'"))
    assert r.returncode != 0 and 'conflict with "team-a": .data.x' in r.stderr
    assert kubectl.ok("get", "cm", name, "-o", "jsonpath={.data.x}") == "1"  # unchanged
    assert apply("team-b", cm("", "x: '9'"), "--force-conflicts").returncode == 0
    # team-a drops the tier label and w; x is team-b's now, so team-a leaves it out too.
    assert apply("team-a", cm("team: a", "v: '3'")).returncode == 0
    got = json.loads(kubectl.ok("get", "cm", name, "-o", "json"))
    assert got["data"] == {"x": "9", "v": "3"} and got["metadata"]["labels"] == {"team": "a"}
    kubectl.ok("delete", "cm", name)


def test_get_prints_tables_documents_and_selections(kubectl: Kubectl) -> None:
    wide = kubectl.ok("get", "deploy", "web", "-o", "wide").split("\n")
    assert wide[0].split() == [
        "NAME",
        "READY",
        "UP-TO-DATE",
        "AVAILABLE",
        "AGE",
        "CONTAINERS",
        "IMAGES",
        "SELECTOR",
    ]
    assert wide[1].split()[0] == "web" and wide[1].split()[-1] == "app=web"
    doc = yaml.safe_load(kubectl.ok("get", "cm", "web-config", "-o", "yaml"))
    assert doc["kind"] == "ConfigMap" and doc["data"] == {"greeting": "hello"}
    assert int(doc["metadata"]["resourceVersion"]) > 0
    listed = json.loads(kubectl.ok("get", "svc", "-o", "json"))
    assert "web" in [i["metadata"]["name"] for i in listed["items"]]
    path = "{.spec.ports[0].port}"
    assert kubectl.ok("get", "svc", "web", "-o", f"jsonpath={path}") == "80"
    assert kubectl.ok("get", "deploy", "-l", "app=web", "-o", "name") == "deployment.apps/web\n"
    assert kubectl.ok("get", "deploy", "-l", "app=nothing").strip() == ""
    everywhere = kubectl.ok("get", "ns", "-A").split("\n")
    assert everywhere[0].split() == ["NAME", "STATUS", "AGE"]
    all_cms = kubectl.ok("get", "cm", "-A").split("\n")
    assert all_cms[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert any(line.split()[:2] == ["default", "web-config"] for line in all_cms[1:] if line)


def test_get_reads_a_table_in_one_request_and_json_lists_in_pages(kubectl: Kubectl) -> None:
    ns = f"pages-{uuid.uuid4().hex[:6]}"
    docs = [f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {ns}}}\n"] + [
        f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i}, namespace: {ns}}}\n"
        for i in range(5)
    ]
    kubectl.ok("apply", "-f", "-", stdin="---\n".join(docs))
    r = kubectl("get", "cm", "-n", ns, "--chunk-size=2", "-v=6")
    assert r.returncode == 0, r.stderr
    names = [line.split()[0] for line in r.stdout.splitlines()[1:]]
    assert sorted(n for n in names if n.startswith("cm-")) == [f"cm-{i}" for i in range(5)]
    # A Table is served whole (kubectl's own rate limit makes pages cost 200 ms each) ...
    assert r.stderr.count(f"/namespaces/{ns}/configmaps?") == 1
    # ... and a JSON list honours limit and continue.
    r = kubectl("get", "cm", "-n", ns, "--chunk-size=2", "-o", "name", "-v=6")
    assert r.returncode == 0, r.stderr
    listed = sorted(n for n in r.stdout.split() if n.startswith("configmap/cm-"))
    assert listed == [f"configmap/cm-{i}" for i in range(5)]
    assert r.stderr.count(f"/namespaces/{ns}/configmaps?") >= 3
    kubectl.ok("delete", "namespace", ns, "--wait=false")


def test_get_watch_prints_a_change(kubectl: Kubectl) -> None:
    name = f"watched-{uuid.uuid4().hex[:6]}"
    kubectl.ok("apply", "-f", "-", stdin=_configmap(name))
    watch = subprocess.Popen(
        ["kubectl", "--kubeconfig", kubectl.kubeconfig, "get", "cm", name, "-w"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert watch.stdout is not None
        header = watch.stdout.readline()
        assert header.split() == ["NAME", "DATA", "AGE"]
        assert watch.stdout.readline().split()[:2] == [name, "1"]
        kubectl.ok("patch", "cm", name, "--type=merge", "-p", '{"data":{"b":"2"}}')
        assert watch.stdout.readline().split()[:2] == [name, "2"]
    finally:
        watch.kill()
        watch.wait(10)


def test_scale_label_annotate_and_the_three_patch_types(kubectl: Kubectl) -> None:
    assert kubectl.ok("scale", "deploy", "web", "--replicas=3") == "deployment.apps/web scaled\n"
    assert kubectl.ok("get", "deploy", "web", "-o", "jsonpath={.spec.replicas}") == "3"
    assert "labeled" in kubectl.ok("label", "cm", "web-config", "tier=front")
    assert "annotated" in kubectl.ok("annotate", "cm", "web-config", "owner=team-a")
    kubectl.ok("patch", "cm", "web-config", "--type=merge", "-p", '{"data":{"m":"1"}}')
    kubectl.ok(
        "patch",
        "cm",
        "web-config",
        "--type=json",
        "-p",
        '[{"op":"add","path":"/data/j","value":"2"}]',
    )
    kubectl.ok(
        "patch",
        "deploy",
        "web",
        "-p",
        json.dumps(
            {"spec": {"template": {"spec": {"containers": [{"name": "web", "image": IMAGE}]}}}}
        ),
    )
    cm = json.loads(kubectl.ok("get", "cm", "web-config", "-o", "json"))
    assert cm["data"] == {"greeting": "hello", "m": "1", "j": "2"}
    assert cm["metadata"]["labels"] == {"tier": "front"}
    assert cm["metadata"]["annotations"]["owner"] == "team-a"
    kubectl.ok("scale", "deploy", "web", "--replicas=2")


def test_rollout_status_wait_history_undo_and_logs(
    kubectl: Kubectl, components: None, node: Agent
) -> None:
    assert "successfully rolled out" in kubectl.ok(
        "rollout", "status", "deploy/web", "--timeout=60s"
    )
    waited = kubectl.ok("wait", "--for=condition=Available", "deploy/web", "--timeout=60s")
    assert waited == "deployment.apps/web condition met\n"
    kubectl.ok("set", "image", "deploy/web", f"web={IMAGE}-v3")
    kubectl.ok("rollout", "status", "deploy/web", "--timeout=60s")
    history = kubectl.ok("rollout", "history", "deploy/web")
    assert "REVISION" in history and len(history.strip().split("\n")) >= 3
    assert "rolled back" in kubectl.ok("rollout", "undo", "deploy/web")
    wait_for(
        lambda: (
            kubectl.ok(
                "get", "deploy", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}"
            )
            == IMAGE
        ),
        30,
        "the undo to restore the image",
    )
    kubectl.ok("rollout", "status", "deploy/web", "--timeout=60s")
    pod = kubectl.ok("get", "pods", "-l", "app=web", "-o", "jsonpath={.items[0].metadata.name}")
    on_node = kubectl.ok(
        "get", "pods", "--field-selector", f"spec.nodeName={node.s.node_name}", "-o", "name"
    )
    assert f"pod/{pod}" in on_node.split()
    r = kubectl("get", "pods", "--field-selector", "spec.nothing=x")
    assert r.returncode == 1 and 'field label not supported for pods: "spec.nothing"' in r.stderr
    wait_for(lambda: "serving" in kubectl("logs", pod).stdout, 20, "the pod's log through kubectl")
    assert kubectl.ok("logs", "deploy/web") == "serving\n"
    assert kubectl.ok("exec", pod, "--", "sh", "-c", "echo hi") == "hi\n"
    r = kubectl("exec", pod, "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (r.returncode, r.stdout) == (3, "out\n") and r.stderr.startswith("err\n"), r
    r = kubectl("exec", "-i", pod, "--", "cat", stdin="x")
    assert r.returncode == 1 and "without stdin or a terminal" in r.stderr


def test_explain_and_describe(kubectl: Kubectl) -> None:
    explained = kubectl.ok("explain", "deployment.spec.replicas")
    assert "KIND:       Deployment" in explained and "replicas	<integer>" in explained.replace(
        " <", "\t<"
    )
    fields = kubectl.ok("explain", "pod.spec.containers")
    assert "image" in fields and "env" in fields
    described = kubectl.ok("describe", "deploy", "web")
    assert (
        "Name:                   web" in described
        and "Selector:               app=web" in described
    )
    assert "greeting" in kubectl.ok("describe", "cm", "web-config")


def test_auth_can_i_asks_the_servers_authorizer(
    kubectl: Kubectl, cluster: LocalCluster, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    assert kubectl.ok("auth", "can-i", "create", "deployments") == "yes\n"
    nobody = Kubectl(
        cluster.kubeconfig(
            str(tmp_path / "nobody"), credentials=user_credentials(cluster, "nobody")
        )
    )
    r = nobody("auth", "can-i", "list", "pods")
    assert r.returncode == 1 and r.stdout.startswith("no - "), r.stdout


def test_bad_input_gets_kubernetes_messages(
    kubectl: Kubectl, cluster: LocalCluster, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    unknown = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: strict}\nbogus: 1\n"
    r = kubectl("apply", "--validate=strict", "-f", "-", stdin=unknown)
    assert r.returncode == 1
    assert "Error from server (BadRequest)" in r.stderr and 'unknown field "bogus"' in r.stderr
    assert kubectl("get", "cm", "strict").returncode == 1  # nothing was written

    current = json.loads(kubectl.ok("get", "cm", "web-config", "-o", "json"))
    stale = dict(current, data={"x": "y"})
    stale["metadata"] = dict(current["metadata"], resourceVersion="1")
    r = kubectl("replace", "-f", "-", stdin=json.dumps(stale))
    assert r.returncode == 1
    assert "Error from server (Conflict)" in r.stderr
    assert "the object has been modified" in r.stderr

    r = kubectl("get", "deploy", "no-such")
    assert r.returncode == 1
    assert 'Error from server (NotFound): deployments.apps "no-such" not found' in r.stderr

    nobody = Kubectl(
        cluster.kubeconfig(
            str(tmp_path / "nobody"), credentials=user_credentials(cluster, "nobody")
        )
    )
    r = nobody("get", "pods")
    assert r.returncode == 1
    assert "Error from server (Forbidden)" in r.stderr and "nobody" in r.stderr
    r = nobody("delete", "cm", "web-config")
    assert "Error from server (Forbidden)" in r.stderr
    assert kubectl("get", "cm", "web-config").returncode == 0


def test_delete_with_cascade(kubectl: Kubectl, components: None) -> None:
    kubectl.ok("apply", "-f", "-", stdin=_manifests(IMAGE, "gone"))
    wait_for(
        lambda: kubectl.ok("get", "rs", "-l", "app=gone", "-o", "name").strip() != "",
        30,
        "the deployment's replica set",
    )
    out = kubectl.ok("delete", "deploy", "gone", "--cascade=foreground", "--timeout=60s")
    assert out == 'deployment.apps "gone" deleted\n'
    wait_for(
        lambda: kubectl.ok("get", "rs", "-l", "app=gone", "-o", "name").strip() == "",
        30,
        "the replica set to go with its deployment",
    )
    assert kubectl.ok("delete", "svc/gone", "cm/gone-config").count("deleted") == 2


def test_create_generators_send_protobuf_that_is_read(
    kubectl: Kubectl,
    cluster: LocalCluster,
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    """``kubectl create <generator>`` sends protobuf bodies; each lands as its JSON would."""
    sfx = uuid.uuid4().hex[:6]
    canary = f"pw-{uuid.uuid4().hex}"
    for args in (
        ["deployment", f"gen-{sfx}", f"--image={IMAGE}", "--replicas=2", "--port=80"],
        ["configmap", f"gen-{sfx}", "--from-literal=a=b", "--from-literal=c=d"],
        ["secret", "generic", f"gen-{sfx}", f"--from-literal=pw={canary}"],
        ["service", "clusterip", f"gen-{sfx}", "--tcp=80:8080"],
        ["namespace", f"gen-{sfx}"],
        ["job", f"gen-{sfx}", f"--image={IMAGE}", "--", "echo", "hi"],
        ["cronjob", f"gen-{sfx}", f"--image={IMAGE}", "--schedule=*/5 * * * *", "--", "true"],
        ["role", f"gen-{sfx}", "--verb=get", "--resource=pods"],
        ["rolebinding", f"gen-{sfx}", f"--role=gen-{sfx}", "--user=bob"],
        ["priorityclass", f"gen-{sfx}", "--value=7", "--description=generated"],
    ):
        assert "created" in kubectl.ok("create", *args)
    d = json.loads(kubectl.ok("get", "deploy", f"gen-{sfx}", "-o", "json"))
    c = d["spec"]["template"]["spec"]["containers"][0]
    assert d["spec"]["replicas"] == 2 and d["spec"]["selector"]["matchLabels"] == {
        "app": f"gen-{sfx}"
    }
    assert (c["image"], c["ports"][0]["containerPort"]) == (IMAGE, 80)
    cm = json.loads(kubectl.ok("get", "cm", f"gen-{sfx}", "-o", "json"))
    assert cm["data"] == {"a": "b", "c": "d"}
    path = "{.data.pw}"
    stored = kubectl.ok("get", "secret", f"gen-{sfx}", "-o", f"jsonpath={path}")
    assert base64.b64decode(stored).decode() == canary
    svc = json.loads(kubectl.ok("get", "svc", f"gen-{sfx}", "-o", "json"))["spec"]
    assert (svc["ports"][0]["port"], svc["ports"][0]["targetPort"]) == (80, 8080)
    job = json.loads(kubectl.ok("get", "job", f"gen-{sfx}", "-o", "json"))
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["echo", "hi"]
    cj = json.loads(kubectl.ok("get", "cronjob", f"gen-{sfx}", "-o", "json"))
    assert cj["spec"]["schedule"] == "*/5 * * * *"
    rb = json.loads(kubectl.ok("get", "rolebinding", f"gen-{sfx}", "-o", "json"))
    assert rb["subjects"][0]["name"] == "bob" and rb["roleRef"]["name"] == f"gen-{sfx}"
    pc = json.loads(kubectl.ok("get", "priorityclass", f"gen-{sfx}", "-o", "json"))
    assert (pc["value"], pc["description"]) == (7, "generated")
    r = kubectl("run", f"gen-{sfx}", f"--image={IMAGE}", "--env=A=b", "--", "sleep", "1")
    assert r.returncode == 0, r.stderr
    pod = json.loads(kubectl.ok("get", "pod", f"gen-{sfx}", "-o", "json"))["spec"]
    assert pod["containers"][0]["env"] == [{"name": "A", "value": "b"}]
    # A malformed protobuf body: 400 with a one-line message, nothing created.
    status, body = _post_raw(
        cluster, tmp_path, "/api/v1/namespaces/default/configmaps", b"k8s\x00\x0a\x05ab"
    )
    assert status == 400 and "protobuf body does not decode" in body["message"]
    assert "\n" not in body["message"]
    kubectl.ok("delete", "namespace", f"gen-{sfx}", "--wait=false")


def _post_raw(
    cluster: LocalCluster, tmp: Any, path: str, body: bytes
) -> tuple[int, dict[str, Any]]:
    """POST a protobuf body as the cluster admin; (status, decoded Status)."""
    creds = cluster.credentials
    ctx = ssl.create_default_context(cadata=creds.ca.decode())
    ctx.check_hostname = False
    cert, key = tmp / "admin.crt", tmp / "admin.key"
    cert.write_bytes(creds.cert)
    key.write_bytes(creds.key)
    ctx.load_cert_chain(str(cert), str(key))
    host, _, port = cluster.masters[0].k8s_api.rpartition(":")
    conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=30)
    try:
        conn.request("POST", path, body, {"Content-Type": "application/vnd.kubernetes.protobuf"})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_kubectl_keeps_working_on_a_surviving_master(
    kubectl: Kubectl,
    cluster: LocalCluster,
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    victim, survivor = cluster.masters[2], cluster.masters[0]
    assert kubectl.kubeconfig  # names masters[0]
    cluster.kill(victim)
    start = time.monotonic()
    wait_for(lambda: kubectl("get", "deploy", "web").returncode == 0, 20, "kubectl on the survivor")
    name = f"after-kill-{uuid.uuid4().hex[:6]}"
    assert "created" in kubectl.ok("create", "-f", "-", stdin=_configmap(name))
    assert time.monotonic() - start < 20
    assert survivor.alive
