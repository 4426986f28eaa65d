"""A local image registry on loopback, so that CRI PullImage is exercised for real.

Debian's ``docker-registry`` (the CNCF distribution registry, v2 API) is started on
127.0.0.1 with its storage in a private directory, and images built by
``hakube.testing.images`` are pushed into it over the registry HTTP API (blob uploads, then the
manifest) by the few lines below, so no other tool is needed. containerd talks plain HTTP to a
registry on 127.0.0.1 without extra configuration.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from hakube.testing.images import MEDIA_MANIFEST, OciImage


class RegistryUnavailable(RuntimeError):
    """The registry cannot run here; the message says why."""


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalRegistry:
    """One ``docker-registry`` process on 127.0.0.1; ``stop()`` is idempotent."""

    def __init__(self, *, start_timeout: float = 20.0) -> None:
        self.start_timeout = start_timeout
        self.base = Path(tempfile.mkdtemp(prefix="hakube-registry-"))
        self.port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``: the registry part of image references."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> LocalRegistry:
        binary = shutil.which("docker-registry")
        if binary is None:
            raise RegistryUnavailable(
                "docker-registry is not installed (Debian: apt-get install docker-registry)"
            )
        self.port = _free_port()
        config = self.base / "config.yml"
        config.write_text(
            "version: 0.1\n"
            "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.base / 'data'}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{self.port}\n"
        )
        self._log = open(self.base / "registry.log", "ab")  # closed in stop()
        self._proc = subprocess.Popen(
            [binary, "serve", str(config)],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = (self.base / "registry.log").read_text(errors="replace")[-2000:]
                self.stop()
                raise RegistryUnavailable(f"docker-registry exited at start:\n{tail}")
            try:
                if self._request("GET", "/v2/")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RegistryUnavailable(f"docker-registry did not answer within {self.start_timeout}s")

    def stop(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.terminate()
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait(timeout=10)
            self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> LocalRegistry:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- pushing --------------------------------------------------------------------------------

    def push(self, image: OciImage, repository: str, tag: str) -> str:
        """Upload ``image`` as ``repository:tag``; returns the full reference to pull."""
        blobs = {d: b for d, b in image.blobs().items() if d != image.manifest_digest}
        for digest, blob in blobs.items():
            if self._request("HEAD", f"/v2/{repository}/blobs/{digest}")[0] == 200:
                continue
            status, headers, body = self._request("POST", f"/v2/{repository}/blobs/uploads/")
            if status != 202:
                raise RuntimeError(f"registry: starting upload of {digest}: {status} {body!r}")
            location = urlsplit(headers["location"])
            query = f"{location.query}&digest={digest}" if location.query else f"digest={digest}"
            path = f"{location.path}?{query}"
            status, _, body = self._request(
                "PUT", path, blob, {"Content-Type": "application/octet-stream"}
            )
            if status != 201:
                raise RuntimeError(f"registry: uploading {digest}: {status} {body!r}")
        status, _, body = self._request(
            "PUT",
            f"/v2/{repository}/manifests/{tag}",
            image.manifest,
            {"Content-Type": MEDIA_MANIFEST},
        )
        if status != 201:
            raise RuntimeError(f"registry: putting manifest {repository}:{tag}: {status} {body!r}")
        return f"{self.host}/{repository}:{tag}"

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()
