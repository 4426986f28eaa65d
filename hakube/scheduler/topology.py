"""Pre-computed, per-attempt facts about where other pods are, by topology domain.

Inter-pod (anti-)affinity and topology spread ask "how many matching pods are in this node's
zone/host/...?". Counting once per scheduling attempt (over the bound pods) and looking the
node's domain up per node keeps filters cheap; pods without such terms skip all of this.

A *domain* is a (topologyKey, value) pair taken from node labels; a node without the key is in
no domain for it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from hakube.api.labels import selector_matches
from hakube.api.scheduling import node_affinity_matches
from hakube.api.v1 import pod_pb2
from hakube.scheduler.cache import NodeInfo
from hakube.scheduler.podinfo import PodInfo

Domain = tuple[str, str]


def term_namespaces(term: pod_pb2.PodAffinityTerm, own: str) -> set[str] | None:
    """Namespaces a term looks in; None means all (an empty namespaceSelector). A non-empty
    namespaceSelector is not supported and adds nothing beyond ``namespaces``."""
    if term.HasField("namespace_selector") and not term.namespace_selector.ByteSize():
        return None
    return set(term.namespaces) or {own}


def term_matches(term: pod_pb2.PodAffinityTerm, own_ns: str, other: pod_pb2.Pod) -> bool:
    """Whether ``other`` is a pod that ``term`` (of a pod in ``own_ns``) refers to."""
    nss = term_namespaces(term, own_ns)
    if nss is not None and other.metadata.namespace not in nss:
        return False
    return selector_matches(term.label_selector, other.metadata.labels)


def passes_node_affinity(pod: pod_pb2.Pod, ni: NodeInfo) -> bool:
    """nodeSelector and required node affinity (the NodeAffinity filter)."""
    return node_affinity_matches(pod.spec, ni.labels, ni.name)


@dataclass
class AffinityFacts:
    """Domains with pods matching each required (anti-)affinity term of the incoming pod,
    and domains that existing pods' required anti-affinity closes to it."""

    affinity: list[set[Domain]] = field(default_factory=list)
    affinity_any: bool = False
    """Some pod anywhere matches every affinity term (else the first-pod exception applies)."""
    self_affine: bool = False
    """The pod matches its own affinity terms: the first of a group may go anywhere."""
    anti: list[set[Domain]] = field(default_factory=list)
    forbidden: set[Domain] = field(default_factory=set)
    preferred: Counter[Domain] = field(default_factory=Counter)
    """Sum of preferred affinity weights minus anti-affinity weights, per domain."""


def affinity_facts(pi: PodInfo, placed: Iterable[tuple[PodInfo, NodeInfo]]) -> AffinityFacts:
    pod = pi.pod
    ns = pod.metadata.namespace
    aff, anti = pod.spec.affinity.pod_affinity, pod.spec.affinity.pod_anti_affinity
    req_aff = list(aff.required_during_scheduling_ignored_during_execution)
    req_anti = list(anti.required_during_scheduling_ignored_during_execution)
    pref = [
        (w.weight, w.pod_affinity_term)
        for w in aff.preferred_during_scheduling_ignored_during_execution
    ]
    pref += [
        (-w.weight, w.pod_affinity_term)
        for w in anti.preferred_during_scheduling_ignored_during_execution
    ]
    facts = AffinityFacts(affinity=[set() for _ in req_aff], anti=[set() for _ in req_anti])
    matched = [False] * len(req_aff)
    for other, ni in placed:
        if other.key == pi.key:
            continue
        labels = ni.labels
        for i, t in enumerate(req_aff):
            if term_matches(t, ns, other.pod):
                matched[i] = True
                if t.topology_key in labels:
                    facts.affinity[i].add((t.topology_key, labels[t.topology_key]))
        for i, t in enumerate(req_anti):
            if t.topology_key in labels and term_matches(t, ns, other.pod):
                facts.anti[i].add((t.topology_key, labels[t.topology_key]))
        for w, t in pref:
            if t.topology_key in labels and term_matches(t, ns, other.pod):
                facts.preferred[(t.topology_key, labels[t.topology_key])] += w
        o_anti = other.pod.spec.affinity.pod_anti_affinity
        for t in o_anti.required_during_scheduling_ignored_during_execution:
            if t.topology_key in labels and term_matches(t, other.pod.metadata.namespace, pod):
                facts.forbidden.add((t.topology_key, labels[t.topology_key]))
    facts.affinity_any = all(matched) if req_aff else True
    facts.self_affine = all(term_matches(t, ns, pod) for t in req_aff)
    return facts


def has_pod_affinity(pod: pod_pb2.Pod) -> bool:
    a = pod.spec.affinity
    return a.HasField("pod_affinity") or a.HasField("pod_anti_affinity")


@dataclass
class SpreadFacts:
    """Per constraint: matching-pod counts per domain among eligible nodes, and the minimum."""

    constraints: list[pod_pb2.TopologySpreadConstraint] = field(default_factory=list)
    counts: list[Counter[str]] = field(default_factory=list)
    minimum: list[int] = field(default_factory=list)
    self_match: list[bool] = field(default_factory=list)


def spread_facts(
    pi: PodInfo, nodes: Iterable[NodeInfo], placed: Iterable[tuple[PodInfo, NodeInfo]]
) -> SpreadFacts:
    pod = pi.pod
    cons = list(pod.spec.topology_spread_constraints)
    facts = SpreadFacts(cons, [Counter() for _ in cons], [0] * len(cons))
    eligible = [ni for ni in nodes if passes_node_affinity(pod, ni)]
    eligible_names = {ni.name for ni in eligible}
    for i, c in enumerate(cons):
        for ni in eligible:
            if c.topology_key in ni.labels:
                facts.counts[i][ni.labels[c.topology_key]] += 0
        facts.self_match.append(selector_matches(c.label_selector, pod.metadata.labels))
    for other, ni in placed:
        if ni.name not in eligible_names or other.key == pi.key:
            continue
        op = other.pod
        if op.metadata.namespace != pod.metadata.namespace or op.metadata.deletion_timestamp:
            continue
        for i, c in enumerate(cons):
            if c.topology_key in ni.labels and selector_matches(
                c.label_selector, op.metadata.labels
            ):
                facts.counts[i][ni.labels[c.topology_key]] += 1
    for i, c in enumerate(cons):
        values = list(facts.counts[i].values())
        low = min(values) if values else 0
        if c.HasField("min_domains") and len(values) < c.min_domains:
            low = 0
        facts.minimum[i] = low
    return facts
