"""Write commands of hakubectl: apply, create, delete, scale, label.

Manifests are all read and checked before the first request (see manifests.py). After that,
each object is handled on its own: a failure prints its line and the command goes on with the
rest, then exits 1. Read-modify-write commands (scale, label) write with compare-and-swap on
the resourceVersion they read and start over when someone else wrote in between, so they never
undo a concurrent change.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from hakube.api import convert
from hakube.api.kinds import Kind
from hakube.cli import printers
from hakube.cli.ctl.common import (
    SCALABLE,
    CommandError,
    Ctx,
    UsageError,
    error_line,
    modify,
    targets,
)
from hakube.cli.manifests import Manifest, load
from hakube.client import Client, HakubeError, NotFound
from hakube.client.apply import strip_manifest


def add_file_args(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument(
        "-f",
        "--filename",
        action="append",
        default=[],
        required=required,
        metavar="FILE|DIR|-",
        help="manifest file, directory of them, or - for stdin (repeatable)",
    )
    p.add_argument(
        "-R",
        "--recursive",
        action="store_true",
        help="descend into subdirectories of a -f directory",
    )


def _manifests(ctx: Ctx) -> list[Manifest]:
    items = load(ctx.args.filename, recursive=ctx.args.recursive)
    explicit = ctx.args.namespace
    for m in items:
        if explicit and m.kind.namespaced and m.namespace and m.namespace != explicit:
            raise CommandError(
                f'{m.source}: the namespace from the object ("{m.namespace}") '
                f'does not match the namespace from -n ("{explicit}")'
            )
    return items


def _in_namespace(ctx: Ctx, m: Manifest) -> dict[str, Any]:
    doc = dict(m.doc)
    if m.kind.namespaced:
        meta = dict(doc.get("metadata") or {})
        meta["namespace"] = m.namespace or ctx.namespace
        doc["metadata"] = meta
    return doc


def _label(kind: Kind, name: str) -> str:
    return f"{printers.type_name(kind)}/{name}"


# -- apply / create ----------------------------------------------------------------------------


def add_apply(p: argparse.ArgumentParser) -> None:
    add_file_args(p, required=True)
    p.add_argument("-o", "--output", choices=("name",), help="print only TYPE/NAME")


add_create = add_apply
"""create takes the same flags as apply."""


def _write_each(ctx: Ctx, write: Callable[[Client, dict[str, Any]], tuple[Any, str]]) -> int:
    """``write`` every manifest (in its namespace); print ``TYPE/NAME ACTION`` for each, or the
    failure's line and go on with the rest."""
    client = ctx.client()
    for m in _manifests(ctx):
        try:
            obj, action = write(client, _in_namespace(ctx, m))
        except (HakubeError, convert.ManifestError) as exc:
            ctx.error(error_line(exc, context=f"{_label(m.kind, m.name)} from {m.source}"))
            continue
        label = _label(m.kind, obj.metadata.name)
        ctx.print(label if ctx.args.output == "name" else f"{label} {action}")
    return 0


def run_apply(ctx: Ctx) -> int:
    def apply(client: Client, doc: dict[str, Any]) -> tuple[Any, str]:
        result = client.apply(doc)
        return result.object, result.action

    return _write_each(ctx, apply)


def run_create(ctx: Ctx) -> int:
    def create(client: Client, doc: dict[str, Any]) -> tuple[Any, str]:
        return client.create(convert.from_dict(strip_manifest(doc)[0])), "created"

    return _write_each(ctx, create)


# -- delete ------------------------------------------------------------------------------------


def add_delete(p: argparse.ArgumentParser) -> None:
    p.add_argument("resources", nargs="*", metavar="KIND [NAME...] | KIND/NAME...")
    add_file_args(p, required=False)
    p.add_argument("-l", "--selector", default="", help="delete every object of KIND matching")
    p.add_argument(
        "--all", action="store_true", help="delete every object of KIND in the namespace"
    )
    p.add_argument(
        "-A", "--all-namespaces", action="store_true", help="with -l or --all: in every namespace"
    )
    p.add_argument(
        "--grace-period",
        type=int,
        default=None,
        metavar="SECONDS",
        help="seconds a pod gets to stop (0: at once)",
    )
    p.add_argument(
        "--cascade",
        choices=("background", "foreground", "orphan"),
        default="background",
        help="what happens to dependents",
    )
    p.add_argument(
        "--wait",
        action="store_true",
        help="wait until the objects are gone (finalizers and grace periods done), up to --timeout",
    )
    p.add_argument(
        "--ignore-not-found", action="store_true", help="deleting something absent is not an error"
    )


def run_delete(ctx: Ctx) -> int:
    a = ctx.args
    client = ctx.client()
    work: list[tuple[Kind, str, str]] = []
    if a.filename:
        if a.resources:
            raise UsageError("give either -f or KIND NAME, not both")
        for m in _manifests(ctx):
            work.append((m.kind, m.name, m.namespace or ctx.namespace))
    else:
        for kind, names in targets(a.resources):
            ns = ctx.namespace if kind.namespaced else ""
            if names:
                if a.selector or a.all:
                    raise UsageError("names cannot be combined with -l or --all")
                work += [(kind, n, ns) for n in names]
            elif a.selector or a.all:
                scope = None if a.all_namespaces or not kind.namespaced else ns
                items = client.list(kind, namespace=scope, label_selector=a.selector).items
                work += [(kind, o.metadata.name, o.metadata.namespace) for o in items]
            else:
                raise UsageError(f"name the {kind.plural} to delete, or use -l SELECTOR or --all")
    if not work and not a.filename:
        print("No resources found", file=ctx.err)
    policy = a.cascade.capitalize()
    pending: list[tuple[Kind, str, str]] = []
    for kind, name, ns in work:
        try:
            res = client.delete(
                kind,
                name,
                namespace=ns,
                grace_period_seconds=a.grace_period,
                propagation_policy=policy,
            )
        except NotFound as exc:
            if not a.ignore_not_found:
                ctx.error(error_line(exc))
            continue
        except HakubeError as exc:
            ctx.error(error_line(exc))
            continue
        label = f'{printers.type_name(kind)} "{name}"'
        if res.deleted:
            ctx.print(f"{label} deleted")
        else:
            pending.append((kind, name, ns))
            why = ", ".join(res.object.metadata.finalizers) if res.object is not None else ""
            ctx.print(f"{label} deletion requested" + (f" (waiting for: {why})" if why else ""))
    if a.wait and pending:
        _wait_gone(ctx, client, pending)
    return 0


