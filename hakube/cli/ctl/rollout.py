"""``hakubectl rollout status|history|undo|pause|resume|restart`` for Deployments.

These are client-side, as in kubectl: ``undo`` copies the pod template of the ReplicaSet that
carries the wanted revision back into the Deployment (the controller then finds that
ReplicaSet again and makes it the newest revision); ``restart`` stamps the template with
``kubectl.kubernetes.io/restartedAt``; ``pause``/``resume`` flip ``spec.paused``. ``status``
follows the Deployment until the rollout is complete, and fails when the controller reports
ProgressDeadlineExceeded.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import yaml

from hakube.api import convert, kinds, rollout
from hakube.api.conditions import find
from hakube.api.owners import controller_ref
from hakube.api.timestamps import rfc3339
from hakube.api.v1 import workloads_pb2
from hakube.cli import printers
from hakube.cli.ctl.common import (
    CommandError,
    Ctx,
    UsageError,
    add_common_options,
    lookup_kind,
    modify,
)

DEPLOYMENT = kinds.BY_NAME["Deployment"]
LABEL = printers.type_name(DEPLOYMENT)


def add_args(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="rollout_command", metavar="SUBCOMMAND", required=True)
    helps = {
        "status": "wait for the rollout to finish",
        "history": "list revisions (--revision N: show one)",
        "undo": "roll back to the previous revision (or --to-revision N)",
        "pause": "stop rolling out template changes",
        "resume": "roll out again after pause",
        "restart": "replace every pod, one rolling update",
    }
    for name, text in helps.items():
        sp = sub.add_parser(name, help=text, description=text)
        add_common_options(sp, sub=True)
        sp.add_argument("resource", nargs="+", metavar="deployment/NAME | deployment NAME")
        if name == "status":
            sp.add_argument(
                "-w",
                "--watch",
                default=True,
                action=argparse.BooleanOptionalAction,
                help="wait for the rollout to finish (default)",
            )
        if name == "history":
            sp.add_argument("--revision", type=int, default=0, help="show this revision")
        if name == "undo":
            sp.add_argument(
                "--to-revision",
                type=int,
                default=0,
                help="the revision to go back to (default: the previous one)",
            )


def _name(ctx: Ctx) -> str:
    words = ctx.args.resource
    if len(words) == 1 and "/" in words[0]:
        word, _, name = words[0].partition("/")
    elif len(words) == 2 and "/" not in words[0] + words[1]:
        word, name = words
    else:
        raise UsageError("name one deployment: deployment/NAME or deployment NAME")
    kind = lookup_kind(word)
    if kind is not DEPLOYMENT:
        raise CommandError(f'rollout works on deployments; "{kind.plural}" are not supported')
    return name


def _revisions(ctx: Ctx, d: workloads_pb2.Deployment) -> dict[int, workloads_pb2.ReplicaSet]:
    """The Deployment's ReplicaSets by revision."""
    out = {}
    for rs in ctx.client().replicasets.list(namespace=d.metadata.namespace).items:
        ref = controller_ref(rs.metadata)
        if ref is not None and ref.uid == d.metadata.uid and rollout.revision(rs):
            out[rollout.revision(rs)] = rs
    return out


def _status_line(d: workloads_pb2.Deployment) -> tuple[bool, str]:
    """(done, what to say) as kubectl's rollout status."""
    name, st, want = d.metadata.name, d.status, d.spec.replicas
    if d.metadata.generation > st.observed_generation:
        return False, "Waiting for deployment spec update to be observed..."
    cond = find(st.conditions, rollout.PROGRESSING)
    if cond is not None and cond.reason == rollout.TIMED_OUT:
        raise CommandError(f'deployment "{name}" exceeded its progress deadline')
    if st.updated_replicas < want:
        return False, (
            f'Waiting for deployment "{name}" rollout to finish: '
            f"{st.updated_replicas} out of {want} new replicas have been updated..."
        )
    if st.replicas > st.updated_replicas:
        return False, (
            f'Waiting for deployment "{name}" rollout to finish: '
            f"{st.replicas - st.updated_replicas} old replicas are pending "
            "termination..."
        )
    if st.available_replicas < st.updated_replicas:
        return False, (
            f'Waiting for deployment "{name}" rollout to finish: '
            f"{st.available_replicas} of {st.updated_replicas} updated replicas "
            "are available..."
        )
    return True, f'deployment "{name}" successfully rolled out'


