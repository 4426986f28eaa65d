"""A huge selector is refused at once with a short INVALID_ARGUMENT, and while such requests
keep arriving, other calls to the same master are still answered."""

from __future__ import annotations

import threading

import grpc
import pytest

from hakube.api.v1 import api_pb2
from hakube.testing.api import Api

pytestmark = pytest.mark.timeout(120)

HUGE = ",".join(["a"] * 400_000)  # 0.8 MB: once held a master's event loop for 10 s


def test_a_huge_selector_is_refused_without_holding_up_other_calls(api: Api) -> None:
    stub = api.stubs[0]
    with pytest.raises(grpc.RpcError) as err:
        stub.List(api_pb2.ListRequest(kind="pods", label_selector=HUGE), timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = err.value.details() or ""
    assert "at most 65536" in details and len(details) < 200, details[:300]

    stop = threading.Event()
    refused = []

    def storm() -> None:
        while not stop.is_set():
            try:
                stub.List(api_pb2.ListRequest(kind="pods", label_selector=HUGE), timeout=10)
            except grpc.RpcError as exc:
                refused.append(exc.code())

    threads = [threading.Thread(target=storm) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(50):  # each within a deadline far below the old 10 s stall
            stub.List(api_pb2.ListRequest(kind="Namespace"), timeout=3)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert refused and set(refused) == {grpc.StatusCode.INVALID_ARGUMENT}
