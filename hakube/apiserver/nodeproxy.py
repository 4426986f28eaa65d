"""NodeProxy: ``hakubectl logs``, ``exec`` and ``top`` reach node agents through the masters.

As ``kubectl logs`` goes through the API server: the node agents serve their API to the masters
only (docs/security-agent.md), so users never need to reach, or be trusted by, a node. Each
call is authenticated like every API request, the pod's node (or the named node) is read from
this master's store, and the master dials that node's agent with its own certificate, checking
that the agent is that node (hakube.apiserver.agentlink). Answers stream back as they come.

Nodes may not use the proxy: a node's certificate is for its own agent's business, and the
proxy would otherwise let one node exec into the pods of every other.

Bounds: at most ``MAX_CALLS`` proxied calls at once per master (more get RESOURCE_EXHAUSTED);
a log stream is read from the agent only as fast as the caller takes it (each message is sent
before the next is read); a caller that goes away cancels its call, and leaving the AgentLink
closes the upstream channel, which cancels the agent's side.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from hakube.api import failures
from hakube.api.agent.v1 import agent_pb2, agent_pb2_grpc
from hakube.api.v1 import core_pb2, nodeproxy_pb2, pod_pb2
from hakube.apiserver import authn
from hakube.apiserver.agentlink import AgentDialError, AgentLink
from hakube.apiserver.errors import (
    ApiError,
    FailedPrecondition,
    Forbidden,
    Invalid,
    NotFound,
    TooLarge,
    relay,
)
from hakube.pki import names
from hakube.pki.certs import Identity
from hakube.pki.tls import TlsFiles
from hakube.store.fsm import StoreFSM

NODE_PROXY_SERVICE = "hakube.api.v1.NodeProxy"
MAX_CALLS = 64
"""Proxied calls one master serves at once (each holds two connections and a socket)."""
AGENT_TROUBLE = grpc.StatusCode.FAILED_PRECONDITION
"""The code of "the node's agent is unreachable or not that node". Not UNAVAILABLE: clients
take that to mean *this master* failed and try the next one, which would not help (and would
run an exec twice)."""
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class AgentError(ApiError):
    """The agent's own answer (or its absence), passed on with its status code."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.failure = failures.of_code(code)


def agent_endpoint(node: core_pb2.Node) -> tuple[str, int] | None:
    """(host, port) of a node's agent API from its status, or None when it publishes none."""
    port = node.status.daemon_endpoints.kubelet_endpoint.port
    addrs = {a.type: a.address for a in node.status.addresses}
    host = addrs.get("InternalIP") or addrs.get("ExternalIP") or addrs.get("Hostname")
    if not port or not host:
        return None
    return host, port


