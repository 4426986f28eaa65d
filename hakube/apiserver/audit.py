"""The audit log: one JSON line per API request, who did what and how it ended.

A record holds the time, an audit id (and the client's request id when it sent one), the
authenticated user and groups, the verb, resource, namespace and name, the final gRPC status
code and the latency in milliseconds. Request and response bodies are never logged (so no Secret
value can reach the log); the only levels are ``None`` (not logged) and ``Metadata``.

Which requests are logged is decided by a policy in the shape of Kubernetes' ``audit.k8s.io/v1``
Policy: rules matched in order on users, userGroups, verbs, resources and namespaces; the first
match decides the level; no match means None. The default policy (``DEFAULT_POLICY``) logs
everything at Metadata except high-rate noise: reads of leases and events, store-lease
keepalives and lease renewals by nodes and the control-plane components.

Threading: ``record`` runs on the API server's event loop; it builds a small dict and puts it
on a queue. A writer thread turns records into JSON, appends them to the file and rotates it
by size (``path`` -> ``path.1`` -> ... ``path.N``, oldest dropped), so slow disks never stall
the loop. Files are created 0600.
"""

from __future__ import annotations

import datetime
import itertools
import json
import logging
import os
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import yaml

from hakube.api import kinds as kinds_mod
from hakube.apiserver import authn
from hakube.settings import setting

log = logging.getLogger("hakube.audit")

LEVELS = ("None", "Metadata")
VERBS = {
    "Create": "create",
    "Get": "get",
    "Update": "update",
    "UpdateStatus": "update",
    "Delete": "delete",
    "List": "list",
    "Watch": "watch",
    "Bind": "create",
    "LeaseGrant": "grant",
    "LeaseKeepAlive": "keepalive",
    "LeaseRevoke": "revoke",
}
"""API method -> audit verb (Kubernetes verbs where one exists; other methods: lowercase)."""

DEFAULT_POLICY: dict[str, Any] = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "rules": [
        {
            "level": "None",
            "verbs": ["get", "list", "watch"],
            "resources": [{"resources": ["leases", "events"]}],
        },
        {"level": "None", "verbs": ["keepalive"]},
        {
            "level": "None",
            "verbs": ["update"],
            "resources": [{"resources": ["leases"]}],
            "userGroups": ["system:nodes"],
        },
        {
            "level": "None",
            "verbs": ["update"],
            "resources": [{"resources": ["leases"]}],
            "users": ["system:kube-scheduler", "system:kube-controller-manager"],
        },
        {"level": "Metadata"},
    ],
}


class AuditError(Exception):
    """The audit settings or policy cannot be used; the message names the file and field."""


@dataclass
class AuditSettings:
    """Audit log settings (flags ``--audit-log-path`` and friends)."""

    path: str = setting("", flag="audit-log-path")
    """Append one JSON line per API request to this file (empty: no audit log)."""
    max_size_mb: int = setting(100, flag="audit-log-maxsize", minimum=1)
    """Rotate the audit log when it would grow past this many MiB."""
    max_backups: int = setting(10, flag="audit-log-maxbackups", minimum=0)
    """Rotated audit logs kept (path.1 is the newest)."""
    policy_file: str = setting("", flag="audit-policy-file")
    """An audit.k8s.io/v1 Policy file (levels None/Metadata; empty: Metadata for everything
    but lease/event reads and lease renewals)."""


@dataclass
class Rule:
    level: str
    users: frozenset[str] = field(default_factory=frozenset)
    groups: frozenset[str] = field(default_factory=frozenset)
    verbs: frozenset[str] = field(default_factory=frozenset)
    resources: frozenset[str] = field(default_factory=frozenset)
    namespaces: frozenset[str] = field(default_factory=frozenset)

    def matches(
        self, user: str, groups: tuple[str, ...], verb: str, resource: str, namespace: str
    ) -> bool:
        return (
            (not self.users or user in self.users)
            and (not self.groups or not self.groups.isdisjoint(groups))
            and (not self.verbs or verb in self.verbs)
            and (not self.resources or resource in self.resources or "*" in self.resources)
            and (not self.namespaces or namespace in self.namespaces)
        )


