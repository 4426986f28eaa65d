"""Manifests for the controller tests, as typed messages."""

from __future__ import annotations

from typing import Any

from hakube.api.convert import from_dict


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
