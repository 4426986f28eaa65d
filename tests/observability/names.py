"""The metric names deploy/prometheus's rules and deploy/grafana's dashboards read."""

from __future__ import annotations

import glob
import json
import os
import re
from typing import Any

import yaml

from tests.observability.conftest import DASHBOARDS, RULES

_NAME = re.compile(r"\b(up|(?:hakube|process|python)_[a-z0-9_]+)\b")


def rule_expressions() -> list[str]:
    with open(RULES) as f:
        doc = yaml.safe_load(f)
    return [r["expr"] for g in doc["groups"] for r in g["rules"]]


def dashboard_expressions() -> list[str]:
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("expr"), str):
                out.append(node["expr"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for path in sorted(glob.glob(os.path.join(DASHBOARDS, "*.json"))):
        with open(path) as f:
            walk(json.load(f))
    return out


def referenced_metric_names() -> set[str]:
    """Every metric name in an expression (recording rules' own ``a:b:c`` names excluded)."""
    names: set[str] = set()
    for expr in rule_expressions() + dashboard_expressions():
        for m in _NAME.finditer(expr):
            if ":" not in expr[max(0, m.start() - 1) : m.end() + 1]:
                names.add(m.group(1))
    return names
