"""The sockets: UDP and TCP on every ``--listen`` address, one asyncio loop on one thread.

A UDP query is answered inside ``datagram_received`` when the zone or the cache has the answer
(no task, no await: the common case costs one parse and one render, or a dict lookup); only a
forward becomes a task. TCP (RFC 7766) takes length-prefixed queries in a row on one
connection, with a cap on connections and an idle timeout, so that slow clients cannot hold the
server's memory.

``run()`` blocks; ``stop()`` is idempotent and safe from any thread (a signal handler
included); ``ready`` is set once every socket is bound, and ``bound`` then lists the addresses
(port 0 picks one free port, the same for UDP and TCP).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from typing import Any

from hakube.dns.config import DnsSettings, split_hostport
from hakube.dns.metrics import DnsMetrics
from hakube.dns.resolver import Resolver

log = logging.getLogger("hakube.dns")


class ListenError(Exception):
    """An address cannot be served; the message names it."""


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server
        self.resolver = server.resolver
        self.observe = server.metrics.observe
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        t0 = time.perf_counter()
        out = self.resolver.cached(data, False)
        if out is None:
            reply = self.resolver.respond(data, False)
            if reply is None:
                return
            if not isinstance(reply, bytes):
                self.server.spawn(self._later(reply, addr, t0))
                return
            out = reply
        assert self.transport is not None
        self.transport.sendto(out, addr)
        self.observe("udp", time.perf_counter() - t0)

    async def _later(self, pending: Any, addr: Any, t0: float) -> None:
        out = await pending
        if out is not None and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(out, addr)
            self.observe("udp", time.perf_counter() - t0)

    def error_received(self, exc: Exception) -> None:
        log.debug("udp: %s", exc)


class DnsServer:
    """See the module docstring."""

    def __init__(self, settings: DnsSettings, resolver: Resolver, metrics: DnsMetrics) -> None:
        self.s = settings
        self.resolver = resolver
        self.metrics = metrics
        self.ready = threading.Event()
        self.bound: list[tuple[str, int]] = []
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stopped = threading.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._tcp_clients = 0

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def run(self) -> None:
        """Serve until ``stop()``; ListenError if an address cannot be bound."""
        try:
            asyncio.run(self._main())
        except BaseException as e:
            self.error = e
            raise
        finally:
            self.ready.set()  # a waiter looks at ``error``

    def stop(self) -> None:
        self._stopped.set()
        loop, ev = self._loop, self._stop
        if loop is not None and ev is not None:
            try:
                loop.call_soon_threadsafe(ev.set)
            except RuntimeError:
                pass  # the loop has already finished

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        closers: list[Any] = []
        try:
            for addr in self.s.listen:
                closers += await self._bind(addr)
            if self._stopped.is_set():
                return
            self.ready.set()
            log.info("serving DNS on %s", ", ".join(f"{h}:{p}" for h, p in self.bound))
            await self._stop.wait()
        finally:
            for c in closers:
                c.close()
            for t in list(self._tasks):
                t.cancel()

    async def _bind(self, addr: str) -> list[Any]:
        host, port = split_hostport(addr, "--listen")
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=(host, port), family=family
            )
            port = transport.get_extra_info("sockname")[1]
            try:
                server = await asyncio.start_server(
                    self._tcp_client, host, port, family=family, reuse_address=True
                )
            except OSError:
                transport.close()
                raise
        except OSError as e:
            raise ListenError(f"cannot listen on {addr} (UDP and TCP): {e.strerror or e}") from e
        self.bound.append((host, port))
        return [transport, server]

    async def _tcp_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._tcp_clients >= self.s.max_tcp_clients:
            writer.close()
            return
        self._tcp_clients += 1
        idle = self.s.tcp_idle
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readexactly(2), idle)
                    wire = await asyncio.wait_for(reader.readexactly(int.from_bytes(head)), idle)
                except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
                    return
                t0 = time.perf_counter()
                out = self.resolver.cached(wire, True)
                if out is None:
                    reply = self.resolver.respond(wire, True)
                    out = reply if reply is None or isinstance(reply, bytes) else await reply
                if out is None:
                    return
                writer.write(len(out).to_bytes(2) + out)
                await writer.drain()
                self.metrics.observe("tcp", time.perf_counter() - t0)
        except ConnectionError:
            return
        finally:
            self._tcp_clients -= 1
            writer.close()
