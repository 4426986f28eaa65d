"""The OpsService seen from the CLI: try each given master, find and follow the leader.

Errors come out as one line (``OpsError``) naming what failed and where, never a traceback.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import grpc

from hakube.api.v1 import ops_pb2, ops_pb2_grpc
from hakube.client.config import ENV_SERVER, ConfigError, config_path, read_config_file
from hakube.pki.tls import channel_credentials

T = TypeVar("T")


class OpsError(Exception):
    """One-line failure for the user."""


def split_servers(text: str) -> list[str]:
    """The masters to ask: ``--server`` (or $HAKUBE_SERVER), else the client config's."""
    servers = [s.strip() for s in (text or os.environ.get(ENV_SERVER, "")).split(",")
               if s.strip()]
    if not servers:
        try:
            servers = list(read_config_file(config_path()).servers)
        except ConfigError:
            servers = []
    if not servers:
        raise OpsError("no master given: use --server HOST:PORT[,HOST:PORT...] (env HAKUBE_SERVER)")
    return servers


@functools.lru_cache(maxsize=1)
def _channel_credentials() -> grpc.ChannelCredentials:
    """The client config's CA and certificate: the OpsService requires them like the rest
    of the API."""
    try:
        return channel_credentials(read_config_file(config_path()).credentials())
    except ConfigError as exc:
        raise OpsError(str(exc)) from exc


def _describe(exc: grpc.RpcError) -> str:
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    return f"{code.name if code else 'error'}: {details}"


def first(
    servers: list[str], fn: Callable[[ops_pb2_grpc.OpsServiceStub], T], timeout: float
) -> tuple[str, T]:
    """Call ``fn`` on the first master that answers; (its address, the answer)."""
    errors = []
    for server in servers:
        # A private subchannel pool: in a long-lived process gRPC would otherwise share the
        # reconnect backoff of an address that was down a moment ago.
        options = [
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
            ("grpc.use_local_subchannel_pool", 1),
        ]
        with grpc.secure_channel(server, _channel_credentials(), options=options) as ch:
            try:
                return server, fn(ops_pb2_grpc.OpsServiceStub(ch))
            except grpc.RpcError as exc:
                if exc.code() not in (
                    grpc.StatusCode.UNAVAILABLE,
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                ):
                    raise OpsError(f"{server}: {_describe(exc)}") from exc
                errors.append(f"{server}: {_describe(exc)}")
    raise OpsError("no master answered (" + "; ".join(errors) + ")")


def list_members(servers: list[str], timeout: float) -> ops_pb2.ListMembersResponse:
    """The member list, from the leader when it can be reached (only it knows lag and last
    contact), else from the first master that answers."""
    _, resp = first(
        servers, lambda s: s.ListMembers(ops_pb2.ListMembersRequest(), timeout=timeout), timeout
    )
    leader = leader_api(resp)
    if leader and resp.answered_by != resp.leader:
        try:
            _, resp = first(
                [leader],
                lambda s: s.ListMembers(ops_pb2.ListMembersRequest(), timeout=timeout),
                timeout,
            )
        except OpsError:
            pass
    return resp


def leader_api(resp: ops_pb2.ListMembersResponse) -> str:
    for m in resp.members:
        if m.name == resp.leader and m.api_address:
            return str(m.api_address)
    return ""


def on_leader(
    servers: list[str], fn: Callable[[ops_pb2_grpc.OpsServiceStub], T], timeout: float
) -> T:
    """Call ``fn`` on the current leader, following a leader change a few times."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        resp = list_members(servers, timeout)
        leader = leader_api(resp)
        if not leader:
            last = "no leader known (is a majority of masters up?)"
            time.sleep(0.2)
            continue
        try:
            return first([leader], fn, timeout)[1]
        except OpsError as exc:
            last = str(exc)
            if "is not the leader" not in last and "UNAVAILABLE" not in last:
                raise
            time.sleep(0.2)
    raise OpsError(last or f"no leader within {timeout:g}s")


def stream(stub: ops_pb2_grpc.OpsServiceStub, timeout: float) -> Iterator[bytes]:
    for chunk in stub.SaveSnapshot(ops_pb2.SaveSnapshotRequest(), timeout=timeout):
        yield chunk.data
