"""Raft traffic between masters over mutual TLS, with a wire decoder that cannot run code.

pysyncobj's own TCP transport unpickles whatever arrives on its port, accepts "readonly" peers
and admin commands (add/remove/status/...) from anyone, and binds every interface. This module
replaces it for hakube (``RaftNode`` always uses it; there is no plaintext mode):

* ``TlsConnection`` drives an ``ssl`` socket on pysyncobj's poller (non-blocking, handshake and
  connection timeouts like pysyncobj's ``TcpConnection``) and keeps pysyncobj's framing: a
  4-byte length, then zlib(pickle). Nothing is read as a frame before the TLS handshake has
  completed and the transport has accepted the peer's certificate; a frame longer than
  ``MAX_FRAME`` is refused before it is buffered; frames are decoded by ``WireUnpickler``, which
  refuses every global (pysyncobj's messages are dicts, lists, tuples, strings, numbers, bytes,
  None and booleans; log entries travel as bytes), so a frame that would call anything closes
  the connection.
* ``TlsTransport`` (a pysyncobj ``TCPTransport``) authenticates both directions with the cluster
  CA. Accepting side: the client certificate must name a master (``system:hakube-master:<name>``)
  that is a current member; the connection belongs to the address that *name* maps to. The first
  frame, pysyncobj's self-introduction, must be exactly that address (anything else is refused as
  spoofed); "readonly" and utility commands are refused. Dialling side: the server's certificate
  must name the member that was dialled. Handshaking and not-yet-introduced connections are
  capped at ``MAX_PENDING`` and dropped after the connection timeout. Every refusal is counted by
  reason (``REFUSAL_REASONS``) and logged (rate-limited).
* The server binds the host of the Raft address, not every interface.
* ``install_command_fence`` makes pysyncobj decode log commands (which come from the leader) with
  an allowlist: containers and primitives, pysyncobj's node classes (membership entries) and
  ``_codecs.encode`` (how pickle protocol 2 wrote bytes, for journals from older versions).
  Journals and dumps on local disk are read with full pickle as before.
"""

from __future__ import annotations

import collections
import errno
import functools
import io
import logging
import pickle
import socket
import ssl
import struct
import threading
import time
import zlib
from collections.abc import Callable
from typing import Any

import pysyncobj.pickle as ps_pickle
from pysyncobj import syncobj as ps_syncobj
from pysyncobj.node import TCPNode
from pysyncobj.poller import POLL_EVENT_TYPE
from pysyncobj.tcp_connection import CONNECTION_STATE
from pysyncobj.transport import TCPTransport

from hakube.pki import names
from hakube.pki.tls import Reloading, TlsFiles, client_context, identity_of_der, server_context
from hakube.store.encoding import PICKLE_PROTOCOL, WIRE_ZLIB_LEVEL

log = logging.getLogger("hakube.store.transport")

MAX_FRAME = 64 * 1024 * 1024
"""Largest frame accepted (bytes on the wire); the longest Raft message is ~4 MiB."""
MAX_DECODED = 4 * MAX_FRAME
"""Largest decompressed frame (zlib level 0 makes it ~ the frame; this only stops bombs)."""
MAX_PENDING = 64
"""Inbound connections that have not finished the handshake and introduction, at most."""
RECV_CHUNK = 256 * 1024
SEND_CHUNK = 256 * 1024
REFUSAL_REASONS = (
    "handshake",
    "not_member",
    "spoofed",
    "utility",
    "readonly",
    "bad_frame",
    "too_many",
)
"""Why a connection was refused (the label values of hakube_raft_refused_connections_total)."""
_HEADER = struct.Struct("i")  # pysyncobj's framing: native int (little-endian on our hosts)
_LOG_BURST = 10
_LOG_WINDOW = 10.0


class WireError(Exception):
    """A frame that is not a Raft message; the connection is closed."""


