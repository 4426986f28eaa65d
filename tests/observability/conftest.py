"""Fixtures for the observability tests: Debian's prometheus and promtool (scripts/install/
prometheus.sh). Without them the tests skip, except under CI=true, where a missing prerequisite
fails the run."""

from __future__ import annotations

import os
import shutil

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RULES = os.path.join(REPO, "deploy", "prometheus", "hakube-rules.yml")
RULE_TESTS = os.path.join(REPO, "deploy", "prometheus", "hakube-rules.test.yml")
DASHBOARDS = os.path.join(REPO, "deploy", "grafana")


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        message = f"{tool} is not installed (scripts/install/prometheus.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path
