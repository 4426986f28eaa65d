"""Field ownership for server-side apply: which apply manager set which field.

``kubectl apply --server-side`` sends the whole configuration a manager wants; Kubernetes
records, per manager, the fields that configuration sets, and then (1) refuses an apply that
would change a field another manager set to a different value (409 Conflict, unless
``force=true``, which moves the field to the new manager), and (2) removes a field the
manager set before and no longer sets, if no other manager sets it.

hakube's ObjectMeta has no ``managedFields``, so the sets live in the annotation
``ANNOTATION`` (JSON: manager -> list of field paths) on the object itself: they are written
with the object in the same compare-and-swap, replicate with it, and go with it. Only apply
managers are tracked; a field changed by an update or patch is not owned by anyone (no
conflict is reported against ``kubectl edit`` or ``kubectl scale``).

A field path is a tuple of segments: a JSON key, or ``k:{"name":"web"}`` for the element of a
list that merges by a key (the strategic-merge keys of ``patch.MERGE_KEYS``), as Kubernetes
names them. Other lists, and empty objects, are single fields.
"""

from __future__ import annotations

import json
from typing import Any

from hakube.apiserver.rest import patch

ANNOTATION = "hakube.io/applied-fields"

Path = tuple[str, ...]
_IDENTITY = {("apiVersion",), ("kind",), ("metadata", "name"), ("metadata", "namespace")}
_MISSING = object()


def owners(doc: dict[str, Any]) -> dict[str, set[Path]]:
    """The recorded field sets of an object's apply managers (none when not recorded)."""
    raw = (doc.get("metadata") or {}).get("annotations", {}).get(ANNOTATION)
    try:
        data = json.loads(raw) if raw else {}
        return {str(m): {tuple(str(s) for s in p) for p in ps} for m, ps in data.items()}
    except (ValueError, TypeError, AttributeError):
        return {}  # a hand-edited, unreadable record: nothing is owned


def record(doc: dict[str, Any], sets: dict[str, set[Path]]) -> None:
    """Write ``sets`` into ``doc``'s annotation (sorted, so an unchanged apply is a no-op)."""
    annotations = doc.setdefault("metadata", {}).setdefault("annotations", {})
    data = {m: sorted(list(p) for p in ps) for m, ps in sorted(sets.items()) if ps}
    annotations[ANNOTATION] = json.dumps(data, separators=(",", ":"))


def fields(doc: Any, desc: Any, prefix: Path = ()) -> set[Path]:
    """The field paths a configuration sets (``desc``: its protobuf message)."""
    out: set[Path] = set()
    if not isinstance(doc, dict):
        return out
    for k, v in doc.items():
        path = (*prefix, k)
        if path in _IDENTITY or (path[:2] == ("metadata", "annotations") and ANNOTATION == k):
            continue
        child = patch.child_message(desc, k)
        key = patch.merge_key(desc, k)
        if isinstance(v, dict) and v:
            out |= fields(v, child, path)
        elif (
            isinstance(v, list)
            and key is not None
            and all(isinstance(e, dict) and key in e for e in v)
        ):
            for e in v:
                seg = _keyed(key, e[key])
                out.add((*path, seg))
                out |= fields(e, child, (*path, seg))
        else:
            out.add(path)
    return out


def _keyed(key: str, value: Any) -> str:
    return "k:" + json.dumps({key: value}, separators=(",", ":"))


def get(doc: Any, path: Path) -> Any:
    """The value at ``path`` (``_MISSING`` when absent)."""
    cur = doc
    for seg in path:
        if seg.startswith("k:") and isinstance(cur, list):
            ((key, value),) = json.loads(seg[2:]).items()
            cur = next((e for e in cur if isinstance(e, dict) and e.get(key) == value), _MISSING)
        elif isinstance(cur, dict) and seg in cur:
            cur = cur[seg]
        else:
            return _MISSING
        if cur is _MISSING:
            return _MISSING
    return cur


def remove(doc: Any, path: Path) -> None:
    """Delete the field (or keyed list element) at ``path``, then the objects it leaves empty."""
    parent = get(doc, path[:-1]) if len(path) > 1 else doc
    last = path[-1]
    if last.startswith("k:") and isinstance(parent, list):
        ((key, value),) = json.loads(last[2:]).items()
        parent[:] = [e for e in parent if not (isinstance(e, dict) and e.get(key) == value)]
    elif isinstance(parent, dict):
        parent.pop(last, None)
    else:
        return
    if len(path) > 1 and parent in ({}, []) and not path[-2].startswith("k:"):
        remove(doc, path[:-1])


def display(path: Path) -> str:
    """``.spec.template.spec.containers[name="web"].image``, as kubectl prints a conflict."""
    out = ""
    for seg in path:
        if seg.startswith("k:"):
            ((key, value),) = json.loads(seg[2:]).items()
            out += f"[{key}={json.dumps(value)}]"
        else:
            out += f".{seg}"
    return out


def conflicts(
    live: dict[str, Any],
    applied: dict[str, Any],
    mine: set[Path],
    sets: dict[str, set[Path]],
    manager: str,
) -> dict[str, list[Path]]:
    """Other managers' fields the applied configuration would change: manager -> paths."""
    out: dict[str, list[Path]] = {}
    for other, theirs in sets.items():
        if other == manager:
            continue
        clash = sorted(p for p in mine & theirs if get(live, p) != get(applied, p))
        if clash:
            out[other] = clash
    return out


def apply(
    live: dict[str, Any],
    applied: dict[str, Any],
    merged: dict[str, Any],
    desc: Any,
    manager: str,
    *,
    force: bool,
) -> dict[str, Any]:
    """``merged`` (the applied configuration merged into ``live``) with field ownership:
    conflicts refused (``ConflictError``) unless ``force``, fields the manager dropped
    removed, and the new sets recorded."""
    sets = owners(live)
    mine = fields(applied, desc)
    clash = conflicts(live, applied, mine, sets, manager)
    if clash and not force:
        raise ConflictError(clash)
    for other, paths in clash.items():
        sets[other] -= set(paths)
    others = set().union(*(ps for m, ps in sets.items() if m != manager))
    # Shortest first: a dropped list element goes whole, before its fields are looked for.
    for path in sorted(sets.get(manager, set()) - mine - others, key=len):
        if not any(p[: len(path)] == path for p in mine | others):
            remove(merged, path)
    sets[manager] = mine
    record(merged, sets)
    return merged


class ConflictError(Exception):
    """Fields other managers own, by manager."""

    def __init__(self, clash: dict[str, list[Path]]) -> None:
        n = sum(len(ps) for ps in clash.values())
        parts = [f'conflict with "{m}": {display(p)}' for m, ps in clash.items() for p in ps]
        super().__init__(
            f"Apply failed with {n} conflict{'s' if n > 1 else ''}: " + "; ".join(parts)
        )