def _wait_gone(ctx: Ctx, client: Client, pending: list[tuple[Kind, str, str]]) -> None:
    deadline = time.monotonic() + (ctx.args.timeout or 60.0)
    while pending:
        still = []
        for kind, name, ns in pending:
            try:
                client.get(kind, name, namespace=ns)
                still.append((kind, name, ns))
            except NotFound:
                ctx.print(f'{printers.type_name(kind)} "{name}" deleted')
        pending = still
        if pending and time.monotonic() > deadline:
            for kind, name, _ in pending:
                ctx.error(
                    f'error: timed out waiting for {printers.type_name(kind)} "{name}" '
                    "to be deleted"
                )
            return
        if pending:
            time.sleep(0.2)


# -- read-modify-write: scale, label -----------------------------------------------------------


def _named(ctx: Ctx) -> list[tuple[Kind, str]]:
    out = [(k, n) for k, names in targets(ctx.args.resources) for n in names]
    if not out:
        raise UsageError("name the object: KIND NAME or KIND/NAME")
    return out


def _modified(
    ctx: Ctx, kind: Kind, name: str, change: Callable[[Any], bool]
) -> tuple[bool, Any | None]:
    """``modify`` one object: (True, its new state or None if unchanged), or (False, None)
    after printing the failure's line (a refusal by ``change`` names the object)."""
    try:
        return True, modify(ctx, kind, name, change)
    except HakubeError as exc:
        ctx.error(error_line(exc))
    except CommandError as exc:
        ctx.error(error_line(exc, context=_label(kind, name)))
    return False, None


def add_scale(p: argparse.ArgumentParser) -> None:
    p.add_argument("resources", nargs="+", metavar="KIND NAME | KIND/NAME...")
    p.add_argument("--replicas", type=int, required=True, help="the new number of replicas")
    p.add_argument(
        "--current-replicas",
        type=int,
        default=None,
        help="only scale if the current number is this",
    )


def _scale_to(replicas: int, expect: int | None) -> Callable[[Any], bool]:
    def change(obj: Any) -> bool:
        cur = obj.spec.replicas if obj.spec.HasField("replicas") else 1
        if expect is not None and cur != expect:
            raise CommandError(f"expected {expect} replicas, found {cur}; not scaled")
        obj.spec.replicas = replicas
        return bool(cur != replicas)

    return change


def run_scale(ctx: Ctx) -> int:
    a = ctx.args
    if a.replicas < 0:
        raise UsageError("--replicas must be 0 or more")
    for kind, name in _named(ctx):
        if kind.name not in SCALABLE:
            ctx.error(
                f"error: {kind.plural} cannot be scaled (only deployments, replicasets, "
                "statefulsets)"
            )
            continue

        ok, _ = _modified(ctx, kind, name, _scale_to(a.replicas, a.current_replicas))
        if ok:
            ctx.print(f"{_label(kind, name)} scaled")
    return 0


def add_label(p: argparse.ArgumentParser) -> None:
    p.add_argument("args", nargs="+", metavar="KIND NAME... KEY=VALUE... KEY-...")
    p.add_argument("--overwrite", action="store_true", help="allow changing an existing value")


def _relabel(sets: dict[str, str], removes: list[str], overwrite: bool) -> Callable[[Any], bool]:
    def change(obj: Any) -> bool:
        labels = obj.metadata.labels
        before = dict(labels)
        for k, v in sets.items():
            if k in labels and labels[k] != v and not overwrite:
                raise CommandError(
                    f"'{k}' already has a value ({labels[k]}), and --overwrite is false"
                )
            labels[k] = v
        for k in removes:
            labels.pop(k, None)
        return dict(labels) != before

    return change


def run_label(ctx: Ctx) -> int:
    words = ctx.args.args
    objs_words = [w for w in words if "=" not in w and not w.endswith("-")]
    changes = [w for w in words if w not in objs_words]
    if not changes:
        raise UsageError("give at least one KEY=VALUE or KEY- (to remove)")
    ctx.args.resources = objs_words
    sets = dict(w.split("=", 1) for w in changes if "=" in w)
    removes = [w[:-1] for w in changes if "=" not in w]
    for kind, name in _named(ctx):
        ok, out = _modified(ctx, kind, name, _relabel(sets, removes, ctx.args.overwrite))
        if ok:
            ctx.print(f"{_label(kind, name)} {'labeled' if out is not None else 'not labeled'}")
    return 0


COMMANDS = {
    "apply": ("create or update objects from manifests", add_apply, run_apply),
    "create": ("create objects from manifests", add_create, run_create),
    "delete": ("delete objects by name, label selector or manifest", add_delete, run_delete),
    "scale": ("set the replicas of a deployment, replicaset or statefulset", add_scale, run_scale),
    "label": ("add, change or remove labels", add_label, run_label),
}
