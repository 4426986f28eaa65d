"""``hakubectl describe``: one object in prose, followed by the events that mention it.

kubectl has a hand-written describer per kind. This one is generic - the identity block
kubectl shows first, then spec and status with their field names spelled as words - so every
kind, including ones added later, is described with no extra code; the Events section (Event
objects whose involvedObject is this one) is what people run describe for.
"""

from __future__ import annotations

import re
from typing import Any

from hakube.api import convert
from hakube.api.kinds import Kind
from hakube.cli.printers import NONE, age
from hakube.client import Client, HakubeError
from hakube.client.apply import LAST_APPLIED

_WIDTH = 20


def words(key: str) -> str:
    """``imagePullPolicy`` -> ``Image Pull Policy``, ``podIP`` -> ``Pod IP``."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", key)
    return spaced[:1].upper() + spaced[1:]


def _line(label: str, value: Any, indent: int = 0) -> str:
    pad = " " * indent
    head = f"{pad}{label}:"
    return f"{head.ljust(_WIDTH)}{value}" if value != "" else head


def _block(label: str, mapping: dict[str, str], indent: int = 0) -> list[str]:
    if not mapping:
        return [_line(label, NONE, indent)]
    items = sorted(mapping.items())
    first = [_line(label, f"{items[0][0]}={items[0][1]}", indent)]
    return first + [" " * _WIDTH + f"{k}={v}" for k, v in items[1:]]


def _render(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    out: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v:
                out.append(f"{pad}{words(k)}:")
                out += _render(v, indent + 2)
            else:
                shown = NONE if v in ({}, [], "") else v
                out.append(f"{pad}{words(k)}:  {shown}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, dict):
                title = item.get("name") or item.get("type") or f"[{i}]"
                out.append(f"{pad}{title}:")
                out += _render({k: v for k, v in item.items() if k != "name"}, indent + 2)
            else:
                out.append(f"{pad}{item}")
    return out


def describe(client: Client, kind: Kind, obj: Any) -> str:
    meta = obj.metadata
    lines = [_line("Name", meta.name)]
    if kind.namespaced:
        lines.append(_line("Namespace", meta.namespace))
    lines += _block("Labels", dict(meta.labels))
    lines += _block("Annotations", {k: v for k, v in meta.annotations.items() if k != LAST_APPLIED})
    lines.append(_line("CreationTimestamp", meta.creation_timestamp))
    if meta.deletion_timestamp:
        lines.append(_line("DeletionTimestamp", meta.deletion_timestamp))
    if meta.finalizers:
        lines.append(_line("Finalizers", ", ".join(meta.finalizers)))
    for ref in meta.owner_references:
        if ref.controller:
            lines.append(_line("Controlled By", f"{ref.kind}/{ref.name}"))
    doc = convert.to_dict(obj)
    for section, value in doc.items():
        if section in ("apiVersion", "kind", "metadata"):
            continue
        if isinstance(value, (dict, list)) and value:
            lines.append(f"{words(section)}:")
            lines += _render(value, 2)
        else:
            lines.append(_line(words(section), value if value not in ({}, []) else NONE))
    lines += _events(client, kind, obj)
    return "\n".join(lines)


def _events(client: Client, kind: Kind, obj: Any) -> list[str]:
    if kind.name == "Event":
        return []
    selector = f"involvedObject.kind={kind.name},involvedObject.name={obj.metadata.name}"
    try:
        events = client.list(
            "Event", namespace=obj.metadata.namespace or "default", field_selector=selector
        ).items
    except HakubeError:
        return ["Events:             <unavailable>"]
    if not events:
        return ["Events:             <none>"]
    rows = [
        ("Type", "Reason", "Age", "From", "Message"),
        ("----", "------", "----", "----", "-------"),
    ]
    for e in sorted(events, key=lambda e: e.last_timestamp or e.metadata.creation_timestamp):
        rows.append(
            (
                e.type,
                e.reason,
                age(e.last_timestamp or e.metadata.creation_timestamp),
                e.source.component or e.reporting_component,
                e.message,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return ["Events:"] + [
        "  " + "  ".join(c.ljust(widths[i]) for i, c in enumerate(r[:4])) + "  " + r[4]
        for r in rows
    ]
