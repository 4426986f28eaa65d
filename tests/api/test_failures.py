"""One table of failures: the server's errors, the REST door's Status and the client's
exceptions all agree with hakube.api.failures, code by code."""

from __future__ import annotations

import grpc
import pytest

from hakube.api import failures
from hakube.apiserver import errors as server
from hakube.apiserver.flowcontrol.controller import TooBusy, TooManyStreams
from hakube.apiserver.rest import status
from hakube.apiserver.watch import TooSlow
from hakube.client import errors as client


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, trailers: tuple[tuple[str, str], ...] = ()) -> None:
        self._code, self._trailers = code, trailers

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return f"{self._code.name} happened"

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._trailers


def _server_errors() -> list[type[server.ApiError]]:
    out, todo = [], list(server.ApiError.__subclasses__())
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return out


def test_every_server_error_takes_its_codes_from_the_table() -> None:
    found = _server_errors()
    assert {TooBusy, TooManyStreams, TooSlow, status.BadRequest} <= set(found)
    for cls in found:
        assert cls.failure in failures.TABLE, cls
        assert cls.code is cls.failure.code, cls


@pytest.mark.parametrize("cls", _server_errors(), ids=lambda c: c.__name__)
def test_the_rest_door_reports_a_server_error_as_the_table_says(
    cls: type[server.ApiError],
) -> None:
    if cls.__init__ is not server.ApiError.__init__:
        pytest.skip(f"{cls.__name__} takes other arguments; covered by its own tests")
    doc = status.of_error(cls("boom"))
    assert (doc["code"], doc["reason"]) == (cls.failure.http, cls.failure.reason)


@pytest.mark.parametrize("failure", failures.TABLE, ids=lambda f: f"{f.code.name}-{f.http}")
def test_a_grpc_status_becomes_the_client_exception_the_table_names(
    failure: failures.Failure,
) -> None:
    exc = client.from_rpc_error(FakeRpcError(failure.code))
    assert type(exc).__name__ == failures.of_code(failure.code).client
    assert exc.code == failure.code


def test_a_refusal_with_a_retry_hint_is_too_many_requests_on_both_doors() -> None:
    busy = TooBusy("busy", retry_after=0.25)
    exc = client.from_rpc_error(FakeRpcError(busy.code, busy.trailers))
    assert isinstance(exc, client.TooManyRequests) and exc.retry_after == 0.25
    assert status.of_error(busy)["code"] == 429


def test_invalid_causes_are_parsed_once_for_both_doors() -> None:
    msg = 'Pod "web" is invalid: spec.containers[0].image: required; metadata.name: too long'
    assert client.Invalid(msg).causes == [
        ("spec.containers[0].image", "required"),
        ("metadata.name", "too long"),
    ]
    causes = status.of_error(server.Invalid(msg))["details"]["causes"]
    assert [c["field"] for c in causes] == ["spec.containers[0].image", "metadata.name"]
