"""Endpoints, channels and the retry loop every unary call goes through.

Any master serves any call (writes reach the Raft leader inside the cluster), so the client
needs no leader tracking: it sticks to one endpoint while it works and moves to the next one when
that endpoint fails. A call is retried when the failure says nothing about the request itself:

- UNAVAILABLE: connection refused or lost, no quorum, no leader, or a write whose outcome the
  master could not learn ("outcome unknown");
- DEADLINE_EXCEEDED of one attempt (a hung or partitioned master) while the call's own deadline
  still has time left;
- RESOURCE_EXHAUSTED with a retry hint (``retry-after-ms`` in the trailing metadata): the
  master's API priority and fairness refused the request before running it (so it was not
  applied). The client sleeps the hint plus up to as much again (jitter, so refused clients do
  not return in step) and retries on the *same* master: every master's writes end at the one
  Raft leader, so moving to another adds no capacity and would carry the whole herd along; and
  the refusal says the master is alive. Kubernetes' clients treat 429 + Retry-After the same.
  When the deadline leaves no room for the pause, the call fails with TooManyRequests.

Other retries sleep a jittered, exponentially growing pause (full jitter: uniform in [0, base *
2^n], capped) so a herd of clients does not hammer the new leader in step. Writes are made safe
to retry by their request id, fixed once per logical call by the caller (see client.py); this
module only reports, on the error it finally raises, whether an earlier attempt may have been
applied (``HakubeError.retried``).

Threading: a Transport is shared by all threads of a program; channel creation is locked, gRPC
channels are thread-safe, and the endpoint rotation is a benign race (two threads failing at once
may skip an endpoint, which costs one attempt).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import grpc

from hakube.api.v1 import api_pb2_grpc, nodeproxy_pb2_grpc, ops_pb2_grpc
from hakube.client import apiwarnings, errors
from hakube.pki import certs, tls

T = TypeVar("T")
log = logging.getLogger("hakube.client.transport")

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
CHANNEL_OPTIONS: list[tuple[str, int]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # A restarted master should be usable again within a second, not after gRPC's default
    # reconnect backoff (which grows to two minutes).
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]

OWN_SUBCHANNELS = "grpc.use_local_subchannel_pool"
"""Channel option: connections of this channel only (see ``Transport(own_connection=True)``)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how hard one logical call tries before giving up."""

    timeout: float = 30.0
    """Seconds a call may take in total, retries included. Leader failover after a kill -9 takes
    about 2 s, so the default rides out several failovers."""
    attempt_timeout: float = 8.0
    """Seconds one attempt may take. Above the master's own 5 s proposal timeout, so a master
    that is alive reports "outcome unknown" itself rather than the client guessing."""
    backoff_base: float = 0.05
    """First retry pause bound, in seconds; it doubles per retry."""
    backoff_cap: float = 1.0
    """Largest retry pause bound, in seconds."""
    unreachable_timeout: float = 10.0
    """Give up early when no endpoint has accepted a connection for this long: a cluster that
    is down (or a wrong address) fails in seconds, while a failover, where the survivors keep
    accepting connections, still gets the whole ``timeout``."""

    def validate(self) -> None:
        if self.timeout <= 0:
            raise ValueError(f"timeout ({self.timeout}) must be > 0 seconds")
        if self.attempt_timeout <= 0:
            raise ValueError(f"attempt timeout ({self.attempt_timeout}) must be > 0 seconds")
        if self.unreachable_timeout <= 0:
            raise ValueError(
                f"unreachable timeout ({self.unreachable_timeout}) must be > 0 seconds"
            )
        if not 0 <= self.backoff_base <= self.backoff_cap:
            raise ValueError(
                f"backoff base ({self.backoff_base}) must be between 0 and the cap "
                f"({self.backoff_cap})"
            )

    def pause(self, retry: int) -> float:
        """The jittered pause before retry number ``retry`` (0-based)."""
        return random.uniform(0, min(self.backoff_cap, self.backoff_base * (2 ** min(retry, 30))))


def parse_endpoints(value: str | Sequence[str]) -> list[str]:
    """``"a:1,b:2"`` or ``["a:1", "b:2"]`` -> ["a:1", "b:2"]; ValueError explains a bad one."""
    items = value.split(",") if isinstance(value, str) else list(value)
    out: list[str] = []
    for raw in items:
        ep = str(raw).strip()
        if not ep:
            continue
        for prefix in ("grpc://", "http://", "dns:///"):
            if ep.startswith(prefix):
                ep = ep[len(prefix) :]
        host, sep, port = ep.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f'endpoint "{raw}" is not HOST:PORT')
        if ep not in out:
            out.append(ep)
    if not out:
        raise ValueError("no endpoints given: pass at least one master address HOST:PORT")
    return out


class Stubs:
    """The service stubs of one endpoint."""

    def __init__(self, endpoint: str, channel: grpc.Channel) -> None:
        self.endpoint = endpoint
        self.channel = channel
        self.objects = api_pb2_grpc.ObjectServiceStub(channel)
        self.cluster = api_pb2_grpc.ClusterServiceStub(channel)
        self.node_proxy = nodeproxy_pb2_grpc.NodeProxyStub(channel)
        """Node agents' logs, exec and stats, through the master."""
        self.ops = ops_pb2_grpc.OpsServiceStub(channel)
        """Membership, leadership and snapshots (see ``hakube.client.ops``)."""


