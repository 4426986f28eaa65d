"""Pod volumes as host directories bind-mounted into containers.

Each pod gets ``<root>/pods/<uid>/volumes/<name>``: an emptyDir is that directory (it lives as
long as the pod does on this node), configMap / secret / projected / downwardAPI volumes are
files written there from the API objects (rewritten on every reconcile, so an edited ConfigMap
shows up within a resync period, as with the kubelet), hostPath is the host path itself. Only the
agent writes these directories; containers see configMap, secret, projected and downwardAPI
volumes read-only.

Secret data stays off the node's disk: a secret volume, and a projected volume with a secret
or a ServiceAccount token source (``hakube.agent.satokens``), is a tmpfs mounted on its
directory (``hakube.agent.tmpfs``) before anything is written, and its files are 0400 unless
the pod gives a mode. If the tmpfs cannot be mounted, the pod's containers wait with that
error, unless the agent runs with ``secret_volumes_on_disk`` (a development and
simulated-runtime setting). ``remove`` and ``sweep`` unmount before deleting.

A missing ConfigMap or Secret that is not optional raises ``env.ConfigError``: the container
waits with reason CreateContainerConfigError until it exists.

Every path the spec names is joined under its volume directory by ``_under``, which resolves
symlinks and refuses a result outside that directory: the API refuses ``..`` and absolute paths
(``hakube.api.podpaths``), and the worker refuses a spec that still has one before it runs the
pod, but an emptyDir is writable by the pod's containers, so a symlink planted there must not
turn a later ``subPath`` into the node's root.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hakube.agent import tmpfs
from hakube.agent.env import ConfigError, Lookup, PodFacts, field_value
from hakube.api import podpaths
from hakube.api.v1 import pod_pb2
from hakube.cri.v1 import api_pb2 as cri

log = logging.getLogger("hakube.agent.volumes")

DEFAULT_MODE = 0o644
SECRET_DEFAULT_MODE = 0o400
"""Files of secret volumes (and projected volumes with a secret source) without a mode."""


@dataclass(frozen=True)
class HostVolume:
    path: str
    read_only: bool
    """Forced read-only (API-projected data)."""


class PathEscape(ConfigError):
    """A path in the spec (or a symlink on the way) leads outside its volume directory."""


def pod_dir(root: str, uid: str) -> Path:
    """``<root>/pods/<uid>``; a uid that is not one plain path element is refused (PathEscape),
    whatever reached the store, so no removal can climb out of ``<root>/pods``."""
    if why := podpaths.name_problem(uid):
        raise PathEscape(f'pod uid "{uid}": {why}')
    return Path(root) / "pods" / uid


def _under(base: Path, rel: str, *, item: bool) -> Path:
    """``base / rel`` with symlinks resolved, refused unless it stays inside ``base``."""
    why = podpaths.path_problem(rel, item=item)
    if why:
        raise PathEscape(f'path "{rel}": {why}')
    root = base.resolve()
    out = (root / rel).resolve()
    if out != root and root not in out.parents:
        raise PathEscape(f'path "{rel}" resolves outside its volume directory')
    return out


def _write_files(target: Path, files: dict[str, tuple[bytes, int]]) -> None:
    """Make ``target`` hold exactly ``files`` (relative path -> (content, mode)); each file is
    replaced atomically so a container never reads half of one."""
    target.mkdir(parents=True, exist_ok=True)
    for rel, (data, mode) in files.items():
        if podpaths.mode_problem(mode):
            raise PathEscape(f'path "{rel}": {podpaths.mode_problem(mode)}')
        path = target / rel
        _under(target, str(Path(rel).parent), item=False)
        path.parent.mkdir(parents=True, exist_ok=True)
        path = _under(target, rel, item=True)
        try:
            if path.read_bytes() == data and (path.stat().st_mode & 0o777) == mode:
                continue
        except OSError:
            pass
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    keep = {target / rel for rel in files} | {p for rel in files for p in (target / rel).parents}
    for p in sorted(target.rglob("*"), key=lambda p: -len(p.parts)):
        if p not in keep:
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)


def _keys(
    kind: str,
    name: str,
    items: list[pod_pb2.KeyToPath],
    mode: int,
    lookup: Lookup,
    ns: str,
    optional: bool,
) -> dict[str, tuple[bytes, int]]:
    obj = lookup(kind, ns, name)
    if obj is None:
        if optional:
            return {}
        raise ConfigError(f'{kind.lower()} "{name}" not found')
    if kind == "Secret":
        raw = dict(obj.data) | {k: v.encode() for k, v in obj.string_data.items()}
    else:
        raw = dict(obj.binary_data) | {k: v.encode() for k, v in obj.data.items()}
    if not items:
        return {k: (v, mode) for k, v in raw.items()}
    out = {}
    for it in items:
        if it.key not in raw:
            if optional:
                continue
            raise ConfigError(f'{kind.lower()} "{name}": no key "{it.key}"')
        out[it.path] = (raw[it.key], it.mode if it.HasField("mode") else mode)
    return out


def _downward(
    pod: pod_pb2.Pod, items: list[pod_pb2.DownwardAPIVolumeFile], mode: int, facts: PodFacts
) -> dict[str, tuple[bytes, int]]:
    out = {}
    for it in items:
        if not it.field_ref.field_path:
            raise ConfigError(f'downwardAPI "{it.path}": only fieldRef is supported')
        value = field_value(pod, it.field_ref.field_path, facts)
        out[it.path] = (value.encode(), it.mode if it.HasField("mode") else mode)
    return out


def holds_secrets(v: pod_pb2.Volume) -> bool:
    """Whether the volume's files come (partly) from a Secret or are a ServiceAccount token."""
    return v.HasField("secret") or (
        v.HasField("projected")
        and any(
            src.HasField("secret") or src.HasField("service_account_token")
            for src in v.projected.sources
        )
    )