_RULE_KEYS = {
    "level",
    "users",
    "userGroups",
    "verbs",
    "resources",
    "namespaces",
    "omitStages",
    "nonResourceURLs",
}


def _names(raw: dict[str, Any], key: str, where: str) -> frozenset[str]:
    value = raw.get(key) or []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise AuditError(f"{where}.{key}: must be a list of strings")
    return frozenset(value)


def parse_policy(doc: Any, path: str) -> list[Rule]:
    """Rules of an audit Policy document; AuditError names the bad field."""
    if not isinstance(doc, dict) or doc.get("kind") != "Policy":
        raise AuditError(f"audit policy {path}: kind: must be Policy")
    if doc.get("apiVersion") != "audit.k8s.io/v1":
        raise AuditError(f"audit policy {path}: apiVersion: must be audit.k8s.io/v1")
    raw_rules = doc.get("rules")
    if not isinstance(raw_rules, list):
        raise AuditError(f"audit policy {path}: rules: required: a list")
    rules = []
    for i, raw in enumerate(raw_rules):
        where = f"audit policy {path}: rules[{i}]"
        if not isinstance(raw, dict):
            raise AuditError(f"{where}: must be a mapping")
        unknown = set(raw) - _RULE_KEYS
        if unknown:
            raise AuditError(f"{where}: unknown field {sorted(unknown)[0]!r}")
        level = raw.get("level")
        if level not in LEVELS:
            raise AuditError(
                f"{where}.level: {level!r} is not supported (None, Metadata: "
                "request and response bodies are never logged)"
            )

        resources: set[str] = set()
        groups_of = raw.get("resources") or []
        if not isinstance(groups_of, list):
            raise AuditError(f"{where}.resources: must be a list of {{group, resources}}")
        for j, g in enumerate(groups_of):
            if not isinstance(g, dict) or not isinstance(g.get("resources", []), list):
                raise AuditError(f"{where}.resources[{j}]: must be {{group, resources: [...]}}")
            resources.update(str(r) for r in g.get("resources", []))
        rules.append(
            Rule(
                level=level,
                users=_names(raw, "users", where),
                groups=_names(raw, "userGroups", where),
                verbs=_names(raw, "verbs", where),
                resources=frozenset(resources),
                namespaces=_names(raw, "namespaces", where),
            )
        )
    return rules


