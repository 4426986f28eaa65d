"""The images of the README's tour, for a containerd that cannot reach a registry.

``python3 -m hakube.testing.sampleimages`` builds ``busybox:stable`` (Debian's busybox-static
with the applets the examples use: a shell, ``httpd``, ``wget``, ``nslookup``, ``nc``) and, when
containerd does not have it yet, a stand-in for its sandbox (pause) image, and imports both into
containerd's CRI namespace with ``ctr images import`` -- what ``examples/hello.yaml`` and
``examples/pod.yaml`` then run without pulling (their tag is not ``latest``, so the pull policy
is IfNotPresent). A machine that can pull from Docker Hub needs none of this.

Options: ``--address`` containerd's socket, ``--sandbox-image`` the name its CRI config gives
the pause image (``crictl info | grep sandboxImage``), ``--snapshotter`` the CRI plugin's.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from hakube.testing.images import NET_APPLETS, OciImage, build_image, busybox_layer, pause_image

SAMPLE_IMAGE = "docker.io/library/busybox:stable"
"""What ``busybox:stable`` in a manifest means to containerd."""
DEFAULT_SANDBOX_IMAGE = "registry.k8s.io/pause:3.6"
"""Debian 12 containerd's default ``sandbox_image``."""
DEFAULT_ADDRESS = "/run/containerd/containerd.sock"
CRI_NAMESPACE = "k8s.io"


def sample_image(name: str = SAMPLE_IMAGE) -> OciImage:
    return build_image(name, rootfs_tar=busybox_layer(applets=NET_APPLETS), cmd=("sh",))


def _ctr(address: str, *args: str) -> str:
    cmd = ["ctr", "--address", address, "--namespace", CRI_NAMESPACE, *args]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def import_samples(
    address: str = DEFAULT_ADDRESS,
    *,
    sandbox_image: str = DEFAULT_SANDBOX_IMAGE,
    snapshotter: str = "overlayfs",
) -> list[str]:
    """Import the tour's image, and the pause stand-in unless containerd has that image
    already (a real one is never replaced); returns the names imported."""
    present = set(_ctr(address, "images", "ls", "-q").split())
    images = [sample_image()]
    if sandbox_image not in present:
        images.append(pause_image(sandbox_image))
    with tempfile.TemporaryDirectory(prefix="hakube-images-") as tmp:
        for image in images:
            archive = image.write_archive(Path(tmp) / "image.tar")
            _ctr(address, "images", "import", "--snapshotter", snapshotter, str(archive))
    return [image.name for image in images]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python3 -m hakube.testing.sampleimages",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    p.add_argument("--address", default=DEFAULT_ADDRESS, help="containerd's socket")
    p.add_argument("--sandbox-image", default=DEFAULT_SANDBOX_IMAGE, help="the pause image name")
    p.add_argument("--snapshotter", default="overlayfs", help="the CRI plugin's snapshotter")
    args = p.parse_args(argv)
    try:
        names = import_samples(
            args.address, sandbox_image=args.sandbox_image, snapshotter=args.snapshotter
        )
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        print(f"sampleimages: {exc}", file=sys.stderr)
        return 1
    for name in names:
        print(f"imported {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
