"""RBAC: rule matching with Kubernetes' semantics, over an in-memory index of roles and bindings.

Deciding must cost next to nothing per request, so nothing here scans the store on the request
path. ``RbacIndex`` compiles every binding into per-subject rule lists (cluster-wide from
ClusterRoleBindings, per namespace from RoleBindings) and rebuilds them only when an RBAC object
changed: each request compares the store's revision with the one the index saw and, when it
moved, walks the store's event history since then looking for RBAC kinds (amortized over all
requests: each event is looked at once). Decisions are memoized per index generation.

Matching (as Kubernetes' rbac authorizer): a rule allows when its verbs contain the verb or
``*``, its apiGroups the group or ``*``, its resources ``*``, the resource (``pods``, or
``pods/log`` for a subresource) or ``*/log``, and its resourceNames are empty or name the object.
A RoleBinding grants only in its own namespace. Subjects: User and Group by name; a
ServiceAccount subject is the user ``system:serviceaccount:NS:NAME`` (NS defaulting to the
binding's). Every identity is also in ``system:authenticated``; a service account user is in
``system:serviceaccounts`` and ``system:serviceaccounts:NS``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

from hakube.api.v1 import rbac_pb2
from hakube.apiserver.authz.attributes import Attributes
from hakube.pki import names
from hakube.store.fsm import StoreFSM

RBAC_KINDS = ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
_RBAC_KIND_SET = frozenset(RBAC_KINDS)
SA_PREFIX = "system:serviceaccount:"
MAX_CACHED = 65536
"""Memoized decisions kept per index generation (cleared when full)."""

SubjectKey = tuple[str, str]
"""("u", user) or ("g", group)."""


@dataclass(frozen=True, slots=True)
class Rule:
    """A compiled PolicyRule."""

    verbs: frozenset[str]
    groups: frozenset[str]
    resources: frozenset[str]
    names: frozenset[str]

    @classmethod
    def of(cls, r: rbac_pb2.PolicyRule) -> Rule:
        return cls(
            frozenset(r.verbs),
            frozenset(r.api_groups),
            frozenset(r.resources),
            frozenset(r.resource_names),
        )

    def allows(self, a: Attributes) -> bool:
        if a.verb not in self.verbs and "*" not in self.verbs:
            return False
        if a.group not in self.groups and "*" not in self.groups:
            return False
        res = self.resources
        if "*" not in res:
            if a.subresource:
                if f"{a.resource}/{a.subresource}" not in res and f"*/{a.subresource}" not in res:
                    return False
            elif a.resource not in res:
                return False
        return not self.names or a.name in self.names


@dataclass(frozen=True, slots=True)
class Grant:
    """The rules one binding gives its subjects, and where they come from (for reasons)."""

    rules: tuple[Rule, ...]
    source: str


def subject_keys(user: str, groups: Iterable[str]) -> list[SubjectKey]:
    """The keys an identity is known by, with the implied groups added."""
    keys: list[SubjectKey] = [("u", user)]
    keys.extend(("g", g) for g in groups)
    keys.append(("g", names.AUTHENTICATED_GROUP))
    if user.startswith(SA_PREFIX):
        ns = user[len(SA_PREFIX) :].partition(":")[0]
        keys += [("g", "system:serviceaccounts"), ("g", f"system:serviceaccounts:{ns}")]
    return keys


def _subject_key(s: rbac_pb2.Subject, binding_ns: str) -> SubjectKey | None:
    if s.kind == "User":
        return ("u", s.name)
    if s.kind == "Group":
        return ("g", s.name)
    if s.kind == "ServiceAccount":
        return ("u", f"{SA_PREFIX}{s.namespace or binding_ns}:{s.name}")
    return None


class Compiled:
    """One generation of the index: subject -> grants, cluster-wide and per namespace."""

    def __init__(self) -> None:
        self.cluster: dict[SubjectKey, list[Grant]] = {}
        self.namespaced: dict[str, dict[SubjectKey, list[Grant]]] = {}
        self.names_used = False
        """Some rule has resourceNames (so decisions depend on the object's name)."""

    def add(
        self,
        table: dict[SubjectKey, list[Grant]],
        subjects: Iterable[rbac_pb2.Subject],
        ns: str,
        grant: Grant,
    ) -> None:
        for s in subjects:
            key = _subject_key(s, ns)
            if key is not None:
                table.setdefault(key, []).append(grant)


def compile_store(fsm: StoreFSM) -> Compiled:
    """Read every role and binding from the store replica and compile them."""
    _, roles = fsm.snapshot("Role", None)
    _, cluster_roles = fsm.snapshot("ClusterRole", None)
    _, bindings = fsm.snapshot("RoleBinding", None)
    _, cluster_bindings = fsm.snapshot("ClusterRoleBinding", None)
    role_rules = {
        key: tuple(Rule.of(r) for r in rbac_pb2.Role.FromString(rec.value).rules)
        for key, rec in roles
    }
    cr_rules = {
        key[1]: tuple(Rule.of(r) for r in rbac_pb2.ClusterRole.FromString(rec.value).rules)
        for key, rec in cluster_roles
    }
    out = Compiled()
    for (_, name), rec in cluster_bindings:
        crb = rbac_pb2.ClusterRoleBinding.FromString(rec.value)
        rules = cr_rules.get(crb.role_ref.name)
        if rules:
            out.add(
                out.cluster,
                crb.subjects,
                "",
                Grant(rules, f'ClusterRoleBinding "{name}" of ClusterRole "{crb.role_ref.name}"'),
            )
    for (ns, name), rec in bindings:
        rb = rbac_pb2.RoleBinding.FromString(rec.value)
        ref = rb.role_ref
        if ref.kind == "ClusterRole":
            rules = cr_rules.get(ref.name)
        else:
            rules = role_rules.get((ns, ref.name))
        if rules:
            out.add(
                out.namespaced.setdefault(ns, {}),
                rb.subjects,
                ns,
                Grant(rules, f'RoleBinding "{ns}/{name}" of {ref.kind} "{ref.name}"'),
            )
    out.names_used = any(
        r.names for rules in (*role_rules.values(), *cr_rules.values()) for r in rules
    )
    return out


class RbacIndex:
    """RBAC decisions for one master's store replica (any thread)."""

    def __init__(self, fsm: StoreFSM) -> None:
        self.fsm = fsm
        self._lock = threading.Lock()
        self._rev = -1
        self._state: tuple[Compiled, dict[tuple[object, ...], str | None]] = (Compiled(), {})
        """The compiled index and the decisions memoized for it, replaced together."""
        self.rebuilds = 0
        """How many times the index was compiled (tests and metrics)."""

    def _changed_since(self, rev: int) -> bool:
        """Whether an RBAC object changed after ``rev``: the newest history events, newest
        first, until ``rev`` (what ``StoreFSM.events_since`` walks, without building a list:
        under write load this runs for most requests)."""
        fsm = self.fsm
        with fsm.lock:
            if fsm.revision < rev or rev < fsm.compacted_rev:
                return True  # restored from an older snapshot, or history compacted past rev
            for ev in reversed(fsm.history):
                if ev.rev <= rev:
                    return False
                if ev.kind in _RBAC_KIND_SET:
                    return True
            return False

    def current(self) -> tuple[Compiled, dict[tuple[object, ...], str | None]]:
        """The compiled index (and its decision cache), rebuilt first if an RBAC object
        changed since the last look."""
        rev = self.fsm.revision
        if rev == self._rev:
            return self._state
        with self._lock:
            if rev != self._rev:
                if self._rev < 0 or self._changed_since(self._rev):
                    self._state = (compile_store(self.fsm), {})
                    self.rebuilds += 1
                self._rev = rev
            return self._state

    def why_allowed(self, user: str, groups: tuple[str, ...], a: Attributes) -> str | None:
        """The binding that allows the request, or None when none does."""
        compiled, cache = self.current()
        key = (user, groups, *a.key(compiled.names_used))
        if key in cache:
            return cache[key]
        found = _search(compiled, subject_keys(user, groups), a)
        if len(cache) >= MAX_CACHED:
            cache.clear()
        cache[key] = found
        return found


def _search(compiled: Compiled, keys: list[SubjectKey], a: Attributes) -> str | None:
    tables = [compiled.cluster]
    if a.namespace:
        ns_table = compiled.namespaced.get(a.namespace)
        if ns_table is not None:
            tables.append(ns_table)
    for table in tables:
        for k in keys:
            for grant in table.get(k, ()):
                for rule in grant.rules:
                    if rule.allows(a):
                        return grant.source
    return None
