"""Tiny OCI images built locally from Debian's busybox-static.

No image registry is reachable from the machines hakube is tested on, so the images that real
containerd runs are made here: one gzip'd layer holding ``/bin/busybox`` plus symlinks for the
applets tests use, an image config, a manifest and an index, written as an OCI image layout
archive that ``ctr images import`` accepts, or pushed blob by blob to a local registry.

Builds are deterministic (fixed mtimes and owners, gzip without a timestamp), so the same
busybox binary always gives the same image id.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import platform
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

BUSYBOX = Path("/bin/busybox")
"""Where Debian's busybox-static puts its binary."""

DEFAULT_APPLETS: tuple[str, ...] = (
    "sh",
    "sleep",
    "echo",
    "cat",
    "env",
    "printenv",
    "ls",
    "true",
    "false",
    "id",
    "hostname",
    "pwd",
    "mkdir",
    "rm",
    "touch",
    "ps",
    "kill",
    "wc",
    "head",
    "tail",
    "yes",
    "dd",
    "date",
    "test",
    "[",
    "grep",
    "seq",
    "uname",
    "stat",
    "nproc",
    "free",
)
"""Applets linked into /bin; enough for shell-scripted test containers."""

NET_APPLETS: tuple[str, ...] = (
    *DEFAULT_APPLETS,
    *("httpd", "wget", "nc", "nslookup", "ip", "ping", "route", "printf", "chmod"),
)
"""DEFAULT_APPLETS and the network ones (a web server, a client, a resolver, ip)."""

PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

_EPOCH = 1_700_000_000  # fixed mtime for reproducible layers


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _canonical_json(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class OciImage:
    """A built image: every blob in memory, ready to import or push.

    ``name`` is the full reference containerd will know it by (``host/repo:tag``);
    ``image_id`` is the config digest, which is what CRI reports as the image id.
    """

    name: str
    manifest: bytes
    config: bytes
    layers: tuple[bytes, ...]

    @property
    def manifest_digest(self) -> str:
        return _digest(self.manifest)

    @property
    def image_id(self) -> str:
        return _digest(self.config)

    @property
    def size(self) -> int:
        return len(self.manifest) + len(self.config) + sum(len(b) for b in self.layers)

    def blobs(self) -> dict[str, bytes]:
        """Every blob by digest: layers, config and manifest."""
        out = {_digest(b): b for b in self.layers}
        out[self.image_id] = self.config
        out[self.manifest_digest] = self.manifest
        return out

    def index(self) -> bytes:
        """The OCI index naming this image, with the annotation containerd imports it by."""
        tag = self.name.rsplit(":", 1)[1] if ":" in self.name.rsplit("/", 1)[-1] else "latest"
        return _canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": MEDIA_INDEX,
                "manifests": [
                    {
                        "mediaType": MEDIA_MANIFEST,
                        "digest": self.manifest_digest,
                        "size": len(self.manifest),
                        "platform": {"architecture": _goarch(), "os": "linux"},
                        "annotations": {
                            "io.containerd.image.name": self.name,
                            "org.opencontainers.image.ref.name": tag,
                        },
                    }
                ],
            }
        )

    def write_archive(self, path: Path) -> Path:
        """Write an OCI image layout as a tar archive (what ``ctr images import`` reads)."""
        with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tar:
            _add_file(tar, "oci-layout", _canonical_json({"imageLayoutVersion": "1.0.0"}))
            _add_file(tar, "index.json", self.index())
            _add_dir(tar, "blobs")
            _add_dir(tar, "blobs/sha256")
            for digest, blob in sorted(self.blobs().items()):
                _add_file(tar, "blobs/sha256/" + digest.split(":", 1)[1], blob)
        return path


def _goarch() -> str:
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def _add_file(tar: tarfile.TarFile, name: str, data: bytes, mode: int = 0o644) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = _EPOCH
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str, mode: int = 0o755) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = mode
    info.mtime = _EPOCH
    tar.addfile(info)


def _add_symlink(tar: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    info.mode = 0o777
    info.mtime = _EPOCH
    tar.addfile(info)


def busybox_layer(*, busybox: Path = BUSYBOX, applets: Iterable[str] = DEFAULT_APPLETS) -> bytes:
    """An uncompressed root filesystem tar: busybox, its applet links, a minimal /etc."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in ("bin", "etc", "tmp", "proc", "sys", "dev", "root", "var", "run"):
            _add_dir(tar, d, 0o1777 if d == "tmp" else 0o755)
        _add_file(tar, "bin/busybox", busybox.read_bytes(), 0o755)
        for applet in sorted(set(applets)):
            _add_symlink(tar, f"bin/{applet}", "busybox")
        _add_file(
            tar,
            "etc/passwd",
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        )
        _add_file(tar, "etc/group", b"root:x:0:\nnogroup:x:65534:\n")
    return buf.getvalue()


def build_image(
    name: str,
    *,
    rootfs_tar: bytes,
    entrypoint: Sequence[str] = (),
    cmd: Sequence[str] = (),
    env: Sequence[str] = (PATH_ENV,),
    working_dir: str = "/",
) -> OciImage:
    """Wrap one uncompressed rootfs tar into a single-layer OCI image."""
    layer = gzip.compress(rootfs_tar, compresslevel=6, mtime=0)
    config_obj = {
        "architecture": _goarch(),
        "os": "linux",
        "created": "2023-11-14T22:13:20Z",
        "config": {
            "Env": list(env),
            "Entrypoint": list(entrypoint) or None,
            "Cmd": list(cmd) or None,
            "WorkingDir": working_dir,
        },
        "rootfs": {"type": "layers", "diff_ids": [_digest(rootfs_tar)]},
        "history": [{"created": "2023-11-14T22:13:20Z", "created_by": "hakube.testing.images"}],
    }
    config = _canonical_json(config_obj)
    manifest = _canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": {"mediaType": MEDIA_CONFIG, "digest": _digest(config), "size": len(config)},
            "layers": [
                {"mediaType": MEDIA_LAYER_GZIP, "digest": _digest(layer), "size": len(layer)}
            ],
        }
    )
    return OciImage(name=name, manifest=manifest, config=config, layers=(layer,))


def busybox_image(name: str, *, busybox: Path = BUSYBOX, cmd: Sequence[str] = ("sh",)) -> OciImage:
    """A general-purpose test image: busybox with the default applets, ``sh`` by default."""
    return build_image(name, rootfs_tar=busybox_layer(busybox=busybox), cmd=cmd)


PAUSE_SCRIPT = "trap 'exit 0' TERM INT; while true; do sleep 3600 & wait $!; done"
"""A pause process in shell: sleeps forever, exits at once on SIGTERM/SIGINT (as PID 1 a
process ignores signals it has no handler for, hence the trap)."""


def pause_image(name: str, *, busybox: Path = BUSYBOX) -> OciImage:
    """A stand-in for registry.k8s.io/pause, to be the sandbox image."""
    return build_image(
        name,
        rootfs_tar=busybox_layer(busybox=busybox, applets=("sh", "sleep")),
        entrypoint=("/bin/sh", "-c", PAUSE_SCRIPT),
    )
