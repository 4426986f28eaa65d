"""Python client for hakube: verbs that fail over between masters, watches, informers.

Everything a program needs is importable from here; ``tests/client/test_public_api.py`` keeps
``__all__`` and what the module exports from drifting apart.

    from hakube.client import Client, NotFound
    with Client.from_config() as c:           # ~/.hakube/config, as written by `hakube up`
        print([p.metadata.name for p in c.pods.list().items])
"""

from hakube.client.apply import ApplyResult
from hakube.client.base import DeleteResult, ObjectList, resolve_kind
from hakube.client.client import Client, new_request_id
from hakube.client.config import ClientConfig, ConfigError, load_client_config
from hakube.client.errors import (
    AlreadyExists,
    Conflict,
    Forbidden,
    Gone,
    HakubeError,
    Invalid,
    NotFound,
    OutcomeUnknown,
    ServerError,
    TooLarge,
    TooManyRequests,
    Unavailable,
)
from hakube.client.informer import Informer
from hakube.client.resources import Resource
from hakube.client.transport import RetryPolicy
from hakube.client.watch import ADDED, BOOKMARK, DELETED, MODIFIED, RELIST, Watch, WatchEvent

__all__ = [
    "ADDED",
    "BOOKMARK",
    "DELETED",
    "MODIFIED",
    "RELIST",
    "AlreadyExists",
    "ApplyResult",
    "Client",
    "ClientConfig",
    "ConfigError",
    "Conflict",
    "DeleteResult",
    "Forbidden",
    "Gone",
    "HakubeError",
    "Informer",
    "Invalid",
    "NotFound",
    "ObjectList",
    "OutcomeUnknown",
    "Resource",
    "RetryPolicy",
    "ServerError",
    "TooLarge",
    "TooManyRequests",
    "Unavailable",
    "Watch",
    "WatchEvent",
    "load_client_config",
    "new_request_id",
    "resolve_kind",
]