class WireUnpickler(pickle.Unpickler):
    """Builds containers and primitives only: any global (class, function) is refused."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"global {module}.{name} refused on the Raft wire")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids refused on the Raft wire")


def encode_frame(message: Any) -> bytes:
    data = zlib.compress(pickle.dumps(message, PICKLE_PROTOCOL), WIRE_ZLIB_LEVEL)
    return _HEADER.pack(len(data)) + data


def decode_payload(data: bytes, max_decoded: int = MAX_DECODED) -> Any:
    """The message in one frame's payload (without the length); WireError if it is not one."""
    try:
        d = zlib.decompressobj()
        raw = d.decompress(data, max_decoded)
        if d.unconsumed_tail or not d.eof:
            raise WireError("frame does not decompress to a complete message within the cap")
        return WireUnpickler(io.BytesIO(raw)).load()
    except WireError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoding failure refuses the frame
        raise WireError(f"{type(exc).__name__}: {exc}") from exc


# -- the command fence -----------------------------------------------------------------------------

_COMMAND_GLOBALS = frozenset(
    {
        ("pysyncobj.node", "TCPNode"),
        ("pysyncobj.node", "Node"),
        ("_codecs", "encode"),
        ("builtins", "set"),
        ("builtins", "frozenset"),
        ("builtins", "bytearray"),
    }
)


