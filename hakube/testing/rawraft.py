"""A raw client of a master's Raft port, for tests that play the attacker (or a member): it
speaks pysyncobj's framing (4-byte length + zlib(pickle)) in plaintext or over TLS with any
certificate, and reports whether the master kept the connection open."""

from __future__ import annotations

import ipaddress
import os
import pickle
import re
import socket
import ssl
import struct
import tempfile
import time
import urllib.request
import zlib
from dataclasses import dataclass, field
from typing import Any

from hakube.pki import certs, files
from hakube.pki.layout import Pki
from hakube.store.transport import WireError, decode_payload


class CreatesFile:
    """Unpickling this calls ``open(path, "w")``: proof of code execution if the file appears."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (self.path, "w"))


def frame(obj: Any) -> bytes:
    """One pysyncobj frame holding ``obj`` (pickled with the default protocol, as an attacker
    would)."""
    data = zlib.compress(pickle.dumps(obj))
    return struct.pack("i", len(data)) + data


@dataclass(frozen=True)
class Identity:
    """TLS material a raw client presents and trusts (PEM)."""

    trust: bytes
    cert: bytes
    key: bytes

    def context(self) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=self.trust.decode())
        with tempfile.TemporaryDirectory() as d:
            c, k = os.path.join(d, "c"), os.path.join(d, "k")
            files.write_atomic(c, self.cert)
            files.write_atomic(k, self.key)
            ctx.load_cert_chain(c, k)
        return ctx


def cluster_identity(pki: Pki, identity: certs.Identity) -> Identity:
    """A certificate for ``identity`` signed by the cluster's CA."""
    ca = pki.load_ca()
    cert, key = ca.issue_pair(identity, server=True, client=True, hosts=("127.0.0.1",))
    return Identity(ca.pem, cert, key)


def member_identity(pki: Pki, name: str) -> Identity:
    """Master ``name``'s own certificate from the PKI directory."""
    return Identity(
        files.read(pki.ca_cert), files.read(pki.master_cert(name)), files.read(pki.master_key(name))
    )


def foreign_identity(pki: Pki, identity: certs.Identity) -> Identity:
    """A certificate for ``identity`` from a CA that is not the cluster's (trusting the
    cluster's CA, so that the client side of the handshake goes ahead)."""
    ca = certs.CA.load(*certs.create_ca("not-the-cluster-ca"))
    cert, key = ca.issue_pair(identity, server=True, client=True, hosts=("127.0.0.1",))
    return Identity(files.read(pki.ca_cert), cert, key)


@dataclass
class Outcome:
    closed: bool
    """The master closed the connection (or the handshake failed) within the wait."""
    handshake_failed: bool = False
    frames: list[Any] = field(default_factory=list)
    """Frames the master sent, decoded with the Raft wire decoder."""


def talk(
    address: str,
    data: bytes,
    identity: Identity | None = None,
    *,
    wait: float = 5.0,
    hold: float = 0.0,
) -> Outcome:
    """Connect to ``address`` (TLS with ``identity``, else plaintext), send ``data`` and read
    until the master closes the connection (deadline ``wait``) or, with ``hold``, for that
    long at most (to see that a connection stays open)."""
    host, _, port = address.rpartition(":")
    raw = socket.create_connection((host, int(port)), timeout=wait)
    sock: socket.socket = raw
    out = Outcome(closed=False)
    try:
        if identity is not None:
            try:
                sock = identity.context().wrap_socket(raw)
            except (ssl.SSLError, OSError):
                out.closed = out.handshake_failed = True
                return out
        try:
            sock.sendall(data)
        except (ssl.SSLError, OSError):
            out.closed = True
            return out
        buf = b""
        deadline = time.monotonic() + (hold or wait)
        while time.monotonic() < deadline:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionError):
                out.closed = True
                break
            except ssl.SSLError:  # an alert: the master refused our certificate
                out.closed = out.handshake_failed = True
                break
            if not chunk:
                out.closed = True
                break
            buf += chunk
            while len(buf) >= 4:
                n = struct.unpack("i", buf[:4])[0]
                if len(buf) < 4 + n:
                    break
                try:
                    out.frames.append(decode_payload(buf[4 : 4 + n]))
                except WireError as exc:
                    out.frames.append(exc)
                buf = buf[4 + n :]
        return out
    finally:
        sock.close()


def refused(metrics_address: str) -> dict[str, float]:
    """``hakube_raft_refused_connections_total`` by reason, from a master's /metrics."""
    with urllib.request.urlopen(f"http://{metrics_address}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {
        m.group(1): float(m.group(2))
        for m in re.finditer(
            r'^hakube_raft_refused_connections_total\{reason="(\w+)"\} (\S+)$', text, re.M
        )
    }


def listening_addresses(port: int) -> list[str]:
    """Local addresses (IP) with a socket listening on TCP ``port``, from /proc/net/tcp{,6}."""
    found = []
    for path, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            with open(path) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            local, state = cols[1], cols[3]
            hexip, hexport = local.split(":")
            if state != "0A" or int(hexport, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(hexip)
            if v6:
                # Four 32-bit words, each in host (little-endian) order.
                raw = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
                found.append(str(ipaddress.IPv6Address(raw)))
            else:
                found.append(str(ipaddress.IPv4Address(raw[::-1])))
    return found
