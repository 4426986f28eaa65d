"""The authorizer the API server consults for every request, after authentication.

Order, as Kubernetes' ``--authorization-mode=Node,RBAC`` with ``system:masters`` in front:

1. ``system:masters`` may do anything (the admin; it cannot be locked out by RBAC objects).
2. Node identities (``system:node:NAME`` in ``system:nodes``): node restriction may refuse a
   write outright; the node authorizer may allow (hakube.apiserver.authz.node).
3. RBAC (hakube.apiserver.authz.rbac) over the roles and bindings in the store, and for writes
   of roles and bindings, escalation prevention (hakube.apiserver.authz.escalation).
4. Otherwise PERMISSION_DENIED, with one line naming the user, verb, resource and namespace.

``mode="AlwaysAllow"`` skips all of it (any authenticated caller may do anything): for
measuring what authorization costs, never for a real cluster; the master logs a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from hakube.apiserver.authz import escalation
from hakube.apiserver.authz.attributes import Attributes
from hakube.apiserver.authz.node import Decision, NodeAuthorizer, Refused
from hakube.apiserver.authz.rbac import RbacIndex
from hakube.apiserver.errors import Forbidden
from hakube.pki import names
from hakube.pki.certs import Identity
from hakube.store.fsm import StoreFSM

log = logging.getLogger(__name__)

MODES = ("RBAC", "AlwaysAllow")


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    reason: str
    """What allowed it, or the denial message."""


def denial(user: str, a: Attributes) -> str:
    """``user "alice" cannot create pods in namespace "dev"`` (Kubernetes' wording, shorter)."""
    what = (
        a.full_resource
        if a.group in ("", "apps", "batch")
        else f"{a.full_resource} (group {a.group})"
    )
    named = f' "{a.name}"' if a.name else ""
    where = f'in namespace "{a.namespace}"' if a.namespace else "at the cluster scope"
    return f'user "{user}" cannot {a.verb} {what}{named} {where}'


class Authorizer:
    """Decides requests for one master (any thread)."""

    def __init__(self, fsm: StoreFSM, mode: str = "RBAC") -> None:
        if mode not in MODES:
            raise ValueError(f'authorization mode "{mode}" must be one of {", ".join(MODES)}')
        self.mode = mode
        self.fsm = fsm
        self.rbac = RbacIndex(fsm)
        self.nodes = NodeAuthorizer(fsm)

    def decide(self, user: str, groups: tuple[str, ...], a: Attributes) -> Verdict:
        if self.mode == "AlwaysAllow":
            return Verdict(True, "authorization is off (AlwaysAllow)")
        if names.ADMINS_GROUP in groups:
            return Verdict(True, f'member of "{names.ADMINS_GROUP}"')
        node = names.node_name(user)
        if node is not None and names.NODES_GROUP in groups:
            try:
                if self.nodes.decide(node, a) is Decision.ALLOW:
                    return Verdict(True, f'node authorizer: node "{node}" may')
            except Refused as exc:
                return Verdict(False, str(exc))
        source = self.rbac.why_allowed(user, groups, a)
        if source is not None:
            refused = escalation.refusal(self.rbac, self.fsm, user, groups, a)
            if refused is not None:
                return Verdict(False, refused)
            return Verdict(True, f"RBAC: allowed by {source}")
        return Verdict(False, denial(user, a))

    def check(self, identity: Identity, a: Attributes) -> None:
        """Return if allowed; Forbidden (PERMISSION_DENIED) with the denial otherwise."""
        verdict = self.decide(identity.user, tuple(identity.groups), a)
        if not verdict.allowed:
            raise Forbidden(verdict.reason)
