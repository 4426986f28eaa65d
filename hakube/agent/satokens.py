"""ServiceAccount tokens of projected volumes, as the kubelet keeps them.

For each ``serviceAccountToken`` source of a pod's projected volume the agent asks the masters
for a token of the pod's ServiceAccount bound to the pod (TokenRequest; the node authorizer lets
a node ask only for the accounts of pods bound to it) with the source's audience and
``expirationSeconds``, and writes it into the volume (a tmpfs, like Secret data). A token is
requested again once 80 % of its lifetime has passed (or after 24 h, whichever is first); the
pod's sync is woken then (``refresh_in``), so the file is rewritten well before it expires.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from hakube.api.v1 import pod_pb2, token_pb2

REFRESH_AT = 0.8
"""Fraction of a token's lifetime after which a new one is requested."""
MAX_AGE = 24 * 3600.0
DEFAULT_SECONDS = 3600

Request = Callable[[str, str, token_pb2.TokenRequest], token_pb2.TokenRequest]
"""(namespace, account, request) -> the signed TokenRequest (hakube.client.tokens)."""


@dataclass(frozen=True)
class _Held:
    token: bytes
    refresh_at: float


class PodTokens:
    """The tokens this agent holds, by pod uid and source (any thread)."""

    def __init__(self, request: Request, clock: Callable[[], float] = time.time) -> None:
        self.request = request
        self.clock = clock
        self._held: dict[tuple[str, str, str, int], _Held] = {}
        self._lock = threading.Lock()

    def token(self, pod: pod_pb2.Pod, src: pod_pb2.ServiceAccountTokenProjection) -> bytes:
        """The current token for ``src`` in ``pod``, requested when none is held or it is due
        for refresh; raises the client's error when the masters refuse."""
        seconds = src.expiration_seconds if src.HasField("expiration_seconds") else 0
        seconds = seconds or DEFAULT_SECONDS
        key = (pod.metadata.uid, src.audience, src.path, seconds)
        now = self.clock()
        with self._lock:
            held = self._held.get(key)
        if held is not None and now < held.refresh_at:
            return held.token
        tr = token_pb2.TokenRequest()
        if src.audience:
            tr.spec.audiences.append(src.audience)
        tr.spec.expiration_seconds = seconds
        ref = tr.spec.bound_object_ref
        ref.kind, ref.api_version = "Pod", "v1"
        ref.name, ref.uid = pod.metadata.name, pod.metadata.uid
        account = pod.spec.service_account_name or "default"
        out = self.request(pod.metadata.namespace, account, tr)
        lifetime = out.spec.expiration_seconds or seconds
        held = _Held(out.status.token.encode(), now + min(REFRESH_AT * lifetime, MAX_AGE))
        with self._lock:
            self._held[key] = held
        return held.token

    def refresh_in(self, uid: str) -> float | None:
        """Seconds until the first of the pod's tokens is due for refresh (None: it has none)."""
        now = self.clock()
        with self._lock:
            due = [h.refresh_at for k, h in self._held.items() if k[0] == uid]
        return max(0.0, min(due) - now) if due else None

    def forget(self, uid: str) -> None:
        with self._lock:
            for k in [k for k in self._held if k[0] == uid]:
                del self._held[k]
