"""Warnings from the API server reach the user: hakubectl prints ``Warning: <text>`` on stderr
for an accepted write with a field that has no effect here (``resizePolicy``), and succeeds; a
refused write brings its warnings with its error; a Batch brings each item's warnings in its
result and the client's BatchWriter hands them to the same handler as its unary calls."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest
import yaml

from hakube.api import convert, kinds
from hakube.api.podresources import RESIZE_WARNING
from hakube.api.v1 import api_pb2
from hakube.apiserver import apiwarnings
from hakube.client import errors
from hakube.client.batch import BatchWriter
from hakube.testing.cluster import LocalCluster
from tests.cli.conftest import Ctl

pytestmark = pytest.mark.timeout(90)

DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      containers:
      - name: c
        image: busybox{extra}
"""
RESIZE = """
        resizePolicy:
        - {resourceName: cpu, restartPolicy: NotRequired}"""
EXPECTED = f"Warning: spec.template.spec.containers[0].resizePolicy: {RESIZE_WARNING}"
TEXT = EXPECTED.removeprefix("Warning: ")
INVALID = "spec.replicas: must be greater than or equal to 0"


def _refused_manifest(name: str) -> str:
    """A Deployment with a resizePolicy (a warning) and replicas -1 (refused)."""
    doc = DEPLOYMENT.format(name=name, extra=RESIZE)
    return doc.replace("spec:\n", "spec:\n  replicas: -1\n", 1)


def _deployment(name: str, extra: str = "", replicas: int = 1) -> Any:
    doc = yaml.safe_load(DEPLOYMENT.format(name=name, extra=extra))
    doc["spec"]["replicas"] = replicas
    return convert.from_dict(doc)


def test_apply_with_resize_policy_warns_on_stderr_and_stores_it(ctl: Ctl) -> None:
    doc = DEPLOYMENT.format(name="warned", extra=RESIZE)
    r = ctl("apply", "-f", "-", stdin=doc)
    assert r.rc == 0, r.err
    assert r.lines == ["deployment.apps/warned created"]
    assert r.err.splitlines() == [EXPECTED]
    got = json.loads(ctl("get", "deploy", "warned", "-o", "json").out)
    container = got["spec"]["template"]["spec"]["containers"][0]
    assert container["resizePolicy"] == [{"resourceName": "cpu", "restartPolicy": "NotRequired"}]
    # An apply that changes something updates (after a dry-run probe): warned once.
    again = ctl("apply", "-f", "-", stdin=doc.replace("busybox", "busybox:2"))
    assert again.rc == 0, again.err
    assert again.lines == ["deployment.apps/warned configured"]
    assert again.err.splitlines() == [EXPECTED]


def test_apply_without_resize_policy_prints_no_warning(ctl: Ctl) -> None:
    r = ctl("apply", "-f", "-", stdin=DEPLOYMENT.format(name="quiet", extra=""))
    assert r.rc == 0, r.err
    assert r.err == ""


def test_python_client_passes_warnings_to_its_handler(cluster: LocalCluster) -> None:
    got: list[str] = []
    doc = DEPLOYMENT.format(name="pywarned", extra=RESIZE)
    with cluster.client(on_warning=got.append) as c:
        c.create(convert.from_dict(yaml.safe_load(doc)))
        assert got == [EXPECTED.removeprefix("Warning: ")]
        got.clear()
        c.create(convert.from_dict(yaml.safe_load(DEPLOYMENT.format(name="pyquiet", extra=""))))
        assert got == []


def test_a_refused_apply_prints_the_warning_and_the_error_naming_the_field(ctl: Ctl) -> None:
    doc = _refused_manifest("refused")
    r = ctl("apply", "-f", "-", stdin=doc)
    assert r.rc != 0
    err = r.err.splitlines()
    assert err[0] == EXPECTED and len(err) == 2, r.err
    assert err[1].endswith(f'Deployment "refused" is invalid: {INVALID}'), r.err
    assert ctl("get", "deploy", "refused").rc != 0  # nothing stored


def test_python_client_gets_the_warning_of_a_refused_write_and_its_error(
    cluster: LocalCluster,
) -> None:
    got: list[str] = []
    with cluster.client(on_warning=got.append) as c:
        with pytest.raises(errors.Invalid, match=INVALID):
            c.create(_deployment("pyrefused", RESIZE, replicas=-1))
        assert got == [TEXT]
        got.clear()
        with pytest.raises(errors.Invalid, match=INVALID):
            c.create(_deployment("pyrefused", replicas=-1))
        assert got == []


