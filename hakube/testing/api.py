"""A deliberately small retrying caller for the core's integration tests and benchmarks."""

from __future__ import annotations

import time
import uuid
from typing import Any

import grpc

from hakube.api import convert, kinds
from hakube.api.v1 import api_pb2, api_pb2_grpc
from hakube.testing import pki as testpki

RETRYABLE = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}


class Api:
    """A deliberately small retrying caller for the core's tests (the real client is
    hakube.client): UNAVAILABLE moves on to the next endpoint; the request -- with its
    request_id -- is reused unchanged, so retried writes are deduplicated by the store."""

    def __init__(self, endpoints: list[str]) -> None:
        self.endpoints = endpoints
        opts = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        self.channels = [testpki.channel(e, options=opts) for e in endpoints]
        self.stubs = [api_pb2_grpc.ObjectServiceStub(c) for c in self.channels]
        self.i = 0

    def call(self, method: str, req: Any, deadline: float = 20.0, per_try: float = 3.0) -> Any:
        end = time.monotonic() + deadline
        while True:
            stub = self.stubs[self.i % len(self.stubs)]
            try:
                return getattr(stub, method)(req, timeout=per_try)
            except grpc.RpcError as exc:
                if exc.code() not in RETRYABLE or time.monotonic() > end:
                    raise
                self.i += 1
                time.sleep(0.05)

    def create_configmap(
        self, name: str, data: dict[str, str] | None = None, ns: str = "default"
    ) -> Any:
        cm = convert.from_dict(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": ns},
                "data": data or {"k": name},
            }
        )
        return self.call(
            "Create", api_pb2.CreateRequest(object=kinds.wrap(cm), request_id=str(uuid.uuid4()))
        )

    def names(
        self, kind: str = "ConfigMap", ns: str = "default", via: int | None = None
    ) -> set[str]:
        """Every object name, paging 50 at a time (objects may be large).

        ``via`` asks that one master only, on a fresh channel: a channel that saw the master
        die stays in gRPC's reconnect back-off (and fails calls at once) long after the master
        is back."""
        out: set[str] = set()
        token = ""
        fresh = testpki.channel(self.endpoints[via]) if via is not None else None
        try:
            while True:
                req = api_pb2.ListRequest(kind=kind, namespace=ns, limit=50)
                setattr(req, "continue", token)
                if fresh is not None:
                    resp = api_pb2_grpc.ObjectServiceStub(fresh).List(req, timeout=10)
                else:
                    resp = self.call("List", req)
                out |= {
                    kinds.unwrap(o)[1].metadata.name  # type: ignore[attr-defined]
                    for o in resp.items
                }
                token = getattr(resp, "continue")
                if not token:
                    return out
        finally:
            if fresh is not None:
                fresh.close()

    def close(self) -> None:
        for c in self.channels:
            c.close()
