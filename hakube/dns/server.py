"""The sockets: UDP and TCP on every ``--listen`` address, one asyncio loop on one thread.

Each UDP socket has a thread of its own that answers from the zone or the cache in a plain
``recvfrom``/``sendto`` loop (the common case costs a dict lookup, or one parse and one
render); only a forward goes to the event loop, as a task. TCP (RFC 7766), on the event loop,
takes length-prefixed queries in a row on one connection, with a cap on connections and an idle
timeout, so that slow clients cannot hold the server's memory.

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
from hakube.lifecycle import StartupError

log = logging.getLogger("hakube.dns")


MAX_QUERY = 4096
"""Bytes read per datagram: a query is a name and an OPT record, far below this; reading 64 KiB
would allocate (and shrink) that much for every packet."""


class ListenError(StartupError):
    """An address cannot be served; the message names it."""


class _UdpLoop:
    """One UDP socket served by a thread of its own: blocking ``recvfrom``, answer, ``sendto``.
    A plain loop costs a fraction of an asyncio datagram callback per packet, and a local
    answer never waits behind the event loop. A forward is handed to the event loop, which
    sends its answer on the same socket when it comes."""

    def __init__(self, server: DnsServer, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.thread = threading.Thread(
            target=self.run, name=f"dns-udp-{sock.getsockname()[1]}", daemon=True
        )

    def run(self) -> None:
        sock, resolver, observe = self.sock, self.server.resolver, self.server.metrics.observe
        recv, send, cached, respond = sock.recvfrom, sock.sendto, resolver.cached, resolver.respond
        clock = time.perf_counter
        while True:
            try:
                data, addr = recv(MAX_QUERY)
            except OSError as e:
                if self.server.stopping:
                    return
                log.debug("udp: %s", e)
                continue
            if not data and self.server.stopping:
                return
            t0 = clock()
            out = cached(data, False)
            if out is None:
                reply = respond(data, False)
                if reply is None:
                    continue
                if not isinstance(reply, bytes):
                    self.server.hand_over(self._later(reply, addr, t0))
                    continue
                out = reply
            try:
                send(out, addr)
            except OSError as e:
                log.debug("udp send to %s: %s", addr, e)
                continue
            observe("udp", clock() - t0)

    async def _later(self, pending: Any, addr: Any, t0: float) -> None:
        out = await pending
        if out is not None and not self.server.stopping:
            try:
                self.sock.sendto(out, addr)
            except OSError:
                return
            self.server.metrics.observe("udp", time.perf_counter() - t0)

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked recvfrom
        except OSError:
            pass
        self.thread.join(5)
        self.sock.close()


class DnsServer:
    """See the module docstring."""

    def __init__(self, settings: DnsSettings, resolver: Resolver, metrics: DnsMetrics) -> None:
        self.s = settings
        self.resolver = resolver
        self.metrics = metrics
        self.ready = threading.Event()
        """Set once every address is bound and served."""
        self.bound: list[tuple[str, int]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._stopped = threading.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._tcp_clients = 0

    @property
    def stopping(self) -> bool:
        return self._stopped.is_set()

    def hand_over(self, coro: Any) -> None:
        """Run ``coro`` (a forward) on the event loop; called from a UDP thread."""
        loop = self._loop
        if loop is None:
            coro.close()
            return
        try:
            loop.call_soon_threadsafe(self._spawn, coro)
        except RuntimeError:
            coro.close()  # the loop has finished: stopping

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def run(self) -> None:
        """Serve until ``stop()``; ListenError if an address cannot be bound."""
        asyncio.run(self._main())

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
            self._stopped.set()
            for c in closers:
                c.close()
            for t in list(self._tasks):
                t.cancel()

    async def _bind(self, addr: str) -> list[Any]:
        host, port = split_hostport(addr, "--listen")
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind((host, port))
            port = sock.getsockname()[1]
            server = await asyncio.start_server(
                self._tcp_client, host, port, family=family, reuse_address=True
            )
        except OSError as e:
            sock.close()
            raise ListenError(f"cannot listen on {addr} (UDP and TCP): {e.strerror or e}") from e
        udp = _UdpLoop(self, sock)
        udp.thread.start()
        self.bound.append((host, port))
        return [udp, server]

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
