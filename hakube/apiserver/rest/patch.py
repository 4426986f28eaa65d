"""The three patch formats of the Kubernetes API, applied to an object's JSON form.

* JSON merge patch (RFC 7386, ``application/merge-patch+json``): objects merge, ``null``
  deletes, lists are replaced whole.
* JSON patch (RFC 6902, ``application/json-patch+json``): add, remove, replace, move, copy,
  test at JSON pointers.
* Strategic merge patch (``application/strategic-merge-patch+json``, what ``kubectl apply``
  and ``kubectl patch`` send by default): a merge patch in which some lists merge element by
  element by a key (containers by ``name``, container ports by ``containerPort``, ...) instead
  of being replaced, with the directives ``$patch`` (replace/delete/merge),
  ``$setElementOrder/<list>``, ``$deleteFromPrimitiveList/<list>`` and ``$retainKeys``.

Which lists merge, and by which key, is Kubernetes' ``patchMergeKey`` of each field
(``MERGE_KEYS``, looked up by the protobuf message a list belongs to, so ``ports`` of a
Container and of a ServiceSpec merge by different keys). The OpenAPI document advertises the
same table (``x-kubernetes-patch-merge-key``), so clients compute the patches we apply.

A patch that does not apply is ``PatchError`` (the handler answers 422, or 409 for a failed
``test``); the result is then converted and validated like any written object.
"""

from __future__ import annotations

import copy
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

MERGE_KEYS: dict[tuple[str, str], str] = {
    ("PodSpec", "containers"): "name",
    ("PodSpec", "initContainers"): "name",
    ("PodSpec", "ephemeralContainers"): "name",
    ("PodSpec", "volumes"): "name",
    ("PodSpec", "imagePullSecrets"): "name",
    ("PodSpec", "hostAliases"): "ip",
    ("PodSpec", "topologySpreadConstraints"): "topologyKey",
    ("Container", "ports"): "containerPort",
    ("Container", "env"): "name",
    ("Container", "volumeMounts"): "mountPath",
    ("ServiceSpec", "ports"): "port",
    ("ObjectMeta", "ownerReferences"): "uid",
    ("NodeSpec", "taints"): "key",
    ("NodeStatus", "addresses"): "type",
    ("*", "conditions"): "type",
}
"""(protobuf message, JSON list field) -> the key its elements merge by (Kubernetes'
``patchMergeKey``); ``*`` matches any message."""

PRIMITIVE_MERGE: set[tuple[str, str]] = {("ObjectMeta", "finalizers")}
"""Lists of scalars that strategic merge unites instead of replacing."""


class PatchError(ValueError):
    """A patch that cannot be applied; ``test_failed`` for a JSON patch ``test`` op."""

    def __init__(self, message: str, *, test_failed: bool = False) -> None:
        super().__init__(message)
        self.test_failed = test_failed


def merge_key(desc: Any, field: str) -> str | None:
    if desc is None:
        return None
    return MERGE_KEYS.get((desc.name, field)) or MERGE_KEYS.get(("*", field))


def _field(desc: Any, key: str) -> FieldDescriptor | None:
    if desc is None:
        return None
    for fd in desc.fields:
        if fd.json_name == key or fd.name == key:
            return fd
    return None


def child_message(desc: Any, key: str) -> Any:
    """The message of field ``key`` of ``desc`` (of a map's values), None for a scalar."""
    fd = _field(desc, key)
    if fd is None or fd.type != FieldDescriptor.TYPE_MESSAGE:
        return None
    sub: Any = fd.message_type
    if sub.GetOptions().map_entry:
        value = sub.fields_by_name["value"]
        return value.message_type if value.type == FieldDescriptor.TYPE_MESSAGE else None
    return sub


# -- JSON merge patch --------------------------------------------------------------------------


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


# -- JSON patch --------------------------------------------------------------------------------


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f'JSON pointer "{path}" must start with "/"')
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str], path: str) -> Any:
    """The value at ``parts`` of ``doc``; PatchError naming ``path`` when it is not there."""
    cur = doc
    for p in parts:
        if isinstance(cur, dict) and p in cur:
            cur = cur[p]
        elif isinstance(cur, list) and p.isdigit() and int(p) < len(cur):
            cur = cur[int(p)]
        else:
            raise PatchError(f'path "{path}" does not exist')
    return cur


def _parent(doc: Any, parts: list[str], path: str) -> tuple[Any, str]:
    if not parts:
        raise PatchError("the whole document cannot be patched")
    return _walk(doc, parts[:-1], path), parts[-1]


def _get(doc: Any, path: str) -> Any:
    return _walk(doc, _pointer(path), path)


def _add(doc: Any, path: str, value: Any) -> None:
    parent, last = _parent(doc, _pointer(path), path)
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise PatchError(f'path "{path}": index out of range')
    else:
        raise PatchError(f'path "{path}" does not exist')


