"""Container environment and command line from a pod spec, as the kubelet makes them.

Order and precedence: ``envFrom`` sources first (in order; later ones win), then ``env``
entries (in order; they win over envFrom). ``$(NAME)`` in a value, a command or an argument
expands to a variable defined before it (or in envFrom); ``$$`` escapes a dollar; an undefined
``$(NAME)`` stays as written. A missing ConfigMap, Secret or key that is not ``optional`` stops
the container from being created: ``ConfigError`` carries the message the pod's status shows
(reason CreateContainerConfigError).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hakube.agent import quantity
from hakube.api.v1 import pod_pb2

Lookup = Callable[[str, str, str], Any]
"""(kind, namespace, name) -> the ConfigMap or Secret, or None when it does not exist."""


class ConfigError(Exception):
    """The container cannot be configured yet; the message names what is missing."""


@dataclass(frozen=True)
class PodFacts:
    """What fieldRef and resourceFieldRef may read beyond the pod object."""

    pod_ip: str
    host_ip: str
    node_cpu_millis: int = 0
    node_memory_bytes: int = 0


def source_data(kind: str, obj: Any) -> dict[str, str]:
    """A ConfigMap's or Secret's keys as text."""
    if kind == "Secret":
        data = {k: v.decode("utf-8", "replace") for k, v in obj.data.items()}
        data.update(obj.string_data)
        return data
    data = {k: v.decode("utf-8", "replace") for k, v in obj.binary_data.items()}
    data.update(obj.data)
    return data


def _fetch(lookup: Lookup, kind: str, ns: str, name: str, optional: bool) -> dict[str, str]:
    obj = lookup(kind, ns, name)
    if obj is None:
        if optional:
            return {}
        raise ConfigError(f'{kind.lower()} "{name}" not found')
    return source_data(kind, obj)


def field_value(pod: pod_pb2.Pod, path: str, facts: PodFacts) -> str:
    """The value of a downward-API field path (metadata.name, status.podIP, ...)."""
    m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']*)'\]", path)
    if m:
        return dict(getattr(pod.metadata, m.group(1))).get(m.group(2), "")
    simple = {
        "metadata.name": pod.metadata.name,
        "metadata.namespace": pod.metadata.namespace,
        "metadata.uid": pod.metadata.uid,
        "spec.nodeName": pod.spec.node_name,
        "spec.serviceAccountName": pod.spec.service_account_name,
        "status.podIP": facts.pod_ip,
        "status.podIPs": facts.pod_ip,
        "status.hostIP": facts.host_ip,
        "status.hostIPs": facts.host_ip,
    }
    if path not in simple:
        raise ConfigError(f'unsupported fieldRef fieldPath "{path}"')
    return simple[path]


def resource_value(
    pod: pod_pb2.Pod, container: str, ref: pod_pb2.ResourceFieldSelector, facts: PodFacts
) -> str:
    """limits.cpu / requests.memory ... of a container, divided by ``divisor`` and rounded up;
    an unset limit reads as the node's capacity, as in Kubernetes."""
    c = next(
        (
            c
            for c in [*pod.spec.containers, *pod.spec.init_containers]
            if c.name == (ref.container_name or container)
        ),
        None,
    )
    if c is None:
        raise ConfigError(f'resourceFieldRef: no container "{ref.container_name}"')
    which, _, res = ref.resource.partition(".")
    if which not in ("limits", "requests") or res not in ("cpu", "memory"):
        raise ConfigError(f'unsupported resourceFieldRef resource "{ref.resource}"')
    text = dict(getattr(c.resources, which)).get(res, "")
    if res == "cpu":
        value = quantity.parse(text) if text else facts.node_cpu_millis / 1000
    else:
        value = quantity.parse(text) if text else float(facts.node_memory_bytes)
    divisor = quantity.parse(ref.divisor) if ref.divisor else 1.0
    return str(max(1, math.ceil(value / divisor - 1e-9)) if value else 0)


_REF = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1)
        return env[name] if name in env else m.group(0)

    return _REF.sub(sub, text)


def container_env(
    pod: pod_pb2.Pod, c: pod_pb2.Container, lookup: Lookup, facts: PodFacts
) -> dict[str, str]:
    """The container's environment, in definition order."""
    ns = pod.metadata.namespace
    env: dict[str, str] = {}
    for src in c.env_from:
        if src.config_map_ref.name:
            data = _fetch(
                lookup, "ConfigMap", ns, src.config_map_ref.name, src.config_map_ref.optional
            )
        elif src.secret_ref.name:
            data = _fetch(lookup, "Secret", ns, src.secret_ref.name, src.secret_ref.optional)
        else:
            continue
        for k, v in data.items():
            env[src.prefix + k] = v
    for e in c.env:
        vf = e.value_from
        if vf.config_map_key_ref.name or vf.secret_key_ref.name:
            kind = "ConfigMap" if vf.config_map_key_ref.name else "Secret"
            ref = vf.config_map_key_ref if kind == "ConfigMap" else vf.secret_key_ref
            data = _fetch(lookup, kind, ns, ref.name, ref.optional)
            if ref.key not in data:
                if ref.optional:
                    continue
                raise ConfigError(f"couldn't find key {ref.key} in {kind} {ns}/{ref.name}")
            env[e.name] = data[ref.key]
        elif vf.field_ref.field_path:
            env[e.name] = field_value(pod, vf.field_ref.field_path, facts)
        elif vf.resource_field_ref.resource:
            env[e.name] = resource_value(pod, c.name, vf.resource_field_ref, facts)
        else:
            env[e.name] = expand(e.value, env)
    return env


def command_line(c: pod_pb2.Container, env: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """(command, args) with ``$(VAR)`` expanded."""
    return [expand(w, env) for w in c.command], [expand(w, env) for w in c.args]