class NodeProxyServicer:
    """Handlers of NodeProxy for one master; ``tls`` is the master's own material."""

    def __init__(self, fsm: StoreFSM, tls: TlsFiles, *, max_calls: int = MAX_CALLS) -> None:
        self.fsm = fsm
        self.tls = tls
        self._slots = asyncio.Semaphore(max_calls)
        self.max_calls = max_calls
        self.authenticate: Callable[[str, grpc.aio.ServicerContext, Any], Identity] | None = None

    # -- where --------------------------------------------------------------------------------

    def _pod_node(self, namespace: str, name: str) -> str:
        if not name:
            raise Invalid("pod: a name is required")
        ns = namespace or "default"
        rec = self.fsm.get("Pod", ns, name)
        if rec is None:
            raise NotFound(f'pods "{name}" not found in namespace "{ns}"')
        pod = pod_pb2.Pod.FromString(rec.value)
        if not pod.spec.node_name:
            raise FailedPrecondition(f'pod "{name}" is not scheduled to a node yet')
        return pod.spec.node_name

    def _endpoint(self, node_name: str) -> tuple[str, int]:
        if not node_name:
            raise Invalid("node: a name is required")
        rec = self.fsm.get("Node", "", node_name)
        if rec is None:
            raise NotFound(f'nodes "{node_name}" not found')
        found = agent_endpoint(core_pb2.Node.FromString(rec.value))
        if found is None:
            raise FailedPrecondition(
                f'node "{node_name}" publishes no agent API (is its agent running, with a '
                "node certificate?)"
            )
        return found

    # -- calls --------------------------------------------------------------------------------

    def _link(self, node: str) -> AgentLink:
        host, port = self._endpoint(node)
        return AgentLink(node, host, port, self.tls)

    def _take_slot(self) -> None:
        if self._slots.locked():
            raise TooLarge(
                f"this master already proxies {self.max_calls} calls to agents; retry later"
            )

    @staticmethod
    def _failed(exc: grpc.aio.AioRpcError, link: AgentLink) -> AgentError:
        code, details = exc.code(), exc.details() or ""
        if code in RETRYABLE:
            why = link.error or details.split("\n")[0]
            return AgentError(AGENT_TROUBLE, f"node {link.node}: the agent did not answer: {why}")
        return AgentError(code, details)

    async def _unary(self, node: str, call: Callable[[Any], Awaitable[Any]]) -> Any:
        self._take_slot()
        async with self._slots:
            link = self._link(node)
            try:
                async with link as channel:
                    return await call(agent_pb2_grpc.NodeAgentStub(channel))
            except AgentDialError as e:
                raise AgentError(AGENT_TROUBLE, str(e)) from e
            except grpc.aio.AioRpcError as e:
                raise self._failed(e, link) from e

    async def exec_as_caller(self, req: agent_pb2.ExecRequest) -> agent_pb2.ExecResponse:
        """``exec`` for the authorized caller of this request (either door); nodes refused."""
        refuse_nodes(_current())
        return await self.exec(req)

    async def exec(self, req: agent_pb2.ExecRequest) -> agent_pb2.ExecResponse:
        node = self._pod_node(req.namespace, req.pod)
        req.namespace = req.namespace or "default"
        resp: agent_pb2.ExecResponse = await self._unary(node, lambda stub: stub.Exec(req))
        return resp

    async def stats(self, req: nodeproxy_pb2.NodeStatsRequest) -> agent_pb2.StatsResponse:
        resp: agent_pb2.StatsResponse = await self._unary(
            req.node, lambda stub: stub.Stats(req.request, timeout=30)
        )
        return resp

    async def logs(self, raw: bytes, ctx: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            req = agent_pb2.LogsRequest.FromString(raw)
        except Exception as e:  # noqa: BLE001 - any decode failure is the caller's
            await ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed LogsRequest: {e}")
        stream = self.log_stream(req, lambda: self._check_caller("Logs", ctx, req))
        async for chunk in relay(stream, ctx):
            yield chunk

    async def log_stream(
        self, req: agent_pb2.LogsRequest, admit: Callable[[], Identity]
    ) -> AsyncGenerator[Any, None]:
        """A pod's log chunks from its node's agent, for either door: ``admit`` authenticates
        and authorizes the caller; nodes are refused; failures raise ApiError."""
        refuse_nodes(admit())
        node = self._pod_node(req.namespace, req.pod)
        req.namespace = req.namespace or "default"
        self._take_slot()
        async with self._slots:
            link = self._link(node)
            try:
                async with link as channel:
                    call = agent_pb2_grpc.NodeAgentStub(channel).Logs(req)
                    async for chunk in call:
                        yield chunk
            except AgentDialError as e:
                raise AgentError(AGENT_TROUBLE, str(e)) from e
            except grpc.aio.AioRpcError as e:
                raise self._failed(e, link) from e

    def _check_caller(self, method: str, ctx: grpc.aio.ServicerContext, req: Any) -> Identity:
        assert self.authenticate is not None
        return self.authenticate(method, ctx, req)

    def handlers(
        self,
        unary: Callable[[str, Callable[[Any], Awaitable[Any]], type], grpc.RpcMethodHandler],
        authenticate: Callable[[str, grpc.aio.ServicerContext, Any], Identity],
    ) -> list[grpc.GenericRpcHandler]:
        """``unary`` is ApiServer.unary (authentication, decoding, error mapping, metrics);
        ``authenticate`` is ApiServer.authenticate, for the log stream."""
        self.authenticate = authenticate

        async def stats(req: nodeproxy_pb2.NodeStatsRequest) -> agent_pb2.StatsResponse:
            refuse_nodes(_current())
            return await self.stats(req)

        methods = {
            "Logs": grpc.unary_stream_rpc_method_handler(self.logs, response_serializer=_serialize),
            "Exec": unary("ProxyExec", self.exec_as_caller, agent_pb2.ExecRequest),
            "Stats": unary("ProxyStats", stats, nodeproxy_pb2.NodeStatsRequest),
        }
        return [grpc.method_handlers_generic_handler(NODE_PROXY_SERVICE, methods)]


def _serialize(x: Any) -> bytes:
    return x if isinstance(x, bytes) else x.SerializeToString()  # type: ignore[no-any-return]


def _current() -> Identity:
    identity = authn.current.get()
    assert identity is not None  # ApiServer.unary authenticated the request
    return identity


def refuse_nodes(identity: Identity) -> None:
    """Forbidden for a node's identity (see the module docstring)."""
    if names.NODES_GROUP in identity.groups or names.node_name(identity.user) is not None:
        raise Forbidden(
            f'"{identity.user}" is a node: nodes may not use the node proxy '
            "(logs, exec, stats of other nodes' pods)"
        )