_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED


def is_retryable(code: grpc.StatusCode) -> bool:
    return code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


def _connect_failure(details: str) -> bool:
    """Whether an UNAVAILABLE came before the request was sent (so it cannot have applied)."""
    d = details.lower()
    return any(
        m in d
        for m in ("failed to connect", "connection refused", "not in a quorum", "write not applied")
    )


def _unreachable(details: str) -> bool:
    """Whether the endpoint did not even accept a connection."""
    d = details.lower()
    return "failed to connect" in d or "connection refused" in d


def short_reason(details: str) -> str:
    """gRPC's verbose connection errors cut down to the part a person needs."""
    d = details or ""
    low = d.lower()
    if "certificate_verify_failed" in low:
        return (
            "TLS: the master's certificate is not signed by the CA in the client config "
            "(an impostor, or the wrong CA file)"
        )
    if "not in peer certificate" in low:
        return "TLS: the master's certificate does not name the address that was dialled"
    if "handshake" in low or "ssl_error" in low:
        return "TLS handshake failed: " + d.split("\n")[0][-160:]
    for marker in (
        "Connection refused",
        "Connection reset",
        "Socket closed",
        "Deadline Exceeded",
        "No route to host",
        "Name or service not known",
    ):
        if marker.lower() in d.lower():
            return marker.lower()
    return d.split("\n")[0][:200] or "unavailable"


