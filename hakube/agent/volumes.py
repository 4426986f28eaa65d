"""Pod volumes as host directories bind-mounted into containers.

Each pod gets ``<root>/pods/<uid>/volumes/<name>``: an emptyDir is that directory (it lives as
long as the pod does on this node), configMap / secret / projected / downwardAPI volumes are
files written there from the API objects (rewritten on every reconcile, so an edited ConfigMap
shows up within a resync period, as with the kubelet), hostPath is the host path itself. Only the
agent writes these directories; containers see configMap, secret, projected and downwardAPI
volumes read-only.

A missing ConfigMap or Secret that is not optional raises ``env.ConfigError``: the container
waits with reason CreateContainerConfigError until it exists.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from hakube.agent.env import ConfigError, Lookup, PodFacts, field_value
from hakube.api.v1 import pod_pb2
from hakube.cri.v1 import api_pb2 as cri

DEFAULT_MODE = 0o644


@dataclass(frozen=True)
class HostVolume:
    path: str
    read_only: bool
    """Forced read-only (API-projected data)."""


def pod_dir(root: str, uid: str) -> Path:
    return Path(root) / "pods" / uid


def _write_files(target: Path, files: dict[str, tuple[bytes, int]]) -> None:
    """Make ``target`` hold exactly ``files`` (relative path -> (content, mode)); each file is
    replaced atomically so a container never reads half of one."""
    target.mkdir(parents=True, exist_ok=True)
    for rel, (data, mode) in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
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


def prepare(pod: pod_pb2.Pod, root: str, lookup: Lookup, facts: PodFacts) -> dict[str, HostVolume]:
    """Create or refresh every volume of ``pod``; returns volume name -> host directory."""
    base = pod_dir(root, pod.metadata.uid) / "volumes"
    ns = pod.metadata.namespace
    out: dict[str, HostVolume] = {}
    for v in pod.spec.volumes:
        d = base / v.name
        if v.HasField("host_path"):
            out[v.name] = HostVolume(_host_path(v.host_path), False)
            continue
        if v.HasField("config_map"):
            s = v.config_map
            mode = s.default_mode if s.HasField("default_mode") else DEFAULT_MODE
            _write_files(d, _keys("ConfigMap", s.name, list(s.items), mode, lookup, ns, s.optional))
        elif v.HasField("secret"):
            s2 = v.secret
            mode = s2.default_mode if s2.HasField("default_mode") else DEFAULT_MODE
            _write_files(
                d, _keys("Secret", s2.secret_name, list(s2.items), mode, lookup, ns, s2.optional)
            )
        elif v.HasField("projected"):
            p = v.projected
            mode = p.default_mode if p.HasField("default_mode") else DEFAULT_MODE
            files: dict[str, tuple[bytes, int]] = {}
            for src in p.sources:
                if src.HasField("config_map"):
                    files.update(
                        _keys(
                            "ConfigMap",
                            src.config_map.name,
                            list(src.config_map.items),
                            mode,
                            lookup,
                            ns,
                            src.config_map.optional,
                        )
                    )
                elif src.HasField("secret"):
                    files.update(
                        _keys(
                            "Secret",
                            src.secret.name,
                            list(src.secret.items),
                            mode,
                            lookup,
                            ns,
                            src.secret.optional,
                        )
                    )
                elif src.HasField("downward_api"):
                    files.update(_downward(pod, list(src.downward_api.items), mode, facts))
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
            sub = Path(host) / m.sub_path
            if not sub.exists():
                sub.mkdir(parents=True, exist_ok=True)
            host = str(sub)
        out.append(
            cri.Mount(
                container_path=m.mount_path, host_path=host, readonly=m.read_only or vol.read_only
            )
        )
    return out


def remove(root: str, uid: str) -> None:
    """Delete the pod's directory (its emptyDirs and written files; never a hostPath)."""
    shutil.rmtree(pod_dir(root, uid), ignore_errors=True)
