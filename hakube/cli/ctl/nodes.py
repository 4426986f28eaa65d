"""``hakubectl taint | cordon | uncordon | drain``: node maintenance, as kubectl does it.

- ``taint nodes NODE... KEY[=VALUE]:EFFECT`` adds (``--overwrite`` to change a value),
  ``KEY[=VALUE]:EFFECT-`` / ``KEY-`` removes; effects are NoSchedule, PreferNoSchedule and
  NoExecute.
- ``cordon`` / ``uncordon`` set and clear ``spec.unschedulable``.
- ``drain`` cordons, then evicts every pod on the node with a graceful delete (the pod's own
  grace period, or ``--grace-period``) and waits until they are gone (``--timeout``, 0 =
  forever). DaemonSet pods would come straight back, so drain refuses unless
  ``--ignore-daemonsets`` (then skips them); pods no controller would recreate need ``--force``.
  Everything drain refuses is reported before anything is evicted. Drain's ``--timeout`` is
  hakubectl's common option (it also bounds each request), as the deadline of the whole drain.

Node updates are compare-and-swap with retries, so a concurrent change (the node lifecycle
controller adding a taint) is never overwritten.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from typing import Any

from hakube.api import kinds
from hakube.api.v1 import core_pb2, pod_pb2
from hakube.cli.ctl.common import CommandError, Ctx, UsageError, error_line
from hakube.client import Conflict, HakubeError, NotFound

EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_TAINT = re.compile(
    r"^([A-Za-z0-9](?:[-A-Za-z0-9_./]*[A-Za-z0-9])?)(?:=([-A-Za-z0-9_.]*))?(?::([A-Za-z]+))?(-?)$"
)


def node_names(words: list[str]) -> tuple[list[str], list[str]]:
    """``nodes a b`` / ``node/a node/b`` -> (names, the remaining words)."""
    if not words:
        raise UsageError("name the node: nodes NODE... or node/NODE")
    if "/" in words[0]:
        names, rest = [], list(words)
        while rest and "/" in rest[0]:
            kind, _, name = rest.pop(0).partition("/")
            if kinds.lookup(kind) is not kinds.BY_NAME["Node"] or not name:
                raise UsageError(f'"{kind}/{name}": only nodes can be tainted')
            names.append(name)
        return names, rest
    if kinds.lookup(words[0]) is not kinds.BY_NAME["Node"]:
        raise UsageError(f'"{words[0]}": only nodes can be tainted (e.g. taint nodes NODE ...)')
    return words[1:], []


def parse_taint(spec: str) -> tuple[str, str, str, bool]:
    """``k=v:NoSchedule`` -> (key, value, effect, remove); CommandError names what is wrong."""
    m = _TAINT.match(spec)
    if not m:
        raise CommandError(f'invalid taint spec "{spec}": want KEY[=VALUE]:EFFECT or KEY- ')
    key, value, effect, minus = m.group(1), m.group(2) or "", m.group(3) or "", bool(m.group(4))
    if effect and effect not in EFFECTS:
        raise CommandError(
            f'invalid taint spec "{spec}": effect "{effect}" must be one of {", ".join(EFFECTS)}'
        )
    if not minus and not effect:
        raise CommandError(f'invalid taint spec "{spec}": an effect is required to add a taint')
    return key, value, effect, minus


def modify_node(ctx: Ctx, name: str, change: Callable[[core_pb2.Node], bool]) -> bool:
    """Get, change in place, update with CAS (retried on Conflict); False if nothing changed."""
    client = ctx.client()
    for _ in range(10):
        node = client.nodes.get(name)
        if not change(node):
            return False
        try:
            client.nodes.update(node)
            return True
        except Conflict:
            continue
    raise Conflict(f'nodes "{name}": changed by others on every attempt; try again')


# -- taint --------------------------------------------------------------------------------------


def add_taint(p: argparse.ArgumentParser) -> None:
    p.add_argument("args", nargs="+", metavar="nodes NODE... KEY[=VALUE]:EFFECT[-]...")
    p.add_argument("--overwrite", action="store_true", help="allow changing an existing taint")


def _retaint(specs: list[tuple[str, str, str, bool]], overwrite: bool) -> Callable[[Any], bool]:
    def change(node: Any) -> bool:
        taints = [(t.key, t.value, t.effect, t.time_added) for t in node.spec.taints]
        before = list(taints)
        for key, value, effect, remove in specs:
            if remove:
                kept = [t for t in taints if not (t[0] == key and (not effect or t[2] == effect))]
                if len(kept) == len(taints):
                    raise CommandError(f'taint "{key}{":" + effect if effect else ""}" not found')
                taints = kept
                continue
            same = [t for t in taints if t[0] == key and t[2] == effect]
            if same and same[0][1] != value and not overwrite:
                raise CommandError(
                    f"node {node.metadata.name} already has {key} taint(s) with "
                    "the same effect(s) and --overwrite is false"
                )
            taints = [t for t in taints if not (t[0] == key and t[2] == effect)]
            taints.append((key, value, effect, same[0][3] if same else ""))
        if taints == before:
            return False
        del node.spec.taints[:]
        for key, value, effect, added in taints:
            node.spec.taints.add(key=key, value=value, effect=effect, time_added=added)
        return True

    return change


def run_taint(ctx: Ctx) -> int:
    words = list(ctx.args.args)
    specs_at = next(
        (i for i, w in enumerate(words) if i > 0 and ("=" in w or ":" in w or w.endswith("-"))),
        len(words),
    )
    names, rest = node_names(words[:specs_at])
    spec_words = rest + words[specs_at:]
    if not names:
        raise UsageError("name at least one node")
    if not spec_words:
        raise UsageError("give at least one taint: KEY[=VALUE]:EFFECT or KEY[:EFFECT]-")
    specs = [parse_taint(w) for w in spec_words]
    removing = all(s[3] for s in specs)
    for name in names:
        try:
            modify_node(ctx, name, _retaint(specs, ctx.args.overwrite))
        except (HakubeError, CommandError) as exc:
            ctx.error(error_line(exc, context=f"node/{name}"))
            continue
        ctx.print(f"node/{name} {'untainted' if removing else 'tainted'}")
    return 0


# -- cordon / uncordon --------------------------------------------------------------------------


def add_cordon(p: argparse.ArgumentParser) -> None:
    p.add_argument("nodes", nargs="+", metavar="NODE")


def _set_unschedulable(ctx: Ctx, name: str, on: bool) -> bool:
    def change(node: Any) -> bool:
        if node.spec.unschedulable == on:
            return False
        node.spec.unschedulable = on
        return True

    return modify_node(ctx, name, change)


def _cordon_all(ctx: Ctx, on: bool) -> int:
    verb = "cordoned" if on else "uncordoned"
    for name in ctx.args.nodes:
        name = name.split("/", 1)[-1]
        try:
            changed = _set_unschedulable(ctx, name, on)
        except HakubeError as exc:
            ctx.error(error_line(exc))
            continue
        ctx.print(f"node/{name} {verb}" if changed else f"node/{name} already {verb}")
    return 0


def run_cordon(ctx: Ctx) -> int:
    return _cordon_all(ctx, True)


def run_uncordon(ctx: Ctx) -> int:
    return _cordon_all(ctx, False)


# -- drain --------------------------------------------------------------------------------------


def add_drain(p: argparse.ArgumentParser) -> None:
    p.add_argument("node", metavar="NODE")
    p.add_argument(
        "--ignore-daemonsets",
        action="store_true",
        help="skip DaemonSet-managed pods (they would be recreated on the node)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="also evict pods that no controller manages (they are not recreated)",
    )
    p.add_argument(
        "--grace-period",
        type=int,
        default=-1,
        help="seconds each pod gets to stop (default -1: the pod's own)",
    )


def _controller(pod: pod_pb2.Pod) -> str:
    for ref in pod.metadata.owner_references:
        if ref.controller:
            return ref.kind
    return ""


def run_drain(ctx: Ctx) -> int:
    a = ctx.args
    name = a.node.split("/", 1)[-1]
    client = ctx.client()
    if _set_unschedulable(ctx, name, True):
        ctx.print(f"node/{name} cordoned")
    else:
        ctx.print(f"node/{name} already cordoned")
    pods = client.pods.list(namespace="", field_selector=f"spec.nodeName={name}").items
    evict, refused = [], []
    for p in pods:
        if p.status.phase in ("Succeeded", "Failed"):
            continue
        owner = _controller(p)
        ref = f"{p.metadata.namespace}/{p.metadata.name}"
        if owner == "DaemonSet":
            if not a.ignore_daemonsets:
                refused.append(
                    f"cannot delete DaemonSet-managed Pods (use --ignore-daemonsets "
                    f"to ignore): {ref}"
                )
            else:
                ctx.print(f"Warning: ignoring DaemonSet-managed Pods: {ref}")
            continue
        if not owner and not a.force:
            refused.append(
                f"cannot delete Pods that declare no controller (use --force to override): {ref}"
            )
            continue
        evict.append(p)
    if refused:
        for line in refused:
            ctx.error(f"error: unable to drain node {name}: {line}")
        return 1
    grace = a.grace_period if a.grace_period >= 0 else None
    for p in evict:
        ctx.print(f"evicting pod {p.metadata.namespace}/{p.metadata.name}")
        try:
            client.delete(
                pod_pb2.Pod,
                p.metadata.name,
                namespace=p.metadata.namespace,
                grace_period_seconds=grace,
                uid=p.metadata.uid,
            )
        except (NotFound, Conflict):
            pass
    limit = getattr(a, "timeout", None) or 0.0
    deadline = time.monotonic() + limit if limit > 0 else None
    waiting = {(p.metadata.namespace, p.metadata.name): p.metadata.uid for p in evict}
    while waiting:
        for (ns, pname), uid in list(waiting.items()):
            try:
                gone = client.pods.get(pname, namespace=ns).metadata.uid != uid
            except NotFound:
                gone = True
            if gone:
                del waiting[(ns, pname)]
                ctx.print(f"pod/{pname} evicted")
        if not waiting:
            break
        if deadline is not None and time.monotonic() > deadline:
            left = ", ".join(f"{ns}/{n}" for ns, n in sorted(waiting))
            ctx.error(
                f"error: drain did not complete within {limit:g}s; pods still terminating: {left}"
            )
            return 1
        time.sleep(0.2)
    ctx.print(f"node/{name} drained")
    return 0


COMMANDS = {
    "taint": ("add or remove taints on nodes", add_taint, run_taint),
    "cordon": ("mark nodes unschedulable", add_cordon, run_cordon),
    "uncordon": ("mark nodes schedulable again", add_cordon, run_uncordon),
    "drain": ("cordon a node and evict its pods, respecting grace periods", add_drain, run_drain),
}