class Transport:
    """A list of master endpoints, one lazily opened channel each, and the retry loop."""

    def __init__(
        self,
        endpoints: str | Sequence[str],
        *,
        credentials: tls.Credentials,
        policy: RetryPolicy | None = None,
        on_warning: apiwarnings.Handler | None = None,
        own_connection: bool = False,
    ) -> None:
        """``credentials``: the CA every master is verified against, and the certificate and
        key this client presents (there is no plaintext mode). ``on_warning``: where the
        warnings masters attach to answers go (hakube.client.apiwarnings; by default each
        distinct text is logged once). ``own_connection``: open this transport's own HTTP/2
        connections instead of sharing the process's (gRPC shares one connection among
        channels with the same target and options), so its calls never wait behind another
        client's streams (a leader's lease renewals behind its bulk traffic)."""
        self.on_warning: apiwarnings.Handler = on_warning or apiwarnings.LogOnce()
        self.endpoints = parse_endpoints(endpoints)
        try:
            tls.check_client(credentials)
        except certs.CertError as exc:
            raise errors.Forbidden(str(exc), code=grpc.StatusCode.UNAUTHENTICATED) from exc
        self.credentials = credentials
        self._channel_credentials = tls.channel_credentials(credentials)
        self.policy = policy or RetryPolicy()
        self.policy.validate()
        self._options = [*CHANNEL_OPTIONS, *([(OWN_SUBCHANNELS, 1)] if own_connection else [])]
        self.own_connection = own_connection
        self._stubs: dict[str, Stubs] = {}
        self._retired: list[Stubs] = []
        self._lock = threading.Lock()
        # Start at a random master so many clients spread their load.
        self._current = random.randrange(len(self.endpoints))
        self._closed = False

    def stubs(self, endpoint: str) -> Stubs:
        with self._lock:
            if self._closed:
                raise errors.HakubeError("client is closed")
            s = self._stubs.get(endpoint)
            if s is None:
                ch = grpc.secure_channel(endpoint, self._channel_credentials, options=self._options)
                s = self._stubs[endpoint] = Stubs(endpoint, ch)
            return s

    def set_credentials(self, credentials: tls.Credentials) -> None:
        """Use renewed credentials for new channels. Open channels (and the watches on them)
        keep the certificate they were made with until they are closed with the client."""
        with self._lock:
            self.credentials = credentials
            self._channel_credentials = tls.channel_credentials(credentials)
            self._retired.extend(self._stubs.values())
            self._stubs = {}

    def current(self) -> str:
        return self.endpoints[self._current % len(self.endpoints)]

    def advance(self, failed: str) -> None:
        """Move to the next endpoint, unless another thread already moved past ``failed``."""
        if self.current() == failed:
            self._current = (self._current + 1) % len(self.endpoints)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            stubs = [*self._stubs.values(), *self._retired]
            self._stubs, self._retired = {}, []
        for s in stubs:
            s.channel.close()

    def call(
        self,
        fn: Callable[[Stubs, float], T],
        *,
        what: str,
        timeout: float | None = None,
        request_id: str = "",
        endpoint: str | None = None,
        once: bool = False,
    ) -> T:
        """Run ``fn(stubs, attempt_timeout)`` until it succeeds, fails for a reason a retry
        cannot fix, or the deadline passes. ``what`` names the call in errors ("get pods/web");
        ``request_id`` marks a write, whose unconfirmed attempts make the final error an
        OutcomeUnknown; ``endpoint`` pins the call to one master (no failover); ``once`` makes a
        single attempt, for callers that loop themselves (an ops call that follows the leader)."""
        policy = self.policy
        deadline = time.monotonic() + (timeout if timeout is not None else policy.timeout)
        tried: dict[str, str] = {}  # endpoint -> its last failure
        reached = time.monotonic()  # when an endpoint last accepted a connection
        maybe_applied = False
        last: grpc.RpcError | None = None
        retry = 0
        while True:
            ep = endpoint or self.current()
            now = time.monotonic()
            remaining = deadline - now
            if remaining <= 0 or now - reached > policy.unreachable_timeout:
                raise self._give_up(what, tried, last, request_id if maybe_applied else "")
            try:
                result = fn(self.stubs(ep), min(remaining, policy.attempt_timeout))
            except grpc.RpcError as exc:
                code = exc.code()
                hint = errors.retry_after(exc) if code == _EXHAUSTED else None
                if hint is not None and not once:
                    # Refused by flow control before it ran: wait as asked, same master.
                    reached = time.monotonic()
                    pause = hint + random.uniform(0, hint)
                    if time.monotonic() + pause >= deadline:
                        err = errors.from_rpc_error(exc)
                        err.retried = maybe_applied
                        raise err from exc
                    log.debug("%s on %s: %s; retrying in %.2fs", what, ep, exc.details(), pause)
                    time.sleep(pause)
                    continue
                if once or not is_retryable(code):
                    err = errors.from_rpc_error(exc)
                    err.retried = maybe_applied
                    raise err from exc
                last = exc
                details = exc.details() or ""
                tried[ep] = (
                    short_reason(details)
                    if code == grpc.StatusCode.UNAVAILABLE
                    else "no answer in time"
                )
                if not _unreachable(details):
                    reached = time.monotonic()
                if request_id and not (
                    code == grpc.StatusCode.UNAVAILABLE and _connect_failure(details)
                ):
                    maybe_applied = True
                log.debug("%s on %s: %s (%s); retrying", what, ep, code.name, details)
                if endpoint is None:
                    self.advance(ep)
                pause = min(policy.pause(retry), max(0.0, deadline - time.monotonic()))
                retry += 1
                time.sleep(pause)
                continue
            return result

    def _give_up(
        self, what: str, tried: dict[str, str], last: grpc.RpcError | None, request_id: str
    ) -> errors.Unavailable:
        eps = tuple(tried or self.endpoints)
        reasons = set(tried.values())
        if len(reasons) == 1:
            msg = f"{what}: no master answered (tried {', '.join(eps)}): {reasons.pop()}"
        elif reasons:
            msg = (
                f"{what}: no master answered ("
                + "; ".join(f"{ep}: {why}" for ep, why in tried.items())
                + ")"
            )
        else:
            msg = f"{what}: no master answered before the deadline"
        if request_id:
            exc: errors.Unavailable = errors.OutcomeUnknown(
                msg + f"; the write may have been applied (request id {request_id})",
                request_id=request_id,
                endpoints=eps,
            )
        else:
            exc = errors.Unavailable(msg, endpoints=eps)
        exc.__cause__ = last
        return exc
