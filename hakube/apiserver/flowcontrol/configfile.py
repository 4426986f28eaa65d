"""Custom priority levels and flow schemas from a YAML file (``hakube master --flow-config``).

    levels:                        # added to the defaults; a default's name replaces it
    - {name: batch, shares: 10, queues: 16, handSize: 4, queueLength: 20}
    schemas:                       # added to the defaults; a default's name replaces it
    - name: ci-writes
      precedence: 700              # lower is matched first (defaults: 1 ... 10000)
      level: batch
      users: [ci-bot]              # every list is optional; an empty or missing one matches all
      groups: []
      verbs: [create, update, delete]
      resources: [configmaps, pods/status]
      distinguisher: user          # or user+namespace

Every master of a cluster should get the same file (each classifies its own requests). An
unknown key or a wrong type is refused with the entry and the field named; the merged result
is checked as the defaults are (``Settings.validate``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import yaml

from hakube.apiserver.flowcontrol.config import BY_USER, FlowSchema, PriorityLevel, Settings

_LEVEL_KEYS = {
    "name": ("name", str),
    "shares": ("shares", int),
    "exempt": ("exempt", bool),
    "queues": ("queues", int),
    "handSize": ("hand_size", int),
    "queueLength": ("queue_length", int),
}
_SCHEMA_KEYS = {
    "name": ("name", str),
    "precedence": ("precedence", int),
    "level": ("level", str),
    "users": ("users", list),
    "groups": ("groups", list),
    "verbs": ("verbs", list),
    "resources": ("resources", list),
    "distinguisher": ("distinguisher", str),
}


def _fields(entry: Any, keys: dict[str, tuple[str, type]], where: str) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: must be a mapping")
    out: dict[str, Any] = {}
    for key, value in entry.items():
        if key not in keys:
            raise ValueError(f"{where}: unknown field {key!r} (known: {', '.join(keys)})")
        field, typ = keys[key]
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            raise ValueError(f"{where}.{key}: must be {typ.__name__}")
        if isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                raise ValueError(f"{where}.{key}: must be a list of strings")
            value = frozenset(value)
        out[field] = value
    if not out.get("name"):
        raise ValueError(f"{where}: name is required")
    return out


def apply_file(settings: Settings, path: str) -> Settings:
    """``settings`` with the levels and schemas of the file at ``path`` merged in."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f) or {}
    except OSError as exc:
        raise ValueError(f"flow config {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ValueError(f"flow config {path}: not YAML: {exc}") from exc
    if not isinstance(doc, dict) or set(doc) - {"levels", "schemas"}:
        raise ValueError(f"flow config {path}: expected a mapping with levels and schemas only")
    levels = {lv.name: lv for lv in settings.levels}
    for i, entry in enumerate(doc.get("levels") or []):
        fields = _fields(entry, _LEVEL_KEYS, f"flow config {path}: levels[{i}]")
        levels[fields["name"]] = PriorityLevel(**fields)
    schemas = {s.name: s for s in settings.schemas}
    for i, entry in enumerate(doc.get("schemas") or []):
        where = f"flow config {path}: schemas[{i}]"
        fields = _fields(entry, _SCHEMA_KEYS, where)
        for required in ("precedence", "level"):
            if required not in fields:
                raise ValueError(f"{where}: {required} is required")
        fields.setdefault("distinguisher", BY_USER)
        schemas[fields["name"]] = FlowSchema(**fields)
    merged = replace(settings, levels=tuple(levels.values()), schemas=tuple(schemas.values()))
    try:
        merged.validate()
    except ValueError as exc:
        raise ValueError(f"flow config {path}: {exc}") from exc
    return merged
