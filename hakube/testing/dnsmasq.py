"""A real ``dnsmasq`` (Debian) on loopback, answering from a hosts file of its own.

The tests use it as the upstream resolver cluster DNS forwards to; the DNS benchmark runs it as
the peer, serving the same records as ``hakube dns``. It reads no system file (no
/etc/resolv.conf, /etc/hosts or /etc/dnsmasq.conf) and forwards nothing: it answers only what its
hosts file holds, so no query leaves the machine.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query


class DnsmasqUnavailable(RuntimeError):
    """dnsmasq cannot run here; the message says why."""


def free_udp_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (a DNS server binds both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.bind(("127.0.0.1", 0))
            port = int(u.getsockname()[1])
            with socket.socket() as t:
                try:
                    t.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise OSError("no port free for both UDP and TCP on 127.0.0.1")


class Dnsmasq:
    """One dnsmasq process; ``stop()`` is idempotent. ``hosts``: lines ``IP NAME...``."""

    def __init__(self, hosts: list[str], *, cache_size: int = 10000, ttl: int = 5) -> None:
        self.base = Path(tempfile.mkdtemp(prefix="hakube-dnsmasq-"))
        self.hosts = self.base / "hosts"
        self.hosts.write_text("".join(line + "\n" for line in hosts))
        self.cache_size = cache_size
        self.ttl = ttl
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> Dnsmasq:
        binary = shutil.which("dnsmasq") or (
            "/usr/sbin/dnsmasq" if Path("/usr/sbin/dnsmasq").exists() else None
        )
        if binary is None:
            raise DnsmasqUnavailable("dnsmasq is not installed (Debian: dnsmasq-base)")
        self.port = free_udp_port()
        self.proc = subprocess.Popen(
            [
                binary,
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--no-poll",
                f"--addn-hosts={self.hosts}",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
                f"--port={self.port}",
                f"--cache-size={self.cache_size}",
                f"--local-ttl={self.ttl}",
                "--pid-file=",
                # Stay the invoking user: the hosts file lives in a private temp dir (/tmp
                # itself may be 0700), which the usual "nobody" could not read.
                f"--user={pwd.getpwuid(os.getuid()).pw_name}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(self.base / "dnsmasq.log", "wb"),  # noqa: SIM115 - the child's
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        q = dns.message.make_query("probe.invalid.", "A")
        while True:
            if self.proc.poll() is not None:
                log = (self.base / "dnsmasq.log").read_text(errors="replace")
                raise DnsmasqUnavailable(f"dnsmasq exited ({self.proc.returncode}): {log}")
            try:
                dns.query.udp(q, "127.0.0.1", port=self.port, timeout=0.2)
                return self
            except (dns.exception.Timeout, OSError):
                if time.monotonic() > deadline:
                    raise DnsmasqUnavailable(
                        "dnsmasq did not answer within its start timeout"
                    ) from None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> Dnsmasq:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
