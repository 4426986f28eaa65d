"""ObjectService.Batch: many writes from one client in one call.

Why: a client with hundreds of writes in flight pays gRPC's per-call cost (a call object, an
HTTP/2 stream, headers and trailers, a task on each side) once per write with unary calls. On a
2-core machine that transport cost, on the client and on the master, is of the same order as the
store's own work per write (measured with 256 writes in flight: a unary call costs several
times the CPU of a message on one stream, and a message on a stream ten times an item coalesced
into one call of 32), so the Python client coalesces concurrent writes into one Batch call
(hakube.client.batch).

The call is only a transport. Every item goes through ``ApiServer.invoke`` with the method the
unary call would have (Create, Update, UpdateStatus, Delete, Bind): authorized for its own verb,
resource and namespace, admitted by priority and fairness with a seat of its own (so a batch of
200 counts as 200 requests towards its flow's share and queues like them), run, measured and
audited as one request each. Items run concurrently and independently: there is no
transaction, and one item's error is that item's result. Each result carries the warnings of its
own item (OK or refused), as the unary call's trailing metadata would. The Batch call itself is
refused to a bootstrap identity (as every method it is not registered for) and takes no seat:
its items do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc
from google.protobuf.message import DecodeError

from hakube.api.v1 import api_pb2
from hakube.apiserver import apiwarnings
from hakube.apiserver.errors import ApiError, Invalid
from hakube.apiserver.flowcontrol.controller import TooBusy

if TYPE_CHECKING:
    from hakube.apiserver.server import ApiServer

log = logging.getLogger("hakube.apiserver")

MAX_ITEMS = 256
"""Items in one Batch call; more is INVALID_ARGUMENT (the client splits its batches)."""

METHOD_OF_FIELD = {
    "create": "Create",
    "update": "Update",
    "update_status": "UpdateStatus",
    "delete": "Delete",
    "bind": "Bind",
}
"""BatchItem's oneof field -> the unary method whose rules the item follows."""


async def run_batch(
    server: ApiServer, identity: Any, req: api_pb2.BatchRequest
) -> api_pb2.BatchResponse:
    """Every item of ``req`` as its own request by ``identity``; results in the items' order."""
    if len(req.items) > MAX_ITEMS:
        raise Invalid(f"batch: items: {len(req.items)} items, at most {MAX_ITEMS} allowed")
    results = await asyncio.gather(
        *(_run_item(server, identity, i, item) for i, item in enumerate(req.items))
    )
    return api_pb2.BatchResponse(results=results)


async def _run_item(
    server: ApiServer, identity: Any, index: int, item: api_pb2.BatchItem
) -> api_pb2.BatchResult:
    """One item's result, with the warnings found while running it (gather runs each item in a
    task of its own, so each collects into its own list)."""
    with apiwarnings.collect() as warnings:
        result = await _result_of(server, identity, index, item)
    result.warnings.extend(warnings)
    return result


async def _result_of(
    server: ApiServer, identity: Any, index: int, item: api_pb2.BatchItem
) -> api_pb2.BatchResult:
    field = item.WhichOneof("call")
    if field is None:
        return api_pb2.BatchResult(
            code=grpc.StatusCode.INVALID_ARGUMENT.value[0],
            message=f"batch: items[{index}]: no call ({', '.join(METHOD_OF_FIELD)})",
        )
    method = METHOD_OF_FIELD[field]
    fn: Callable[[Any], Awaitable[Any]] = server.calls[method][0]
    try:
        answer = await server.invoke(method, identity, getattr(item, field), fn)
    except TooBusy as exc:
        return api_pb2.BatchResult(
            code=exc.code.value[0],
            message=exc.message,
            retry_after_ms=max(1, round(exc.retry_after * 1000)),
        )
    except ApiError as exc:
        return api_pb2.BatchResult(code=exc.code.value[0], message=exc.message)
    except Exception as exc:  # noqa: BLE001 - one item's failure is that item's result
        log.exception("batch item %d (%s) failed", index, method)
        return api_pb2.BatchResult(
            code=grpc.StatusCode.UNKNOWN.value[0], message=f"{method}: internal error: {exc}"
        )
    result = api_pb2.BatchResult()
    target = result.deleted if field == "delete" else result.object
    if isinstance(answer, bytes):  # the store's encoded object, as the unary call sends it
        target.MergeFromString(answer)
    else:
        target.CopyFrom(answer)
    return result


def handler(server: ApiServer) -> grpc.RpcMethodHandler:
    """The gRPC door's Batch method: the caller authenticated once, then ``run_batch``."""

    async def batch(raw: bytes, ctx: grpc.aio.ServicerContext) -> bytes:
        try:
            req = api_pb2.BatchRequest.FromString(raw)
        except DecodeError as exc:
            await ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed BatchRequest: {exc}")
        try:
            identity = server.authenticator.identify(ctx)
            server.authorize("Batch", identity)
            resp = await run_batch(server, identity, req)
        except ApiError as exc:
            await ctx.abort(exc.code, exc.message)
        return resp.SerializeToString()

    return grpc.unary_unary_rpc_method_handler(batch)