def test_batch_results_carry_the_warnings_of_their_own_item(cluster: LocalCluster) -> None:
    """Raw Batch: the item with a resizePolicy warns, the one next to it does not, and a
    refused item carries its warning next to its error."""
    items = [
        _deployment("batch-warned", RESIZE),
        _deployment("batch-quiet"),
        _deployment("batch-refused", RESIZE, replicas=-1),
    ]
    for d in items:
        d.metadata.namespace = "default"
    req = api_pb2.BatchRequest(
        items=[api_pb2.BatchItem(create=api_pb2.CreateRequest(object=kinds.wrap(d))) for d in items]
    )
    with cluster.client() as c:
        resp = c.transport.call(
            lambda stubs, timeout: stubs.objects.Batch(req, timeout=timeout), what="batch"
        )
    warned, quiet, refused = resp.results
    assert (warned.code, list(warned.warnings)) == (0, [TEXT])
    assert (quiet.code, list(quiet.warnings)) == (0, [])
    assert refused.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert INVALID in refused.message and list(refused.warnings) == [TEXT]


def test_batch_writer_hands_item_warnings_to_the_client_handler_once(
    cluster: LocalCluster,
) -> None:
    got: list[str] = []
    with cluster.client(on_warning=got.append) as c, BatchWriter(c.transport) as w:
        with w.together():
            created = [w.create(_deployment(f"bw-warned-{i}", RESIZE)) for i in range(3)]
            quiet = w.create(_deployment("bw-quiet"))
            refused = w.create(_deployment("bw-refused", RESIZE, replicas=-1))
        for f in [*created, quiet]:
            f.result(30)
        with pytest.raises(errors.Invalid, match=INVALID):
            refused.result(30)
        assert w.calls == 1
        assert got == [TEXT]  # five items, four warned the same text: delivered once
        got.clear()
        w.create(_deployment("bw-quiet-2")).result(30)
        assert got == []


def test_a_request_sends_at_most_the_capped_warnings_over_grpc(cluster: LocalCluster) -> None:
    """50 containers with a resizePolicy are 50 distinct warnings found; the unary call's
    trailing metadata and a Batch item's result both carry the first ``MAX_WARNINGS``."""
    policy = [{"resourceName": "cpu", "restartPolicy": "NotRequired"}]
    containers = [{"name": f"c{i}", "image": "busybox", "resizePolicy": policy} for i in range(50)]
    pod = convert.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "many-warnings", "namespace": "default"},
            "spec": {"restartPolicy": "Sometimes", "containers": containers},
        }
    )
    want = [
        f"spec.containers[{i}].resizePolicy: {RESIZE_WARNING}"
        for i in range(apiwarnings.MAX_WARNINGS)
    ]
    got: list[str] = []
    with cluster.client(on_warning=got.append) as c:
        with pytest.raises(errors.Invalid, match="spec.restartPolicy"):
            c.create(pod)
        assert got == want
        req = api_pb2.BatchRequest(
            items=[api_pb2.BatchItem(create=api_pb2.CreateRequest(object=kinds.wrap(pod)))]
        )
        resp = c.transport.call(
            lambda stubs, timeout: stubs.objects.Batch(req, timeout=timeout), what="batch"
        )
    assert list(resp.results[0].warnings) == want


def test_a_multi_document_apply_prints_each_warning_once_next_to_the_refusal(ctl: Ctl) -> None:
    """hakubectl writes a file's documents one by one (unary calls, not Batch): the refused
    one's warning and error are printed, the same warning from the next one is not repeated,
    the other documents are still applied, and the exit status says something failed."""
    refused = _refused_manifest("multi-refused")
    warned = DEPLOYMENT.format(name="multi-warned", extra=RESIZE)
    quiet = DEPLOYMENT.format(name="multi-quiet", extra="")
    r = ctl("apply", "-f", "-", stdin="---\n".join([refused, warned, quiet]))
    assert r.rc != 0
    assert r.lines == [
        "deployment.apps/multi-warned created",
        "deployment.apps/multi-quiet created",
    ]
    err = r.err.splitlines()
    assert err[0] == EXPECTED and len(err) == 2, r.err
    assert err[1].endswith(f'Deployment "multi-refused" is invalid: {INVALID}'), r.err