class CommandUnpickler(pickle.Unpickler):
    """Log commands: containers, primitives and the few globals in ``_COMMAND_GLOBALS``."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _COMMAND_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} refused in a Raft command")


def _load_command(data: bytes | str) -> Any:
    return CommandUnpickler(io.BytesIO(ps_pickle.to_bytes(data))).load()


class _CommandPickle:
    """Stands in for ``pysyncobj.pickle`` inside ``pysyncobj.syncobj`` (commands only)."""

    to_bytes = staticmethod(ps_pickle.to_bytes)
    dumps = staticmethod(ps_pickle.dumps)
    dump = staticmethod(ps_pickle.dump)
    loads = staticmethod(_load_command)

    @staticmethod
    def load(file: Any) -> Any:
        return CommandUnpickler(file).load()


def install_command_fence() -> None:
    """Make pysyncobj decode log commands with ``CommandUnpickler`` (idempotent)."""
    ps_syncobj.pickle = _CommandPickle


# -- connections -----------------------------------------------------------------------------------


class TlsConnection:
    """One TLS connection on pysyncobj's poller, with ``TcpConnection``'s interface.

    ``on_handshake(conn, peer_der) -> bool`` decides whether an authenticated peer is accepted;
    ``on_refused(conn, reason, detail)`` reports refusals made here (handshake, bad frames).
    """

    def __init__(
        self,
        poller: Any,
        context: Callable[[], ssl.SSLContext],
        *,
        server_side: bool,
        timeout: float,
        sock: socket.socket | None = None,
        peer: str = "",
        on_handshake: Callable[[TlsConnection, bytes], bool] | None = None,
        on_refused: Callable[[TlsConnection, str, str], None] | None = None,
        keepalive: tuple[int, int, int] | None = None,
    ) -> None:
        self.sendRandKey = None  # noqa: N815 - pysyncobj's attribute names
        self.recvRandKey = None  # noqa: N815
        self.encryptor = None
        self.peer = peer
        """HOST:PORT of the other end (for logs)."""
        self.peer_name = ""
        """Member name from the peer's certificate, once authenticated."""
        self.peer_address = ""
        """Raft address that name maps to, once authenticated (accepting side)."""
        self.started = time.monotonic()
        self._poller = poller
        self._context = context
        self._server_side = server_side
        self._timeout = timeout
        self._keepalive = keepalive
        self._on_handshake = on_handshake
        self._on_refused = on_refused
        self._on_connected: Callable[[], None] | None = None
        self._on_message: Callable[[Any], None] | None = None
        self._on_disconnected: Callable[[], None] | None = None
        self._sock: Any = None
        self._fileno: int | None = None
        self._state = CONNECTION_STATE.DISCONNECTED
        self._phase = ""  # "tcp", "handshake", "open"
        self._gen = 0
        """Changes whenever the socket goes: code that ran a callback (which may disconnect and
        even reconnect this object) checks it before touching the connection again."""
        self._mask = 0
        self._rbuf = bytearray()
        self._wqueue: collections.deque[bytes] = collections.deque()
        self._wqueued = 0
        self._wcur = b""
        self._last_read = time.monotonic()
        self._accepted_sock = sock

    def start(self) -> None:
        """Start the handshake on the accepted socket given to the constructor; call after
        setting the callbacks (the handshake may complete, and frames arrive, right away)."""
        sock, self._accepted_sock = self._accepted_sock, None
        if sock is not None:
            self._start_tls(sock)

    # -- pysyncobj's interface --

    @property
    def state(self) -> int:
        return int(self._state)

    def fileno(self) -> int | None:
        return self._fileno

    def setOnConnectedCallback(self, cb: Callable[[], None] | None) -> None:  # noqa: N802
        self._on_connected = cb

    def setOnMessageReceivedCallback(self, cb: Callable[[Any], None] | None) -> None:  # noqa: N802
        self._on_message = cb

    def setOnDisconnectedCallback(self, cb: Callable[[], None] | None) -> None:  # noqa: N802
        self._on_disconnected = cb

    def getSendBufferSize(self) -> int:  # noqa: N802
        return self._wqueued + len(self._wcur)

    def connect(self, host: str | None, port: int) -> bool:
        if host is None:
            return False
        self._close_socket()
        self._state = CONNECTION_STATE.DISCONNECTED
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        self._tune(sock)
        sock.setblocking(False)
        self._reset_buffers()
        self.started = self._last_read = time.monotonic()
        self.peer = f"{host}:{port}"
        self._server_side = False
        try:
            sock.connect((host, port))
        except OSError as exc:
            if exc.errno not in (errno.EINPROGRESS, errno.EWOULDBLOCK):
                sock.close()
                return False
        self._sock = sock
        self._fileno = sock.fileno()
        self._state = CONNECTION_STATE.CONNECTING
        self._phase = "tcp"
        self._subscribe(POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.WRITE | POLL_EVENT_TYPE.ERROR)
        return True

    def send(self, message: Any) -> None:
        frame = encode_frame(message)
        self._wqueue.append(frame)
        self._wqueued += len(frame)
        if self._phase == "open":
            self._flush()

    def disconnect(self) -> None:
        notify = self._on_disconnected is not None and self._state != CONNECTION_STATE.DISCONNECTED
        self._close_socket()
        self._reset_buffers()
        self._state = CONNECTION_STATE.DISCONNECTED
        self._phase = ""
        if notify:
            assert self._on_disconnected is not None
            self._on_disconnected()

    # -- timeouts (the transport calls this from its tick for connections not yet open) --

    def check_timeout(self) -> None:
        if self._state == CONNECTION_STATE.DISCONNECTED:
            return
        now = time.monotonic()
        if self._phase == "open":
            if now - self._last_read > self._timeout:
                log.debug(
                    "raft: nothing from %s for %.1f s: closing", self.peer, now - self._last_read
                )
                self.disconnect()
        elif now - self.started > self._timeout:
            if self._phase == "handshake":
                self._handshake_failed("handshake timed out", False)
            else:
                self.disconnect()

    # -- internals --

    def _tune(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._keepalive is not None:
            idle, interval, count = self._keepalive
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, idle)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, interval)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, count)

    def _reset_buffers(self) -> None:
        self._rbuf = bytearray()
        self._wqueue = collections.deque()
        self._wqueued = 0
        self._wcur = b""

    def _close_socket(self) -> None:
        self._gen += 1
        if self._fileno is not None:
            self._poller.unsubscribe(self._fileno)
            self._fileno = None
            self._mask = 0
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None

    def _subscribe(self, mask: int) -> None:
        if self._fileno is not None and mask != self._mask:
            self._mask = mask
            self._poller.subscribe(self._fileno, self._on_event, mask)

    def _refuse(self, reason: str, detail: str) -> None:
        if self._on_refused is not None:
            self._on_refused(self, reason, detail)
        self.disconnect()

    def _handshake_failed(self, detail: str, tls_error: bool) -> None:
        """Accepting side: every failure is a refusal. Dialling side: only a TLS error (e.g. a
        certificate we do not trust) is; a peer that dies or restarts meanwhile is not."""
        if self._server_side or tls_error:
            self._refuse("handshake", detail)
        else:
            log.debug("raft: handshake with %s failed: %s", self.peer, detail)
            self.disconnect()

    def _start_tls(self, sock: socket.socket) -> None:
        """Wrap a connected socket and start the handshake."""
        try:
            if self._server_side:
                self._tune(sock)
            sock.setblocking(False)
            self._sock = self._context().wrap_socket(
                sock, server_side=self._server_side, do_handshake_on_connect=False
            )
        except (OSError, ValueError) as exc:
            sock.close()
            self._sock = None
            self._state = CONNECTION_STATE.CONNECTING  # so that disconnect() reports it
            self._refuse("handshake", f"cannot start TLS: {exc}")
            return
        self._fileno = self._sock.fileno()
        self._state = CONNECTION_STATE.CONNECTING
        self._phase = "handshake"
        self._handshake()

    def _handshake(self) -> None:
        try:
            self._sock.do_handshake()
        except ssl.SSLWantReadError:
            self._subscribe(POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.ERROR)
            return
        except ssl.SSLWantWriteError:
            self._subscribe(POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.WRITE | POLL_EVENT_TYPE.ERROR)
            return
        except (ssl.SSLError, OSError, ValueError) as exc:
            self._handshake_failed(
                str(exc) or type(exc).__name__,
                isinstance(exc, ssl.SSLError)
                and not isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)),
            )
            return
        gen = self._gen
        der = self._sock.getpeercert(True)
        if not der or self._on_handshake is None or not self._on_handshake(self, der):
            if self._gen == gen:
                self.disconnect()  # the transport has counted and logged why
            return
        if self._gen != gen:
            return
        self._phase = "open"
        self._state = CONNECTION_STATE.CONNECTED
        self._last_read = time.monotonic()
        if not self._server_side and self._on_connected is not None:
            self._on_connected()
            if self._gen != gen:
                return
        # Application data may already sit decrypted inside the SSL object (not in the socket,
        # so the poller would not report it): read it now.
        self._read()
        if self._gen == gen:
            self._flush()

    def _on_event(self, descr: int, event: int) -> None:
        if descr != self._fileno:
            self._poller.unsubscribe(descr)
            return
        if event & POLL_EVENT_TYPE.ERROR:
            if self._phase == "handshake":
                self._handshake_failed("connection error during the handshake", False)
            else:
                self.disconnect()
            return
        gen = self._gen
        self.check_timeout()
        if self._gen != gen:
            return
        if self._phase == "tcp":
            err = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self.disconnect()
                return
            if event & (POLL_EVENT_TYPE.WRITE | POLL_EVENT_TYPE.READ):
                sock, self._sock = self._sock, None
                self.started = time.monotonic()
                self._start_tls(sock)
            return
        if self._phase == "handshake":
            self._handshake()
            return
        if event & POLL_EVENT_TYPE.READ:
            self._read()
            if self._gen != gen:
                return
        self._flush()

    def _read(self) -> None:
        got = False
        while True:
            try:
                chunk = self._sock.recv(RECV_CHUNK)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            except (ssl.SSLError, OSError):
                self.disconnect()
                return
            if not chunk:
                self.disconnect()
                return
            got = True
            self._rbuf += chunk
            if len(self._rbuf) >= _HEADER.size:
                length = _HEADER.unpack_from(self._rbuf)[0]
                if length < 0 or length > MAX_FRAME:
                    self._refuse("bad_frame", f"frame of {length} bytes")
                    return
        if got:
            self._last_read = time.monotonic()
        self._deliver()

    def _deliver(self) -> None:
        buf = self._rbuf
        gen = self._gen
        pos = 0
        try:
            while len(buf) - pos >= _HEADER.size:
                length = _HEADER.unpack_from(buf, pos)[0]
                if length < 0 or length > MAX_FRAME:
                    self._refuse("bad_frame", f"frame of {length} bytes")
                    return
                end = pos + _HEADER.size + length
                if len(buf) < end:
                    break
                try:
                    message = decode_payload(bytes(buf[pos + _HEADER.size : end]))
                except WireError as exc:
                    self._refuse("bad_frame", str(exc))
                    return
                pos = end
                if self._on_message is not None:
                    self._on_message(message)
                if self._gen != gen:
                    return
        finally:
            if pos and self._gen == gen:
                del buf[:pos]

    def _flush(self) -> None:
        if self._phase != "open":
            return
        gen = self._gen
        self.check_timeout()
        while self._gen == gen:
            if not self._wcur:
                if not self._wqueue:
                    break
                # Coalesce small frames into one TLS write; a started write is retried with
                # the same bytes, as OpenSSL requires.
                parts: list[bytes] = []
                size = 0
                while self._wqueue and (not parts or size + len(self._wqueue[0]) <= SEND_CHUNK):
                    p = self._wqueue.popleft()
                    parts.append(p)
                    size += len(p)
                self._wqueued -= size
                self._wcur = parts[0] if len(parts) == 1 else b"".join(parts)
            data = self._wcur[:SEND_CHUNK] if len(self._wcur) > SEND_CHUNK else self._wcur
            try:
                sent = self._sock.send(data)
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                break
            except (ssl.SSLError, OSError):
                self.disconnect()
                return
            if sent <= 0:
                break
            self._wcur = self._wcur[sent:]
        if self._gen != gen:
            return  # closed (and perhaps already reconnecting): leave the new socket alone
        mask = POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.ERROR
        if self._wcur or self._wqueue:
            mask |= POLL_EVENT_TYPE.WRITE
        self._subscribe(mask)