def run_status(ctx: Ctx, name: str) -> int:
    deadline = time.monotonic() + ctx.args.timeout if ctx.args.timeout else None
    last = ""
    while True:
        d = ctx.client().deployments.get(name, namespace=ctx.namespace)
        done, line = _status_line(d)
        if line != last:
            ctx.print(line)
            last = line
        if done or not ctx.args.watch:
            return 0 if done else 1
        if deadline is not None and time.monotonic() > deadline:
            raise CommandError(f'timed out waiting for deployment "{name}" to roll out')
        time.sleep(0.2)


def run_history(ctx: Ctx, name: str) -> int:
    d = ctx.client().deployments.get(name, namespace=ctx.namespace)
    revs = _revisions(ctx, d)
    want = ctx.args.revision
    if want:
        if want not in revs:
            raise CommandError(f"unable to find the specified revision {want}")
        ctx.print(f"{LABEL}/{name} with revision #{want}")
        tpl = convert.to_dict(rollout.without_hash(revs[want].spec.template))
        ctx.print("Pod Template:")
        ctx.print(yaml.safe_dump(tpl, sort_keys=False).rstrip())
        return 0
    ctx.print(f"{LABEL}/{name}")
    ctx.print(f"{'REVISION':<10}CHANGE-CAUSE")
    for rev in sorted(revs):
        cause = revs[rev].metadata.annotations.get(rollout.CHANGE_CAUSE, "<none>")
        ctx.print(f"{rev:<10}{cause}")
    return 0


def run_undo(ctx: Ctx, name: str) -> int:
    d = ctx.client().deployments.get(name, namespace=ctx.namespace)
    if d.spec.paused:
        raise CommandError(
            f"you cannot rollback a paused deployment; resume it first with "
            f"'hakubectl rollout resume {LABEL}/{name}' and try again"
        )
    revs = _revisions(ctx, d)
    want = ctx.args.to_revision
    if not want:
        older = sorted(revs)[:-1]
        if not older:
            raise CommandError(f'no rollout history found for deployment "{name}"')
        want = older[-1]
    if want not in revs:
        raise CommandError(f"unable to find specified revision {want} in history")
    target = rollout.without_hash(revs[want].spec.template)
    if rollout.same_template(target, d.spec.template):
        ctx.print(
            f"{LABEL}/{name} skipped rollback (current template already matches revision {want})"
        )
        return 0
    cause = revs[want].metadata.annotations.get(rollout.CHANGE_CAUSE)

    def change(obj: Any) -> bool:
        obj.spec.template.CopyFrom(target)
        if cause:
            obj.metadata.annotations[rollout.CHANGE_CAUSE] = cause
        return True

    modify(ctx, DEPLOYMENT, name, change)
    ctx.print(f"{LABEL}/{name} rolled back")
    return 0


def _set_paused(ctx: Ctx, name: str, paused: bool) -> int:
    word = "paused" if paused else "resumed"

    def change(obj: Any) -> bool:
        if obj.spec.paused == paused:
            raise CommandError(
                f'deployments.apps "{name}" is {"already" if paused else "not"} paused'
            )
        obj.spec.paused = paused
        return True

    modify(ctx, DEPLOYMENT, name, change)
    ctx.print(f"{LABEL}/{name} {word}")
    return 0


def run_restart(ctx: Ctx, name: str) -> int:
    def change(obj: Any) -> bool:
        if obj.spec.paused:
            raise CommandError("can't restart paused deployment (run rollout resume first)")
        obj.spec.template.metadata.annotations[rollout.RESTARTED_AT] = rfc3339(time.time())
        return True

    modify(ctx, DEPLOYMENT, name, change)
    ctx.print(f"{LABEL}/{name} restarted")
    return 0


def run(ctx: Ctx) -> int:
    name = _name(ctx)
    sub = ctx.args.rollout_command
    if sub == "status":
        return run_status(ctx, name)
    if sub == "history":
        return run_history(ctx, name)
    if sub == "undo":
        return run_undo(ctx, name)
    if sub in ("pause", "resume"):
        return _set_paused(ctx, name, sub == "pause")
    return run_restart(ctx, name)


COMMANDS = {"rollout": ("manage the rollout of a deployment", add_args, run)}
