"""Read commands of hakubectl: get (and get --watch), describe, api-resources, cluster status."""

from __future__ import annotations

import argparse
import json
from typing import Any

from hakube.api import kinds as kinds_mod
from hakube.api.kinds import Kind
from hakube.cli import printers
from hakube.cli.ctl.common import Ctx, UsageError, error_line, targets
from hakube.cli.describe import describe
from hakube.client import RELIST, Client, NotFound
from hakube.client.cluster import cluster_report

OUTPUTS = ("wide", "yaml", "json", "name")


def _scope(ctx: Ctx, kind: Kind) -> str | None:
    """The namespace to list in: None for all (-A or a cluster-scoped kind)."""
    if ctx.args.all_namespaces or not kind.namespaced:
        return None
    return ctx.namespace


# -- get ---------------------------------------------------------------------------------------


def add_get(p: argparse.ArgumentParser) -> None:
    p.add_argument("resources", nargs="*", metavar="KIND [NAME...] | KIND/NAME...")
    p.add_argument("-A", "--all-namespaces", action="store_true", help="list across all namespaces")
    p.add_argument("-l", "--selector", default="", help="label selector (app=web,tier!=db)")
    p.add_argument("--field-selector", default="", help="field selector (status.phase=Running)")
    p.add_argument("-o", "--output", choices=OUTPUTS, help="output format")
    p.add_argument("-w", "--watch", action="store_true", help="after listing, watch for changes")
    p.add_argument("--watch-only", action="store_true", help="watch without listing first")
    p.add_argument(
        "--output-watch-events",
        action="store_true",
        help="with --watch, show the event type (ADDED, MODIFIED, DELETED)",
    )
    p.add_argument("--show-labels", action="store_true", help="add a LABELS column")
    p.add_argument("--no-headers", action="store_true", help="leave out the column headers")
    p.add_argument(
        "--ignore-not-found",
        action="store_true",
        help="a named object that does not exist is not an error",
    )


def _get_named(
    ctx: Ctx, client: Client, kind: Kind, names: list[str], *, ignore_not_found: bool = False
) -> list[Any]:
    """The named objects of ``kind`` that exist; a missing one prints its NotFound line (unless
    ``ignore_not_found``) and the command goes on."""
    objs = []
    for name in names:
        try:
            objs.append(client.get(kind, name, namespace=ctx.namespace))
        except NotFound as exc:
            if not ignore_not_found:
                ctx.error(error_line(exc))
    return objs


def run_get(ctx: Ctx) -> int:
    a = ctx.args
    groups = targets(a.resources)
    watching = a.watch or a.watch_only
    if watching and len(groups) != 1:
        raise UsageError("--watch works with one resource type at a time")
    client = ctx.client()
    found: list[tuple[Kind, list[Any], str]] = []
    single = len(groups) == 1 and len(groups[0][1]) == 1
    named = any(names for _, names in groups)
    for kind, names in groups:
        if names:
            objs = _get_named(ctx, client, kind, names, ignore_not_found=a.ignore_not_found)
            found.append((kind, objs, ""))
        elif not a.watch_only:
            lst = client.list(
                kind,
                namespace=_scope(ctx, kind),
                label_selector=a.selector,
                field_selector=a.field_selector,
            )
            found.append((kind, lst.items, lst.resource_version))
    tables: dict[str, printers.Table] = {}
    if not a.watch_only:
        _print_found(ctx, found, single=single, named=named, tables=tables)
    if watching:
        kind, names = groups[0]
        rv = found[0][2] if found and found[0][2] else None
        if names and found and found[0][1]:
            rv = max(o.metadata.resource_version for o in found[0][1])
        _watch(ctx, kind, names, rv, tables.get(kind.name))
    return 0


def _table(ctx: Ctx, kind: Kind, prefix: bool, event_column: bool = False) -> printers.Table:
    a = ctx.args
    return printers.Table(
        kind,
        wide=a.output == "wide",
        namespaces=a.all_namespaces,
        show_labels=a.show_labels,
        prefix_kind=prefix,
        event_column=event_column,
    )


def _print_found(
    ctx: Ctx,
    found: list[tuple[Kind, list[Any], str]],
    *,
    single: bool,
    named: bool,
    tables: dict[str, printers.Table],
) -> None:
    a = ctx.args
    objs = [o for _, items, _ in found for o in items]
    if a.output in ("json", "yaml"):
        if single and len(objs) == 1:
            ctx.out.write(printers.dump(printers.to_doc(objs[0]), a.output))
        elif objs or not single:
            rv = found[0][2] if len(found) == 1 else ""
            ctx.out.write(printers.dump(printers.list_doc(objs, rv), a.output))
        ctx.out.flush()
        return
    if a.output == "name":
        for kind, items, _ in found:
            for o in items:
                ctx.print(printers.object_name(kind, o))
        return
    printed = False
    several = len([f for f in found if f[1]]) > 1
    for kind, items, _ in found:
        table = _table(ctx, kind, several, a.output_watch_events and (a.watch or a.watch_only))
        tables[kind.name] = table
        if not items:
            continue
        if printed:
            ctx.print()
        lines = table.render(items, headers=not a.no_headers, event="ADDED")
        for line in lines:
            ctx.print(line)
        printed = True
    if not objs and not named:
        first = found[0][0] if found else None
        if first is not None and first.namespaced and not a.all_namespaces:
            print(f"No resources found in {ctx.namespace} namespace.", file=ctx.err)
        else:
            print("No resources found", file=ctx.err)


