"""deploy/prometheus and deploy/grafana as files: promtool accepts the rules and their unit
tests pass, every alert is tested firing and not firing and has a summary, a description and a
runbook that exists in docs/operations.md, and the dashboards are valid Grafana JSON."""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess

import pytest
import yaml

from tests.observability.conftest import DASHBOARDS, REPO, RULE_TESTS, RULES, need

pytestmark = pytest.mark.timeout(120)


def _alerts() -> list[dict[str, object]]:
    with open(RULES) as f:
        doc = yaml.safe_load(f)
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_promtool_check_rules_accepts_the_rules() -> None:
    out = subprocess.run(
        [need("promtool"), "check", "rules", RULES], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    out = subprocess.run(
        [need("promtool"), "test", "rules", os.path.basename(RULE_TESTS)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=os.path.dirname(RULE_TESTS),
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_promtool_fails_a_rule_test_that_expects_the_wrong_thing(tmp_path: object) -> None:
    """The unit tests can fail: HakubeNoLeader expected from a master that knows a leader."""
    bad = {
        "rule_files": [RULES],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {
                        "series": 'hakube_raft_has_leader{job="hakube-master",name="m1"}',
                        "values": "1x5",
                    }
                ],
                "alert_rule_test": [
                    {
                        "eval_time": "5m",
                        "alertname": "HakubeNoLeader",
                        "exp_alerts": [{"exp_labels": {"severity": "critical"}}],
                    }
                ],
            }
        ],
    }
    path = os.path.join(str(tmp_path), "bad.test.yml")
    with open(path, "w") as f:
        yaml.safe_dump(bad, f)
    out = subprocess.run(
        [need("promtool"), "test", "rules", path], capture_output=True, text=True, timeout=60
    )
    assert out.returncode != 0


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    with open(RULE_TESTS) as f:
        doc = yaml.safe_load(f)
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in doc["tests"]:
        # A series of the case that matches no expected alert shows "not firing" as well.
        series = len(case["input_series"])
        for t in case["alert_rule_test"]:
            if t["exp_alerts"]:
                firing.add(t["alertname"])
            if not t["exp_alerts"] or series > len(t["exp_alerts"]):
                quiet.add(t["alertname"])
    names = {str(a["alert"]) for a in _alerts()}
    assert names - firing == set(), "alerts never shown firing"
    assert names - quiet == set(), "alerts never shown quiet"


def _anchors(markdown: str) -> set[str]:
    """GitHub-style anchors of the headings in ``markdown``."""
    out = set()
    for line in markdown.splitlines():
        m = re.match(r"#+\s+(.*)", line)
        if m:
            title = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower())
            out.add(title.replace(" ", "-"))
    return out


def test_every_alert_has_summary_description_and_a_runbook_that_exists() -> None:
    with open(os.path.join(REPO, "docs", "operations.md")) as f:
        anchors = _anchors(f.read())
    for alert in _alerts():
        ann = alert["annotations"]
        assert isinstance(ann, dict)
        assert ann.get("summary") and ann.get("description"), alert["alert"]
        assert alert["labels"]["severity"] in ("warning", "critical")  # type: ignore[index]
        page, _, anchor = str(ann["runbook_url"]).partition("#")
        assert page == "docs/operations.md", alert["alert"]
        assert anchor in anchors, f"{alert['alert']}: no heading for #{anchor} in operations.md"


def test_dashboards_are_grafana_json_with_prometheus_panels() -> None:
    paths = sorted(glob.glob(os.path.join(DASHBOARDS, "*.json")))
    assert [os.path.basename(p) for p in paths] == [
        "hakube-control-plane.json",
        "hakube-nodes.json",
    ]
    uids = set()
    for path in paths:
        with open(path) as f:
            dash = json.load(f)
        assert dash["title"].startswith("hakube / ")
        uids.add(dash["uid"])
        panels = [p for p in dash["panels"] if p["type"] != "row"]
        assert len(panels) >= 10
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids)), f"{path}: panel ids repeat"
        for p in panels:
            assert p["targets"], f"{path}: panel {p['title']} has no query"
            for t in p["targets"]:
                assert t["expr"].strip()
    assert len(uids) == len(paths)