def _secret_dir(d: Path, volume: str, on_disk: bool) -> None:
    """Make ``d`` a tmpfs mount point (emptied first, so no earlier file stays on disk below
    it), unless ``on_disk``."""
    if on_disk:
        d.mkdir(parents=True, exist_ok=True)
        return
    if d.is_dir() and tmpfs.is_tmpfs(d):
        return
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True, exist_ok=True)
    try:
        tmpfs.mount(d)
    except tmpfs.MountError as e:
        raise ConfigError(
            f'volume "{volume}": {e.strerror}; Secret data is never written to the node\'s '
            "disk (an agent that cannot mount tmpfs needs --secret-volumes-on-disk)"
        ) from e


TokenSource = Callable[[pod_pb2.Pod, pod_pb2.ServiceAccountTokenProjection], bytes]
"""The current ServiceAccount token for a projection (hakube.agent.satokens); ConfigError when
the masters refuse one."""


def prepare(
    pod: pod_pb2.Pod,
    root: str,
    lookup: Lookup,
    facts: PodFacts,
    *,
    secrets_on_disk: bool = False,
    tokens: TokenSource | None = None,
) -> dict[str, HostVolume]:
    """Create or refresh every volume of ``pod``; returns volume name -> host directory.
    ``secrets_on_disk``: write secret volumes to plain directories instead of tmpfs.
    ``tokens``: where ServiceAccount tokens come from (None: a pod with a token volume waits)."""
    base = pod_dir(root, pod.metadata.uid) / "volumes"
    ns = pod.metadata.namespace
    out: dict[str, HostVolume] = {}
    for v in pod.spec.volumes:
        d = _under(base, v.name, item=True)
        if v.HasField("host_path"):
            out[v.name] = HostVolume(_host_path(v.host_path), False)
            continue
        if holds_secrets(v):
            _secret_dir(d, v.name, secrets_on_disk)
        if v.HasField("config_map"):
            s = v.config_map
            mode = s.default_mode if s.HasField("default_mode") else DEFAULT_MODE
            _write_files(d, _keys("ConfigMap", s.name, list(s.items), mode, lookup, ns, s.optional))
        elif v.HasField("secret"):
            s2 = v.secret
            mode = s2.default_mode if s2.HasField("default_mode") else SECRET_DEFAULT_MODE
            _write_files(
                d, _keys("Secret", s2.secret_name, list(s2.items), mode, lookup, ns, s2.optional)
            )
        elif v.HasField("projected"):
            p = v.projected
            mode = (
                p.default_mode
                if p.HasField("default_mode")
                else (SECRET_DEFAULT_MODE if holds_secrets(v) else DEFAULT_MODE)
            )
            files: dict[str, tuple[bytes, int]] = {}
            for src in p.sources:
                if src.HasField("config_map") or src.HasField("secret"):
                    kind, ref = (
                        ("ConfigMap", src.config_map)
                        if src.HasField("config_map")
                        else ("Secret", src.secret)
                    )
                    files.update(
                        _keys(kind, ref.name, list(ref.items), mode, lookup, ns, ref.optional)
                    )
                elif src.HasField("downward_api"):
                    files.update(_downward(pod, list(src.downward_api.items), mode, facts))
                elif src.HasField("service_account_token"):
                    if tokens is None:
                        raise ConfigError(
                            f'volume "{v.name}": this agent cannot request ServiceAccount tokens'
                        )
                    sat = src.service_account_token
                    files[sat.path] = (tokens(pod, sat), mode)
            _write_files(d, files)
        elif v.HasField("downward_api"):
            _write_files(d, _downward(pod, list(v.downward_api.items), DEFAULT_MODE, facts))
        elif v.HasField("persistent_volume_claim"):
            raise ConfigError(
                f'volume "{v.name}": persistentVolumeClaim volumes are not supported by this agent'
            )
        else:  # emptyDir, or no source at all (Kubernetes defaults that to emptyDir)
            d.mkdir(parents=True, exist_ok=True)
            out[v.name] = HostVolume(str(d), False)
            continue
        out[v.name] = HostVolume(str(d), True)
    return out


