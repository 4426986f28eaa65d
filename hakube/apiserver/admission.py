"""Pod Security admission: refuse pods (and pod templates) their namespace's level forbids.

The level is the namespace's ``pod-security.kubernetes.io/enforce`` label; without one it is
the master's default (``--pod-security-default``, baseline), except for the system namespace
kube-system, which is privileged unless labelled (node-level components live there).

Kubernetes enforces on Pods and only warns for templates. hakube has no warning channel, and a
Deployment whose every pod would be refused only fails later and out of sight (in its
ReplicaSet's events), so templates are refused at once with the same message, naming the
template's field. An update is checked only when it changes the pod spec or annotations, so
that objects admitted before a namespace became stricter can still be scaled, labelled,
finalized and deleted.
"""

from __future__ import annotations

from typing import Any

from hakube.api import podsecurity
from hakube.api.kinds import BY_NAME, Kind
from hakube.apiserver.errors import Forbidden
from hakube.store.fsm import StoreFSM

SYSTEM_NAMESPACES = ("kube-system",)
"""Privileged when they carry no enforce label."""

_TEMPLATE_KINDS = ("Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job")


def pod_specs(kind: Kind, msg: Any) -> list[tuple[Any, str, Any, str]]:
    """(pod spec, its field path, the metadata holding its annotations, that path) of an
    object that makes pods; empty for other kinds."""
    if kind.name == "Pod":
        return [(msg.spec, "spec", msg.metadata, "metadata")]
    if kind.name in _TEMPLATE_KINDS:
        t = msg.spec.template
        return [(t.spec, "spec.template.spec", t.metadata, "spec.template.metadata")]
    if kind.name == "CronJob":
        t = msg.spec.job_template.spec.template
        return [
            (
                t.spec,
                "spec.jobTemplate.spec.template.spec",
                t.metadata,
                "spec.jobTemplate.spec.template.metadata",
            )
        ]
    return []


class PodSecurity:
    """Reads namespace levels from this master's replica and checks writes against them."""

    def __init__(self, fsm: StoreFSM, default_level: str = podsecurity.BASELINE) -> None:
        why = podsecurity.level_problem(default_level)
        if why:
            raise ValueError(f"pod security default: {why}")
        self.fsm = fsm
        self.default_level = default_level

    def level(self, namespace: str) -> str:
        """The level enforced in ``namespace`` (a missing namespace gets the default)."""
        rec = self.fsm.get("Namespace", "", namespace)
        if rec is not None:
            ns: Any = BY_NAME["Namespace"].message()
            ns.ParseFromString(rec.value)
            label = ns.metadata.labels.get(podsecurity.LABEL_ENFORCE)
            if label in podsecurity.LEVELS:
                return str(label)
        if namespace in SYSTEM_NAMESPACES:
            return podsecurity.PRIVILEGED
        return self.default_level

    def admit(self, kind: Kind, msg: Any, old: Any = None) -> None:
        """Raise Forbidden when ``msg`` (replacing ``old`` on update) makes pods its namespace's
        level forbids."""
        specs = pod_specs(kind, msg)
        if not specs:
            return
        if old is not None and _same_pods(specs, pod_specs(kind, old)):
            return
        level = self.level(msg.metadata.namespace)
        if level == podsecurity.PRIVILEGED:
            return
        found = []
        for spec, path, meta, meta_path in specs:
            found += podsecurity.violations(
                spec, level, annotations=dict(meta.annotations), path=path, meta_path=meta_path
            )
        if found:
            shown = "; ".join(f"{p}: {m}" for p, m in found[:3])
            more = f" (and {len(found) - 3} more)" if len(found) > 3 else ""
            raise Forbidden(
                f'{kind.name.lower()} "{msg.metadata.name}": violates PodSecurity '
                f'"{level}": {shown}{more}'
            )


def _same_pods(new: list[tuple[Any, str, Any, str]], old: list[tuple[Any, str, Any, str]]) -> bool:
    return [
        (s.SerializeToString(deterministic=True), dict(m.annotations)) for s, _, m, _ in new
    ] == [(s.SerializeToString(deterministic=True), dict(m.annotations)) for s, _, m, _ in old]
