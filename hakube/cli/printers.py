"""How hakubectl prints objects: kubectl's tables, and yaml / json / name output.

Columns follow ``kubectl get`` for each kind (NAME READY STATUS RESTARTS AGE for pods, ...), so
people and scripts used to kubectl read them without surprise. A kind without its own columns
gets NAME AGE. ``-o json``/``-o yaml`` of several objects is a ``List`` with ``items``, which
``hakubectl apply -f`` accepts back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import yaml
from google.protobuf.message import Message

from hakube.api import convert
from hakube.api.columns import (
    COLUMNS,
    NONE,
    Column,
    age,
    columns,
    human_duration,
    labels_text,
    object_name,
    selector_text,
    type_name,
)
from hakube.api.kinds import Kind

__all__ = [
    "COLUMNS",
    "NONE",
    "Column",
    "Table",
    "age",
    "dump",
    "human_duration",
    "labels_text",
    "list_doc",
    "object_name",
    "selector_text",
    "to_doc",
    "type_name",
]


# -- tables ------------------------------------------------------------------------------------


class Table:
    """Rows of one kind, printed with kubectl's spacing (columns padded, three spaces apart)."""

    def __init__(
        self,
        kind: Kind,
        *,
        wide: bool = False,
        namespaces: bool = False,
        show_labels: bool = False,
        prefix_kind: bool = False,
        event_column: bool = False,
    ) -> None:
        self.kind = kind
        cols = [c for c in columns(kind) if wide or not c[2]]
        name_fn: Callable[[Any], str] = (
            (lambda o: object_name(kind, o)) if prefix_kind else (lambda o: o.metadata.name)
        )
        cols = [("NAME", name_fn, False), *cols]
        if namespaces and kind.namespaced:
            cols = [("NAMESPACE", lambda o: o.metadata.namespace, False), *cols]
        if show_labels:
            cols.append(("LABELS", lambda o: labels_text(o.metadata.labels), False))
        self.columns = cols
        self.event_column = event_column
        self.widths: list[int] = []

    def header(self) -> list[str]:
        return (["EVENT"] if self.event_column else []) + [c[0] for c in self.columns]

    def row(self, obj: Any, event: str = "") -> list[str]:
        return ([event] if self.event_column else []) + [c[1](obj) for c in self.columns]

    def render(self, objs: Sequence[Any], *, headers: bool = True, event: str = "") -> list[str]:
        """Lines for ``objs``; also fixes the column widths later ``format`` calls use."""
        rows = [self.header()] if headers else []
        rows += [self.row(o, event) for o in objs]
        self.widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))] if rows else []
        if self.event_column and self.widths:
            self.widths[0] = max(self.widths[0], len("MODIFIED"))  # rows printed later fit
        return [self.format(r) for r in rows]

    def format(self, row: list[str]) -> str:
        """A row padded to the widths of the last render (longer cells just push right)."""
        widths = self.widths or [len(c) for c in row]
        cells = [c.ljust(widths[i]) if i < len(row) - 1 else c for i, c in enumerate(row)]
        return "   ".join(cells).rstrip()


# -- documents ---------------------------------------------------------------------------------


def to_doc(obj: Message) -> dict[str, Any]:
    return convert.to_dict(obj)


def list_doc(objs: Sequence[Message], resource_version: str = "") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "List",
        "items": [to_doc(o) for o in objs],
        "metadata": {"resourceVersion": resource_version},
    }


def dump(doc: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(doc, indent=4) + "\n"
    return str(yaml.safe_dump(doc, sort_keys=False, default_flow_style=False, allow_unicode=True))
