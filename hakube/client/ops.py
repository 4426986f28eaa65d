"""The OpsService (members, leadership, snapshots) as a client.

It rides on the object client's ``Transport``: the same TLS identity from the client config,
the same endpoint failover (any master answers a read; an unreachable one is skipped) and the
same mapping of gRPC failures to ``hakube.client.errors``. What is particular to ops is the
leader: membership changes must reach the Raft leader, so ``on_leader`` asks any master who
leads and sends the call there, following a leader change until the deadline.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import grpc

from hakube.api.v1 import ops_pb2, ops_pb2_grpc
from hakube.client import errors
from hakube.client.config import ENV_SERVER, ConfigError, config_path, read_config_file
from hakube.client.transport import RetryPolicy, Stubs, Transport
from hakube.pki import tls

T = TypeVar("T")
OpsCall = Callable[[ops_pb2_grpc.OpsServiceStub, float], T]
"""``fn(stub, attempt_timeout)``: one RPC on one master."""


def split_servers(text: str) -> list[str]:
    """The masters to ask: ``--server`` (or $HAKUBE_SERVER), else the client config's."""
    servers = [s.strip() for s in (text or os.environ.get(ENV_SERVER, "")).split(",") if s.strip()]
    if not servers:
        try:
            servers = list(read_config_file(config_path()).servers)
        except ConfigError:
            servers = []
    if not servers:
        raise errors.HakubeError(
            "no master given: use --server HOST:PORT[,HOST:PORT...] (env HAKUBE_SERVER)"
        )
    return servers


def _config_credentials() -> tls.Credentials:
    """The client config's CA and certificate: the OpsService requires them like the rest of
    the API."""
    try:
        return read_config_file(config_path()).credentials()
    except ConfigError as exc:
        raise errors.HakubeError(str(exc)) from exc


def leader_api(resp: ops_pb2.ListMembersResponse) -> str:
    """The API address of the leader the answer names, or ""."""
    for m in resp.members:
        if m.name == resp.leader and m.api_address:
            return str(m.api_address)
    return ""


def _not_leader(exc: errors.HakubeError) -> bool:
    """The master asked is no longer (or not yet) the leader: ask again who is."""
    if isinstance(exc, errors.Unavailable):
        return True
    return exc.code == grpc.StatusCode.FAILED_PRECONDITION and "is not the leader" in str(exc)


class OpsClient:
    """Ops calls against a list of masters. ``timeout`` bounds every call (retries and leader
    changes included); one attempt may use all of it (a snapshot stream can be long)."""

    def __init__(
        self,
        servers: str | Sequence[str],
        *,
        timeout: float = 30.0,
        credentials: tls.Credentials | None = None,
    ) -> None:
        self.timeout = timeout
        policy = RetryPolicy(
            timeout=timeout, attempt_timeout=timeout, unreachable_timeout=min(5.0, timeout)
        )
        self.transport = Transport(
            servers, credentials=credentials or _config_credentials(), policy=policy
        )

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> OpsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(
        self, fn: OpsCall[T], *, what: str, endpoint: str | None = None, once: bool = False
    ) -> tuple[str, T]:
        """``fn`` on the first master that answers (or on ``endpoint``); (that master, the
        answer). ``once``: a single attempt, for callers with a loop of their own."""

        def attempt(stubs: Stubs, t: float) -> tuple[str, T]:
            return stubs.endpoint, fn(stubs.ops, t)

        return self.transport.call(attempt, what=what, endpoint=endpoint, once=once)

    def list_members(self) -> ops_pb2.ListMembersResponse:
        """The member list, from the leader when it can be reached (only it knows lag and
        last contact), else from the first master that answers."""

        def fn(stub: ops_pb2_grpc.OpsServiceStub, t: float) -> ops_pb2.ListMembersResponse:
            resp: ops_pb2.ListMembersResponse = stub.ListMembers(
                ops_pb2.ListMembersRequest(), timeout=t
            )
            return resp

        _, resp = self.call(fn, what="list members")
        leader = leader_api(resp)
        if leader and resp.answered_by != resp.leader:
            try:
                _, resp = self.call(fn, what="list members", endpoint=leader, once=True)
            except errors.HakubeError:
                pass
        return resp

    def on_leader(self, fn: OpsCall[T], *, what: str) -> T:
        """``fn`` on the current leader, following a leader change until the deadline."""
        deadline = time.monotonic() + self.timeout
        last = ""
        while time.monotonic() < deadline:
            leader = leader_api(self.list_members())
            if not leader:
                last = f"{what}: no leader known (is a majority of masters up?)"
                time.sleep(0.2)
                continue
            try:
                return self.call(fn, what=what, endpoint=leader, once=True)[1]
            except errors.HakubeError as exc:
                if not _not_leader(exc):
                    raise
                last = f"{what}: {exc}"
                time.sleep(0.2)
        raise errors.Unavailable(last or f"{what}: no leader within {self.timeout:g}s")

    def save_snapshot(self) -> tuple[str, bytes]:
        """A snapshot streamed from the first master that answers; (that master, the bytes)."""

        def fn(stub: ops_pb2_grpc.OpsServiceStub, t: float) -> bytes:
            req = ops_pb2.SaveSnapshotRequest()
            return b"".join(chunk.data for chunk in stub.SaveSnapshot(req, timeout=t))

        return self.call(fn, what="save snapshot")
