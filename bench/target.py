"""What a system under test must offer the store benchmark: the plug-in point for hakube.

The benchmark compares systems side by side in one run, with the same client process and the
same load driver, so each system is reached only through these three small protocols:

- ``Target``: one client connection that can write a key. The load scenarios drive it.
- ``Cluster``: a running three-member deployment that hands out targets bound to a member and can
  kill and restart members. The failover scenario needs it.
- ``System``: a factory that starts a ``Cluster`` with a given durability setting and tears it
  down afterwards.

etcd implements them in ``bench.etcd_cluster``. hakube will implement them over its own
three-master cluster and gRPC API (a ``System`` named ``"hakube"``, registered in
``bench.bench_store.SYSTEMS``); nothing here assumes anything about that API beyond "a client can
write a key and a value".

Member names are opaque strings chosen by the cluster ("e1", "m2", ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import grpc

from hakube.pki.tls import Credentials, channel_credentials


class Target(Protocol):
    """One client of one system, driven by the load generator from a single event loop.

    Life cycle: ``setup()`` once, then any number of concurrent ``put()`` calls, then
    ``close()`` once. ``put`` returns only when the write is acknowledged by the system with its
    configured durability, and raises any exception on failure (the driver counts it as an
    error by type name and goes on). Keys are distinct per operation unless a scenario says
    otherwise.
    """

    name: str
    """System name shown in reports, e.g. ``"etcd"`` or ``"hakube"``."""

    async def setup(self) -> None:
        """Open connections; the first put should not pay for connecting."""
        ...

    async def put(self, key: str, value: bytes) -> None:
        """Write ``value`` under ``key`` and wait for the acknowledgement."""
        ...

    async def close(self) -> None:
        """Release connections; idempotent."""
        ...


class Cluster(Protocol):
    """A running three-member deployment of one system."""

    @property
    def members(self) -> Sequence[str]:
        """Names of all members, alive or not."""
        ...

    def target(self, member: str) -> Target:
        """A new, not yet set up, target that talks to ``member`` only (no client failover)."""
        ...

    async def leader(self) -> str:
        """The member the live members agree is the Raft leader; waits for one to exist."""
        ...

    async def kill(self, member: str) -> None:
        """SIGKILL the member's process (one this cluster started) and reap it."""
        ...

    async def restart(self, member: str) -> None:
        """Start a killed member again on its old data and wait until the cluster is healthy."""
        ...


class System(Protocol):
    """A way to start clusters of one system."""

    name: str
    """Report column, e.g. ``"etcd"``."""

    version: str
    """Version recorded with the figures, e.g. ``"3.4.23"``."""

    fsync_modes: Sequence[bool]
    """Durability settings this system can run with: True = fsync before acknowledging.

    A system that cannot fsync (pysyncobj never does) lists only False, and the fsync rows of
    the report show nothing for it.
    """

    def cluster(self, *, fsync: bool) -> AbstractAsyncContextManager[Cluster]:
        """Start three members and wait until they elect a leader; stop them all on exit."""
        ...


def aio_channel(endpoint: str, credentials: Credentials | None) -> grpc.aio.Channel:
    """The channel every gRPC target opens: TLS that verifies the server against
    ``credentials.ca`` and presents ``credentials``' client certificate, or plaintext for None.
    One helper, so the systems compared differ only in their servers, not in their clients."""
    if credentials is None:
        return grpc.aio.insecure_channel(endpoint)
    return grpc.aio.secure_channel(endpoint, channel_credentials(credentials))
