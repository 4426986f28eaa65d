"""The file paths and modes a pod spec asks the node agent to create, and their rules.

A pod names files the agent writes on the node (``items[].path`` of configMap, secret, projected
and downwardAPI volumes, with ``mode``/``defaultMode``) and directories it bind-mounts
(``volumeMounts[].subPath``). Unchecked, ``path: ../../etc/cron.d/x`` writes outside the pod's
directory, ``mode: 04777`` makes a setuid file and ``subPath: ../..`` mounts the node's root.

The rules are Kubernetes': a path is relative, has no ``..`` element, and an item path does not
start with ``..``; a mode is 0..0777 (no setuid, setgid or sticky bit). The API server refuses a
spec that breaks them (``hakube.apiserver.validation``) and the agent checks again before it
runs a pod (``hakube.agent.volumes``), because a spec can reach the store by other means (a
restored snapshot, an older master, a bug) and the agent runs as root.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from hakube.api.v1 import pod_pb2

MAX_MODE = 0o777


def path_problem(path: str, *, item: bool) -> str | None:
    """Why ``path`` may not name a file (``item``) or a subPath under a volume, or None."""
    if item and not path:
        return "required value"
    if "\x00" in path:
        return "must not contain a NUL character"
    if path.startswith("/"):
        return "must be a relative path"
    if ".." in path.split("/"):
        return "must not contain '..'"
    if item and path.startswith(".."):
        return "must not start with '..'"
    return None


def mode_problem(mode: int) -> str | None:
    """Why ``mode`` may not be a file's mode, or None."""
    if not 0 <= mode <= MAX_MODE:
        return (
            f"invalid mode {mode:#o}: must be between 0 and 0777 (no setuid, setgid or sticky bit)"
        )
    return None


_File = pod_pb2.KeyToPath | pod_pb2.DownwardAPIVolumeFile
"""An item of a volume: a key's file or a downward API file (both have ``path`` and ``mode``)."""


def _items(items: Sequence[_File], path: str) -> Iterator[tuple[str, str]]:
    for j, it in enumerate(items):
        why = path_problem(it.path, item=True)
        if why:
            yield f"{path}.items[{j}].path", why
        if it.HasField("mode") and (why := mode_problem(it.mode)):
            yield f"{path}.items[{j}].mode", why


def _default_mode(
    src: pod_pb2.ConfigMapVolumeSource | pod_pb2.SecretVolumeSource | pod_pb2.ProjectedVolumeSource,
    path: str,
) -> Iterator[tuple[str, str]]:
    if src.HasField("default_mode") and (why := mode_problem(src.default_mode)):
        yield f"{path}.defaultMode", why


def check_volume(v: pod_pb2.Volume, vp: str, out: list[tuple[str, str]]) -> None:
    """Append (field path, message) for the file paths and modes of one volume at ``vp``."""
    if v.HasField("config_map"):
        out += _items(v.config_map.items, f"{vp}.configMap")
        out += _default_mode(v.config_map, f"{vp}.configMap")
    if v.HasField("secret"):
        out += _items(v.secret.items, f"{vp}.secret")
        out += _default_mode(v.secret, f"{vp}.secret")
    if v.HasField("downward_api"):
        out += _items(v.downward_api.items, f"{vp}.downwardAPI")
    if v.HasField("projected"):
        out += _default_mode(v.projected, f"{vp}.projected")
        for k, src in enumerate(v.projected.sources):
            sp = f"{vp}.projected.sources[{k}]"
            if src.HasField("config_map"):
                out += _items(src.config_map.items, f"{sp}.configMap")
            if src.HasField("secret"):
                out += _items(src.secret.items, f"{sp}.secret")
            if src.HasField("downward_api"):
                out += _items(src.downward_api.items, f"{sp}.downwardAPI")
            if src.HasField("service_account_token"):
                out += _token(src.service_account_token, f"{sp}.serviceAccountToken")


def sub_path_problem(m: pod_pb2.VolumeMount) -> str | None:
    """Why a volume mount's ``subPath`` may not be mounted, or None (also when it has none)."""
    return path_problem(m.sub_path, item=False) if m.sub_path else None


def problems(spec: pod_pb2.PodSpec, path: str = "spec") -> list[tuple[str, str]]:
    """Every (field path, message) about file paths and modes in ``spec``; empty when fine."""
    out: list[tuple[str, str]] = []
    for i, v in enumerate(spec.volumes):
        check_volume(v, f"{path}.volumes[{i}]", out)
    for field, containers in (
        ("initContainers", spec.init_containers),
        ("containers", spec.containers),
    ):
        for i, c in enumerate(containers):
            for j, m in enumerate(c.volume_mounts):
                if why := sub_path_problem(m):
                    out.append((f"{path}.{field}[{i}].volumeMounts[{j}].subPath", why))
    return out


MIN_TOKEN_SECONDS = 600
"""The shortest lifetime a ServiceAccount token may be asked for (Kubernetes' rule)."""
MAX_TOKEN_SECONDS = 2**32
"""The longest (Kubernetes' bound for a projected token)."""


def token_seconds_problem(seconds: int) -> str | None:
    """Why a token lifetime may not be asked for, or None."""
    if seconds < MIN_TOKEN_SECONDS:
        return f"may not specify a duration less than {MIN_TOKEN_SECONDS} seconds"
    if seconds > MAX_TOKEN_SECONDS:
        return f"may not specify a duration larger than {MAX_TOKEN_SECONDS} seconds"
    return None


def _token(src: pod_pb2.ServiceAccountTokenProjection, path: str) -> Iterator[tuple[str, str]]:
    if why := path_problem(src.path, item=True):
        yield f"{path}.path", why
    if src.HasField("expiration_seconds") and (
        why := token_seconds_problem(src.expiration_seconds)
    ):
        yield f"{path}.expirationSeconds", why


def name_problem(name: str) -> str | None:
    """Why ``name`` may not be one element of a path on the node, or None."""
    if not name or name in (".", "..") or "/" in name or "\x00" in name:
        return "must be a non-empty name without '/' (not '.' or '..')"
    return None


def node_problems(pod: pod_pb2.Pod) -> list[tuple[str, str]]:
    """``problems`` plus the names the agent turns into paths on the node (the pod's uid,
    name and namespace, volume and container names): the API allows only DNS names there, but
    the agent checks what it is given."""
    out: list[tuple[str, str]] = []
    m = pod.metadata
    for field, value in (("uid", m.uid), ("name", m.name), ("namespace", m.namespace)):
        if why := name_problem(value):
            out.append((f"metadata.{field}", why))
    spec = pod.spec
    for i, v in enumerate(spec.volumes):
        if why := name_problem(v.name):
            out.append((f"spec.volumes[{i}].name", why))
    for field, containers in (
        ("initContainers", spec.init_containers),
        ("containers", spec.containers),
    ):
        for i, c in enumerate(containers):
            if why := name_problem(c.name):
                out.append((f"spec.{field}[{i}].name", why))
    return out + problems(spec)
