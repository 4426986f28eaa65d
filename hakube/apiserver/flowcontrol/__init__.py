"""API priority and fairness for the masters' API server (after Kubernetes APF): see
``config`` (levels and flow schemas), ``fairqueue`` (seats and shuffle-sharded queues) and
``controller`` (classification, admission, per-client stream caps)."""

from hakube.apiserver.flowcontrol.config import FlowSchema, PriorityLevel, Settings
from hakube.apiserver.flowcontrol.controller import (
    RETRY_AFTER_KEY,
    FlowControl,
    TooBusy,
    TooManyStreams,
)

__all__ = [
    "RETRY_AFTER_KEY",
    "FlowControl",
    "FlowSchema",
    "PriorityLevel",
    "Settings",
    "TooBusy",
    "TooManyStreams",
]