def _host_path(src: pod_pb2.HostPathVolumeSource) -> str:
    path = Path(src.path)
    kind = src.type
    if kind == "DirectoryOrCreate":
        path.mkdir(parents=True, exist_ok=True)
    elif kind == "FileOrCreate" and not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    elif kind == "Directory" and not path.is_dir():
        raise ConfigError(f"hostPath {src.path}: not a directory")
    elif kind == "File" and not path.is_file():
        raise ConfigError(f"hostPath {src.path}: not a file")
    return str(path)


def mounts(c: pod_pb2.Container, volumes: dict[str, HostVolume]) -> list[cri.Mount]:
    """The CRI mounts of one container."""
    out = []
    for m in c.volume_mounts:
        vol = volumes.get(m.name)
        if vol is None:
            raise ConfigError(f'volume "{m.name}" not prepared')
        host = vol.path
        if m.sub_path:
            sub = _under(Path(host), m.sub_path, item=False)
            if not sub.exists():
                sub.mkdir(parents=True, exist_ok=True)
                sub = _under(Path(host), m.sub_path, item=False)
            host = str(sub)
        out.append(
            cri.Mount(
                container_path=m.mount_path, host_path=host, readonly=m.read_only or vol.read_only
            )
        )
    return out


def remove(root: str, uid: str) -> None:
    """Unmount the pod's tmpfs volumes and delete its directory (its emptyDirs and written
    files; never a hostPath)."""
    try:
        d = pod_dir(root, uid)
    except PathEscape as e:
        log.warning("not removing the volumes of a pod: %s", e)
        return
    if not d.exists():
        return
    for m in tmpfs.mounts_under(d):
        try:
            tmpfs.unmount(m)
        except tmpfs.MountError as e:
            log.warning("%s", e)
    shutil.rmtree(d, ignore_errors=True)


def sweep(root: str, live: set[str]) -> list[str]:
    """Remove the directories (and unmount the tmpfs volumes) of pods not in ``live``: those
    deleted while the agent was down. Returns the uids removed."""
    gone = []
    pods = Path(root) / "pods"
    if pods.is_dir():
        for d in pods.iterdir():
            if d.is_dir() and d.name not in live:
                remove(root, d.name)
                gone.append(d.name)
    return gone