class TlsServer:
    """Listening socket on exactly ``host`` (an IP literal) that hands accepted sockets on."""

    def __init__(
        self, poller: Any, host: str, port: int, on_accept: Callable[[socket.socket, str], None]
    ) -> None:
        self.host = host
        self.port = port
        self._poller = poller
        self._on_accept = on_accept
        self._sock: socket.socket | None = None
        self._fileno: int | None = None

    def bind(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.setblocking(False)
            sock.bind((self.host, self.port))
            sock.listen(128)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._fileno = sock.fileno()
        self._poller.subscribe(
            self._fileno, self._on_event, POLL_EVENT_TYPE.READ | POLL_EVENT_TYPE.ERROR
        )

    def unbind(self) -> None:
        if self._fileno is not None:
            self._poller.unsubscribe(self._fileno)
            self._fileno = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _on_event(self, descr: int, event: int) -> None:
        if event & POLL_EVENT_TYPE.READ:
            for _ in range(64):
                if self._sock is None:
                    return
                try:
                    sock, addr = self._sock.accept()
                except (BlockingIOError, InterruptedError):
                    break
                except OSError as exc:
                    if exc.errno in (
                        errno.ECONNABORTED,
                        errno.EMFILE,
                        errno.ENFILE,
                        errno.ENOBUFS,
                        errno.ENOMEM,
                    ):
                        log.warning("raft: accept failed: %s", exc)
                        break
                    raise
                host, port = addr[0], addr[1]
                self._on_accept(sock, f"[{host}]:{port}" if ":" in host else f"{host}:{port}")


def resolve_bind_host(host: str) -> str:
    """The IP to bind for ``host`` (a literal, or a name resolved once)."""
    host = host.strip("[]")
    infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    if not infos:
        raise OSError(f"cannot resolve {host}")
    return str(infos[0][4][0])


class RefusalLog:
    """Counts refusals by reason and logs them, at most a burst per window per reason."""

    def __init__(self, on_refused: Callable[[str], None] | None = None) -> None:
        self.counts: dict[str, int] = dict.fromkeys(REFUSAL_REASONS, 0)
        self._on_refused = on_refused
        self._lock = threading.Lock()
        self._window: dict[str, tuple[float, int]] = {}

    def refuse(self, reason: str, peer: str, detail: str) -> None:
        now = time.monotonic()
        with self._lock:
            self.counts[reason] = self.counts.get(reason, 0) + 1
            start, n = self._window.get(reason, (now, 0))
            if now - start > _LOG_WINDOW:
                if n > _LOG_BURST:
                    log.warning("raft: %d more %s refusals not logged", n - _LOG_BURST, reason)
                start, n = now, 0
            self._window[reason] = (start, n + 1)
        if n < _LOG_BURST:
            log.warning("raft: refused connection from %s (%s): %s", peer, reason, detail)
        if self._on_refused is not None:
            self._on_refused(reason)


class TlsTransport(TCPTransport):  # type: ignore[misc]  # pysyncobj has no types
    """pysyncobj's TCP transport over mutual TLS with the checks in the module docstring.

    ``member_address(name)`` gives a current member's Raft address (None: not a member) and
    ``member_name(address)`` the reverse; both are asked at connection time, so they follow
    membership changes.
    """

    def __init__(
        self,
        syncObj: Any,
        selfNode: Any,
        otherNodes: Any,
        *,  # noqa: N803
        tls: TlsFiles,
        member_address: Callable[[str], str | None],
        member_name: Callable[[str], str | None],
        refusals: RefusalLog,
        max_pending: int = MAX_PENDING,
    ) -> None:
        if syncObj.encryptor is not None:
            raise ValueError("pysyncobj's password encryption is not used with TLS")
        self._server_ctx = Reloading(tls, server_context)
        self._client_ctx = Reloading(tls, client_context)
        self._member_address = member_address
        self._member_name = member_name
        self.refusals = refusals
        self._max_pending = max_pending
        self._handshaking: set[TlsConnection] = set()
        super().__init__(syncObj, selfNode, otherNodes)

    # -- server --

    def _createServer(self) -> None:  # noqa: N802 - pysyncobj's name
        conf = self._syncObj.conf
        addr = conf.bindAddress or self._selfNode.address
        host, _, port = addr.rpartition(":")
        self._server = TlsServer(
            self._syncObj._poller, resolve_bind_host(host), int(port), self._accepted
        )

    def _accepted(self, sock: socket.socket, peer: str) -> None:
        if len(self._handshaking) + len(self._unknownConnections) >= self._max_pending:
            sock.close()
            self.refusals.refuse(
                "too_many", peer, f"{self._max_pending} connections are already being set up"
            )
            return
        conf = self._syncObj.conf
        conn = TlsConnection(
            self._syncObj._poller,
            self._server_ctx_get,
            server_side=True,
            timeout=conf.connectionTimeout,
            sock=sock,
            peer=peer,
            on_handshake=self._authenticate_incoming,
            on_refused=self._refused_by_conn,
            keepalive=conf.tcp_keepalive,
        )
        conn.setOnMessageReceivedCallback(functools.partial(self._onIncomingMessageReceived, conn))
        conn.setOnDisconnectedCallback(functools.partial(self._onDisconnected, conn))
        self._handshaking.add(conn)
        conn.start()

    def _server_ctx_get(self) -> ssl.SSLContext:
        return self._server_ctx.get()  # type: ignore[return-value]

    def _client_ctx_get(self) -> ssl.SSLContext:
        return self._client_ctx.get()  # type: ignore[return-value]

    def _refused_by_conn(self, conn: TlsConnection, reason: str, detail: str) -> None:
        self.refusals.refuse(reason, conn.peer, detail)

    def _refuse(self, conn: TlsConnection, reason: str, detail: str) -> None:
        self.refusals.refuse(reason, conn.peer, detail)
        self._handshaking.discard(conn)
        self._unknownConnections.discard(conn)
        conn.disconnect()

    def _authenticate_incoming(self, conn: TlsConnection, der: bytes) -> bool:
        self._handshaking.discard(conn)
        try:
            user = identity_of_der(der).user
        except Exception as exc:  # noqa: BLE001 - an unreadable certificate is refused
            self.refusals.refuse("handshake", conn.peer, f"unreadable certificate: {exc}")
            return False
        name = names.master_name(user)
        address = self._member_address(name) if name is not None else None
        if name is None or address is None:
            self.refusals.refuse(
                "not_member", conn.peer, f"certificate of {user!r} is not a current member's"
            )
            return False
        conn.peer_name, conn.peer_address = name, address
        self._unknownConnections.add(conn)
        return True

    def _onIncomingMessageReceived(self, conn: Any, message: Any) -> None:  # noqa: N802
        """The first frame of an authenticated inbound connection: the dialler's address."""
        if isinstance(message, list):
            command = message[0] if message and isinstance(message[0], str) else "?"
            self._refuse(conn, "utility", f"{conn.peer_name}: utility command {command!r}")
            return
        if message == "readonly":
            self._refuse(conn, "readonly", f"{conn.peer_name}: read-only peers are not served")
            return
        if message != conn.peer_address:
            self._refuse(
                conn,
                "spoofed",
                f"certificate of {conn.peer_name} "
                f"({conn.peer_address}) but introduced as {str(message)[:100]!r}",
            )
            return
        node = self._nodeAddrToNode.get(conn.peer_address)
        if node is None:
            self._refuse(
                conn,
                "not_member",
                f"{conn.peer_name} ({conn.peer_address}) is not in the Raft configuration",
            )
            return
        if self._shouldConnect(node):
            # pysyncobj's rule: the member with the greater address dials. An honest peer never
            # dials the other way; accepting it would replace our own outgoing connection.
            self._refuse(conn, "spoofed", f"{conn.peer_name} dialled in, but this member dials it")
            return
        self._unknownConnections.discard(conn)
        old = self._connections.get(node)
        if old is not None and old is not conn:
            old.disconnect()  # a reconnect replaces the old connection instead of orphaning it
        self._connections[node] = conn
        conn.setOnMessageReceivedCallback(functools.partial(self._onMessageReceived, node))
        self._onNodeConnected(node)

    def _onDisconnected(self, conn: Any) -> None:  # noqa: N802
        self._handshaking.discard(conn)
        super()._onDisconnected(conn)

    # -- dialling --

    def addNode(self, node: Any) -> None:  # noqa: N802
        self._nodes.add(node)
        self._nodeAddrToNode[node.address] = node
        if self._shouldConnect(node):
            conf = self._syncObj.conf
            conn = TlsConnection(
                self._syncObj._poller,
                self._client_ctx_get,
                server_side=False,
                timeout=conf.connectionTimeout,
                on_handshake=functools.partial(self._authenticate_outgoing, node),
                on_refused=self._refused_by_conn,
                keepalive=conf.tcp_keepalive,
            )
            conn.setOnConnectedCallback(functools.partial(self._onOutgoingConnected, conn))
            conn.setOnMessageReceivedCallback(functools.partial(self._onMessageReceived, node))
            conn.setOnDisconnectedCallback(functools.partial(self._onDisconnected, conn))
            self._connections[node] = conn

    def _authenticate_outgoing(self, node: TCPNode, conn: TlsConnection, der: bytes) -> bool:
        try:
            user = identity_of_der(der).user
        except Exception as exc:  # noqa: BLE001
            self.refusals.refuse("handshake", conn.peer, f"unreadable certificate: {exc}")
            return False
        expected = self._member_name(node.address)
        got = names.master_name(user)
        if expected is None or got != expected:
            self.refusals.refuse(
                "spoofed",
                conn.peer,
                f"dialled {node.address} (member {expected!r}) but its certificate names {user!r}",
            )
            return False
        conn.peer_name, conn.peer_address = got, node.address
        return True

    # -- housekeeping --

    def _onTick(self) -> None:  # noqa: N802
        super()._onTick()
        for conn in list(self._handshaking) + list(self._unknownConnections):
            conn.check_timeout()
        for conn in list(self._connections.values()):
            if conn.state == CONNECTION_STATE.CONNECTING:
                conn.check_timeout()

    def destroy(self) -> None:
        super().destroy()
        for conn in list(self._handshaking):
            conn.disconnect()
        self._handshaking = set()


def transport_class(
    tls: TlsFiles,
    member_address: Callable[[str], str | None],
    member_name: Callable[[str], str | None],
    refusals: RefusalLog,
) -> Callable[..., TlsTransport]:
    """What to pass as SyncObj's ``transportClass``."""
    return functools.partial(
        TlsTransport,
        tls=tls,
        member_address=member_address,
        member_name=member_name,
        refusals=refusals,
    )
