"""A master's connection to one node agent, proven to reach that node.

Verifying the agent's certificate against the cluster CA and the dialled address is not enough:
every node holds a certificate from the same CA, and node addresses move (DHCP, a replaced
machine), so whoever answers at an address may be another node. The masters must also check
that the certificate *names* the node they mean (``system:node:<name>`` in ``system:nodes``).
gRPC's Python client does not expose the server's certificate, so the TLS connection is made
here with ``ssl`` (CA, address and identity checked on the very connection that carries the
calls), and gRPC speaks plaintext HTTP/2 to it through a Unix socket in a private directory
(0700) that lives as long as one proxied call. The master presents its own certificate
(``system:hakube-master:<name>``), the only identity the agents serve.

Bounds: the pipe moves at most ``CHUNK`` bytes at a time and waits for each write to drain, so
a slow reader at either end slows the other instead of filling memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import ssl
import tempfile
from types import TracebackType

import grpc

from hakube.pki import names
from hakube.pki.certs import CertError, Identity
from hakube.pki.tls import Reloading, TlsFiles, client_context, identity_of_der

CHUNK = 64 * 1024
"""Bytes moved per read between gRPC and the agent's TLS connection."""
DIAL_TIMEOUT = 10.0
"""Seconds to connect to an agent and finish the TLS handshake."""
MAX_MESSAGE_BYTES = 16 * 1024 * 1024
"""Largest message accepted from an agent (an exec's whole output, a chunk of logs)."""


class AgentDialError(Exception):
    """The agent could not be reached or is not the node it should be; one line."""


def _agent_context(files: TlsFiles) -> ssl.SSLContext:
    ctx = client_context(files)
    ctx.check_hostname = True  # the address dialled must be in the certificate, besides its name
    ctx.set_alpn_protocols(["h2"])
    return ctx


_contexts: dict[TlsFiles, Reloading] = {}


def agent_context(tls: TlsFiles) -> ssl.SSLContext:
    """The client context for agents, rebuilt when the master's files are renewed."""
    r = _contexts.get(tls)
    if r is None:
        r = _contexts[tls] = Reloading(tls, _agent_context)
    ctx = r.get()
    assert isinstance(ctx, ssl.SSLContext)
    return ctx


def check_node_identity(identity: Identity, node: str) -> str | None:
    """Why a peer with ``identity`` is not node ``node``'s agent, or None."""
    if identity.user != names.node_user(node) or names.NODES_GROUP not in identity.groups:
        groups = ",".join(identity.groups) or "no groups"
        return (
            f'presents a certificate for "{identity.user}" ({groups}), not '
            f'"{names.node_user(node)}" in {names.NODES_GROUP}'
        )
    return None


async def dial(
    node: str, host: str, port: int, tls: TlsFiles
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TLS connection to ``node``'s agent at HOST:PORT, its identity checked."""
    where = f"the agent of node {node} at {host}:{port}"
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                host, port, ssl=agent_context(tls), server_hostname=host, limit=CHUNK
            ),
            DIAL_TIMEOUT,
        )
    except ssl.SSLCertVerificationError as e:
        raise AgentDialError(f"{where} failed verification: {e.verify_message}") from e
    except (ssl.SSLError, CertError) as e:
        raise AgentDialError(f"TLS with {where} failed: {e}") from e
    except TimeoutError as e:
        raise AgentDialError(f"cannot reach {where}: no answer in {DIAL_TIMEOUT:.0f}s") from e
    except OSError as e:
        raise AgentDialError(f"cannot reach {where}: {e.strerror or e}") from e
    ssl_obj = writer.get_extra_info("ssl_object")
    der = ssl_obj.getpeercert(binary_form=True) if ssl_obj is not None else None
    problem = "presents no certificate"
    if der:
        try:
            problem = check_node_identity(identity_of_der(der), node) or ""
        except (CertError, ValueError) as e:
            problem = f"presents an unreadable certificate: {e}"
    if problem:
        writer.close()
        raise AgentDialError(f"{where} {problem}")
    return reader, writer


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
    except (OSError, ssl.SSLError):
        pass
    finally:
        writer.close()


class AgentLink:
    """A gRPC channel to one node's agent for the length of one proxied call::

        async with AgentLink(node, "10.0.0.5", 10250, tls) as channel:
            ...NodeAgentStub(channel)...

    Entering dials and verifies the agent (AgentDialError when that fails); leaving closes the
    channel, which cancels a call still running on it, and every connection."""

    def __init__(self, node: str, host: str, port: int, tls: TlsFiles) -> None:
        self.node, self.host, self.port, self.tls = node, host, port, tls
        self.error = ""
        """Why the last dial failed (a reconnect during the call), for the caller's error."""
        self._dir = ""
        self._server: asyncio.Server | None = None
        self._first: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.channel: grpc.aio.Channel | None = None

    async def __aenter__(self) -> grpc.aio.Channel:
        self._first = await dial(self.node, self.host, self.port, self.tls)
        self._dir = tempfile.mkdtemp(prefix="hakube-agent-link-")  # 0700
        path = os.path.join(self._dir, "s")
        try:
            self._server = await asyncio.start_unix_server(self._bridge, path, limit=CHUNK)
        except BaseException:
            await self._close()
            raise
        self.channel = grpc.aio.insecure_channel(
            f"unix:{path}",
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.use_local_subchannel_pool", 1),
            ],
        )
        return self.channel

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close()

    async def _bridge(self, local_r: asyncio.StreamReader, local_w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)  # type: ignore[arg-type]
        try:
            if self._first is not None:
                (up_r, up_w), self._first = self._first, None
            else:
                try:
                    up_r, up_w = await dial(self.node, self.host, self.port, self.tls)
                except AgentDialError as e:
                    self.error = str(e)
                    local_w.close()
                    return
            await asyncio.gather(_pipe(local_r, up_w), _pipe(up_r, local_w))
        finally:
            local_w.close()
            self._tasks.discard(task)  # type: ignore[arg-type]

    async def _close(self) -> None:
        if self.channel is not None:
            await self.channel.close()
            self.channel = None
        if self._first is not None:
            self._first[1].close()
            self._first = None
        if self._server is not None:
            self._server.close()
            self._server = None
        for t in list(self._tasks):
            t.cancel()
        for t in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = ""
