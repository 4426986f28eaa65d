"""Who is who: the user names and groups hakube's certificates carry (subject CN and O).

Kubernetes' conventions where a Kubernetes component has the same job, so that RBAC rules and
audit logs read the same: ``system:kube-scheduler``, ``system:kube-controller-manager``,
``system:kube-proxy``, ``system:node:<name>`` in ``system:nodes``, the admin in
``system:masters``. Masters are ``system:hakube-master:<name>`` in ``system:hakube-masters``: the
same certificate serves the API, authenticates the master to its Raft peers, and is the client
identity masters use towards node agents.
"""

from __future__ import annotations

MASTER_PREFIX = "system:hakube-master:"
MASTERS_GROUP = "system:hakube-masters"
NODE_PREFIX = "system:node:"
NODES_GROUP = "system:nodes"
ADMIN_USER = "hakube-admin"
ADMINS_GROUP = "system:masters"
SCHEDULER_USER = "system:kube-scheduler"
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"
PROXY_USER = "system:kube-proxy"
DNS_USER = "system:hakube-dns"
BOOTSTRAP_PREFIX = "system:bootstrap:"
BOOTSTRAPPERS_GROUP = "system:bootstrappers"
AUTHENTICATED_GROUP = "system:authenticated"
PROMETHEUS_USER = "system:hakube-prometheus"
MONITORING_GROUP = "system:monitoring"
"""Who may read the HTTPS metrics endpoints (with the admins and the masters): a scraper's
certificate carries this group, and nothing else -- it is no API identity with any role."""


def master_user(name: str) -> str:
    return MASTER_PREFIX + name


def master_name(user: str) -> str | None:
    """The member name in a master's user name, or None if ``user`` is not a master."""
    if user.startswith(MASTER_PREFIX) and len(user) > len(MASTER_PREFIX):
        return user[len(MASTER_PREFIX) :]
    return None


def node_user(name: str) -> str:
    return NODE_PREFIX + name


def node_name(user: str) -> str | None:
    """The node name in a node's user name, or None if ``user`` is not a node."""
    if user.startswith(NODE_PREFIX) and len(user) > len(NODE_PREFIX):
        return user[len(NODE_PREFIX) :]
    return None