def _remove(doc: Any, path: str) -> Any:
    parent, last = _parent(doc, _pointer(path), path)
    if isinstance(parent, dict) and last in parent:
        return parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent.pop(int(last))
    raise PatchError(f'path "{path}" does not exist')


def json_patch(doc: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a list of operations")
    out = copy.deepcopy(doc)
    for op in ops:
        if not isinstance(op, dict) or not isinstance(op.get("path"), str):
            raise PatchError("each JSON patch operation needs an op and a path")
        kind, path = op.get("op"), op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise PatchError(f'JSON patch "{kind}" at "{path}" needs a value')
        if kind == "add":
            _add(out, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            _remove(out, path)
        elif kind == "replace":
            _remove(out, path)
            _add(out, path, copy.deepcopy(op["value"]))
        elif kind in ("move", "copy"):
            src = op.get("from")
            if not isinstance(src, str):
                raise PatchError(f'JSON patch "{kind}" at "{path}" needs "from"')
            value = _remove(out, src) if kind == "move" else copy.deepcopy(_get(out, src))
            _add(out, path, value)
        elif kind == "test":
            if _get(out, path) != op["value"]:
                raise PatchError(f'test at "{path}" failed', test_failed=True)
        else:
            raise PatchError(f'unknown JSON patch operation "{kind}"')
    return out


# -- strategic merge patch ---------------------------------------------------------------------


def strategic_merge(target: Any, patch: Any, desc: Any) -> Any:
    """``patch`` applied to ``target`` (the object's JSON), ``desc`` its protobuf message."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    out = dict(target) if isinstance(target, dict) else {}
    retain = patch.get("$retainKeys")
    for k, v in patch.items():
        if k in ("$patch", "$retainKeys") or k.startswith("$setElementOrder/"):
            continue
        if k.startswith("$deleteFromPrimitiveList/"):
            name = k.partition("/")[2]
            if isinstance(out.get(name), list) and isinstance(v, list):
                out[name] = [x for x in out[name] if x not in v]
            continue
        if v is None:
            out.pop(k, None)
            continue
        child = child_message(desc, k)
        if isinstance(v, list):
            key = merge_key(desc, k)
            if key is not None:
                out[k] = _merge_list(out.get(k), v, key, child)
            elif desc is not None and (desc.name, k) in PRIMITIVE_MERGE:
                cur = list(out.get(k) or [])
                out[k] = cur + [x for x in v if x not in cur]
            else:
                out[k] = [x for x in copy.deepcopy(v) if not _is_directive(x)]
        elif isinstance(v, dict):
            merged = strategic_merge(out.get(k), v, child)
            if merged is None:
                out.pop(k, None)
            else:
                out[k] = merged
        else:
            out[k] = v
    for k, order in patch.items():
        if k.startswith("$setElementOrder/"):
            name = k.partition("/")[2]
            key = merge_key(desc, name)
            if key is not None and isinstance(out.get(name), list) and isinstance(order, list):
                out[name] = _reorder(out[name], order, key)
    if isinstance(retain, list):
        out = {k: v for k, v in out.items() if k in retain}
    return out


def _is_directive(x: Any) -> bool:
    return isinstance(x, dict) and "$patch" in x and len(x) == 1


def _merge_list(target: Any, patch: list[Any], key: str, desc: Any) -> list[Any]:
    items = [dict(x) if isinstance(x, dict) else x for x in (target or [])]
    if any(isinstance(x, dict) and x.get("$patch") == "replace" for x in patch):
        return [copy.deepcopy(x) for x in patch if not (isinstance(x, dict) and "$patch" in x)]
    for elem in patch:
        if not isinstance(elem, dict) or key not in elem:
            raise PatchError(f'a list element of the patch lacks its merge key "{key}"')
        at = next(
            (i for i, x in enumerate(items) if isinstance(x, dict) and x.get(key) == elem[key]),
            None,
        )
        if elem.get("$patch") == "delete":
            if at is not None:
                items.pop(at)
            continue
        if at is None:
            items.append(strategic_merge({}, elem, desc))
        else:
            items[at] = strategic_merge(items[at], elem, desc)
    return items


def _reorder(items: list[Any], order: list[Any], key: str) -> list[Any]:
    """Items in the order ``$setElementOrder`` names; others keep their place after them."""
    rank = {o.get(key): i for i, o in enumerate(order) if isinstance(o, dict)}
    listed = [x for x in items if isinstance(x, dict) and x.get(key) in rank]
    listed.sort(key=lambda x: rank[x.get(key)])
    rest = [x for x in items if not (isinstance(x, dict) and x.get(key) in rank)]
    return listed + rest
