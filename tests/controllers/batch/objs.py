"""Manifests and small helpers for the controller tests."""

from __future__ import annotations

from typing import Any

from hakube.api.convert import from_dict
from hakube.client import Client, errors


def manifest(kind: str, name: str, spec: dict[str, Any], **meta: Any) -> Any:
    """A typed ``kind`` object named ``name`` in namespace default."""
    return from_dict({"kind": kind, "metadata": {"name": name, **meta}, "spec": spec})


def container(name: str = "c", **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "img:1", **extra}


def template(labels: dict[str, str], restart: str = "Always", **spec: Any) -> dict[str, Any]:
    """A pod template with one container."""
    return {
        "metadata": {"labels": labels},
        "spec": {"containers": [container()], "restartPolicy": restart, **spec},
    }


def leader(client: Client) -> str:
    """The identity holding the controller-manager lease ("" when none)."""
    try:
        lease = client.leases.get("hakube-controller-manager", namespace="kube-system")
    except errors.NotFound:
        return ""
    return lease.spec.holder_identity


def condition(obj: Any, type_: str) -> Any:
    """The condition ``type_`` with status True, or None."""
    return next((c for c in obj.status.conditions if c.type == type_ and c.status == "True"), None)


def update_spec(resource: Any, obj: Any) -> Any:
    """Write ``obj``'s spec/metadata without a resourceVersion precondition: a controller
    writing the status meanwhile must not make the test's update fail."""
    obj.metadata.resource_version = ""
    return resource.update(obj)