def load_policy(path: str) -> list[Rule]:
    if not path:
        return parse_policy(DEFAULT_POLICY, "(default)")
    try:
        with open(path) as f:
            doc = yaml.safe_load(f)
    except OSError as exc:
        raise AuditError(f"audit policy {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise AuditError(f"audit policy {path}: not YAML: {exc}") from exc
    return parse_policy(doc, path)


def _target(req: Any) -> tuple[str, str, str]:
    """(resource, namespace, name) of a request, read from its fields (never its body)."""
    kind_word, ns, name = "", "", ""
    obj = getattr(req, "object", None)
    if obj is not None and hasattr(obj, "WhichOneof"):
        oneof = obj.WhichOneof("kind")
        if oneof:
            meta = getattr(obj, oneof).metadata
            kind_word, ns, name = oneof, meta.namespace, meta.name or meta.generate_name
    else:
        kind_word = str(getattr(req, "kind", "") or "")
        ns = str(getattr(req, "namespace", "") or "")
        name = str(getattr(req, "name", "") or "")
    if type(req).__name__ == "BindRequest":
        return "pods/binding", ns, name
    resource = _RESOURCES.get(kind_word)
    if resource is None:
        kind = kinds_mod.lookup(kind_word) if kind_word else None
        resource = kind.plural if kind is not None else kind_word.lower()
        if len(_RESOURCES) < 1024:  # words come from clients: bound the cache
            _RESOURCES[kind_word] = resource
    return resource, ns, name


_RESOURCES: dict[str, str] = {}
"""Kind word of a request -> resource (plural), as looked up once."""


class AuditLog:
    """Policy plus a background writer; ``record`` is cheap and never blocks on the disk."""

    def __init__(self, settings: AuditSettings) -> None:
        if settings.max_size_mb < 1 or settings.max_backups < 0:
            raise AuditError(
                "--audit-log-maxsize must be >= 1 (MiB) and --audit-log-maxbackups >= 0"
            )
        self.settings = settings
        self.rules = load_policy(settings.policy_file)
        self.max_bytes = settings.max_size_mb * 1024 * 1024
        self.written = 0
        """Records written (tests, metrics)."""
        self.dropped = 0
        """Records dropped because the writer fell too far behind."""
        self._ids = itertools.count(1)
        self._id_prefix = uuid.uuid4().hex[:12]
        """Audit ids are this process's random prefix and a counter: unique, and cheaper
        than a uuid per request."""
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=100_000)
        try:
            self._file = self._open()
        except OSError as exc:
            raise AuditError(f"audit log {settings.path}: {exc.strerror}") from exc
        self._thread = threading.Thread(target=self._run, name="audit-writer", daemon=True)
        self._thread.start()

    def _open(self) -> Any:
        path = self.settings.path
        os.makedirs(os.path.dirname(os.path.abspath(path)), mode=0o700, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return os.fdopen(fd, "a", buffering=1 << 16, encoding="utf-8")

    def level(
        self, user: str, groups: tuple[str, ...], verb: str, resource: str, namespace: str
    ) -> str:
        for rule in self.rules:
            if rule.matches(user, groups, verb, resource, namespace):
                return rule.level
        return "None"

    def record(self, method: str, req: Any, code: str, seconds: float) -> None:
        """Log one finished request (on the loop: only the policy check and a queue put)."""
        identity = authn.current.get(None)
        user = identity.user if identity is not None else "system:anonymous"
        groups = tuple(identity.groups) if identity is not None else ()
        verb = VERBS.get(method) or method.lower()
        resource, ns, name = _target(req) if req is not None else ("", "", "")
        if self.level(user, groups, verb, resource, ns) == "None":
            return
        entry = {
            "time": time.time(),
            "auditID": f"{self._id_prefix}-{next(self._ids):x}",
            "requestID": str(getattr(req, "request_id", "") or ""),
            "user": user,
            "groups": list(groups),
            "verb": verb,
            "method": method,
            "resource": resource,
            "namespace": ns,
            "name": name,
            "code": code,
            "latencyMs": round(seconds * 1000, 3),
        }
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while True:
            entry = self._queue.get()
            if entry is None:
                self._file.close()
                return
            entry["time"] = datetime.datetime.fromtimestamp(entry["time"], datetime.UTC).isoformat(
                timespec="milliseconds"
            )
            line = json.dumps(entry, separators=(",", ":")) + "\n"
            try:
                if self._file.tell() + len(line) > self.max_bytes:
                    self._rotate()
                self._file.write(line)
                self.written += 1
                if self._queue.empty():
                    self._file.flush()
            except OSError:
                self.dropped += 1

    def _rotate(self) -> None:
        self._file.close()
        path, keep = self.settings.path, self.settings.max_backups
        if keep == 0:
            os.unlink(path)
        else:
            for i in range(keep - 1, 0, -1):
                if os.path.exists(f"{path}.{i}"):
                    os.replace(f"{path}.{i}", f"{path}.{i + 1}")
            os.replace(path, f"{path}.1")
        self._file = self._open()

    def flush(self, timeout: float = 5.0) -> None:
        """Wait until every queued record is written (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        while not self._queue.empty() and time.monotonic() < deadline:
            time.sleep(0.005)

    def close(self) -> None:
        """Write what is queued and stop the writer (idempotent). The writer closes the file
        itself when it has written the queue: closing it here after a bounded join lost the
        records still queued (and raised in the writer) when the machine was slow."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(60)
            if self._thread.is_alive():
                log.warning("audit log %s: writer still draining after 60s", self.settings.path)
