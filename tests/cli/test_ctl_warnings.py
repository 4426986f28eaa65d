"""Warnings from the API server reach the user: hakubectl prints ``Warning: <text>`` on stderr
for an accepted write with a field that has no effect here (``resizePolicy``), and succeeds."""

from __future__ import annotations

import json

import pytest
import yaml

from hakube.api import convert
from hakube.api.podresources import RESIZE_WARNING
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