def _watch(
    ctx: Ctx, kind: Kind, names: list[str], rv: str | None, table: printers.Table | None
) -> None:
    a = ctx.args
    client = ctx.client()
    fs = a.field_selector
    if names:
        if len(names) > 1:
            raise UsageError("--watch takes at most one name")
        fs = ",".join(filter(None, [fs, f"metadata.name={names[0]}"]))
    namespace = ctx.namespace if names else _scope(ctx, kind)
    table = table or _table(ctx, kind, False, a.output_watch_events)
    header_due = not a.no_headers and not table.widths and a.output in (None, "wide")
    with client.watch(
        kind, namespace=namespace, label_selector=a.selector, field_selector=fs, resource_version=rv
    ) as w:
        for ev in w:
            if ev.type == RELIST:
                items = ev.items
            else:
                items = [ev.object] if ev.object is not None else []
            event = "ADDED" if ev.type == RELIST else ev.type
            for obj in items:
                if a.output in ("json", "yaml"):
                    doc = printers.to_doc(obj)
                    if a.output_watch_events:
                        doc = {"type": event, "object": doc}
                    ctx.out.write(printers.dump(doc, a.output))
                    ctx.out.flush()
                elif a.output == "name":
                    ctx.print(printers.object_name(kind, obj))
                else:
                    if header_due:
                        table.render([obj])
                        ctx.print(table.format(table.header()))
                        header_due = False
                    ctx.print(table.format(table.row(obj, event)))


# -- describe ----------------------------------------------------------------------------------


def add_describe(p: argparse.ArgumentParser) -> None:
    p.add_argument("resources", nargs="*", metavar="KIND [NAME...] | KIND/NAME...")
    p.add_argument("-A", "--all-namespaces", action="store_true")
    p.add_argument("-l", "--selector", default="", help="label selector")


def run_describe(ctx: Ctx) -> int:
    client = ctx.client()
    first = True
    for kind, names in targets(ctx.args.resources):
        if names:
            objs = _get_named(ctx, client, kind, names)
        else:
            objs = client.list(
                kind, namespace=_scope(ctx, kind), label_selector=ctx.args.selector
            ).items
        for obj in objs:
            if not first:
                ctx.print("\n")
            ctx.print(describe(client, kind, obj))
            first = False
    return 0


# -- api-resources -----------------------------------------------------------------------------


def add_api_resources(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", choices=("name", "wide"))


def run_api_resources(ctx: Ctx) -> int:
    if ctx.args.output == "name":
        for k in kinds_mod.KINDS:
            ctx.print(printers.type_name(k).replace(k.name.lower(), k.plural, 1))
        return 0
    rows = [["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]]
    rows += [
        [k.plural, ",".join(k.short_names), k.api_version, str(k.namespaced).lower(), k.name]
        for k in sorted(kinds_mod.KINDS, key=lambda k: k.plural)
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        ctx.print("   ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())
    return 0


# -- cluster status ----------------------------------------------------------------------------


def add_cluster(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["status"], help="status: the masters and their Raft state")
    p.add_argument("-o", "--output", choices=("json", "yaml", "wide"))


def run_cluster(ctx: Ctx) -> int:
    report = cluster_report(ctx.client(), min(ctx.args.timeout or 2.0, 2.0))
    fmt = ctx.args.output
    if fmt in ("json", "yaml"):
        ctx.out.write(
            json.dumps(report, indent=2) + "\n" if fmt == "json" else printers.dump(report, "yaml")
        )
        return 0 if report["healthy"] else 1
    rows = [["NAME", "ENDPOINT", "STATE", "LEADER", "TERM", "COMMIT", "APPLIED", "LAG", "READY"]]
    for m in report["masters"]:
        if m["reachable"]:
            rows.append(
                [
                    m["name"],
                    m["endpoint"],
                    m["state"],
                    m["leader"] or "<none>",
                    str(m["term"]),
                    str(m["commitIndex"]),
                    str(m["appliedIndex"]),
                    str(m["lag"]),
                    str(m["ready"]).lower(),
                ]
            )
        elif m["reachable"] is False:
            rows.append(
                [m["name"] or "?", m["endpoint"], "unreachable", "", "", "", "", "", "false"]
            )
        else:
            rows.append(
                [
                    m["name"],
                    m["endpoint"] or "<not configured>",
                    f"({m['state']} to peers)",
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                ]
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        ctx.print("   ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())
    verdict = "healthy" if report["healthy"] else "NOT healthy (no leader or no ready quorum)"
    ctx.print(
        f"\ncluster: {verdict}; leader {report['leader'] or '<none>'}, term "
        f"{report['term']}; {report['ready']}/{report['total']} masters ready "
        f"(quorum {report['quorum']})"
    )
    return 0 if report["healthy"] else 1


COMMANDS = {
    "get": ("display one or many objects", add_get, run_get),
    "describe": ("show details of objects, with their events", add_describe, run_describe),
    "api-resources": ("list the kinds the API serves", add_api_resources, run_api_resources),
    "cluster": ("cluster-level commands: status", add_cluster, run_cluster),
}
