"""seccomp and AppArmor profiles of pods and containers: what is valid, and which applies.

A container's own ``securityContext.seccompProfile`` (or ``appArmorProfile``) wins over the
pod's; with neither, the node decides (the agent's ``--seccomp-default``). Types follow
core/v1: ``RuntimeDefault`` (the container runtime's profile), ``Unconfined`` (none), and
``Localhost`` with ``localhostProfile`` (for seccomp a file path relative to the node's profile
directory, for AppArmor the name of a profile loaded on the node). Only ``Localhost`` takes a
``localhostProfile``, and a seccomp one must stay inside the profile directory.
"""

from __future__ import annotations

from collections.abc import Iterator

from hakube.api.v1 import pod_pb2

RUNTIME_DEFAULT, UNCONFINED, LOCALHOST = "RuntimeDefault", "Unconfined", "Localhost"
TYPES = (RUNTIME_DEFAULT, UNCONFINED, LOCALHOST)

Profile = pod_pb2.SeccompProfile | pod_pb2.AppArmorProfile


def _check(profile: Profile, path: str, seccomp: bool) -> Iterator[tuple[str, str]]:
    if profile.type not in TYPES:
        yield f"{path}.type", f'unsupported value "{profile.type}" ({", ".join(TYPES)})'
        return
    has_local = profile.HasField("localhost_profile")
    if profile.type == LOCALHOST:
        if not has_local or not profile.localhost_profile:
            yield f"{path}.localhostProfile", "required when type is Localhost"
        elif seccomp and (
            profile.localhost_profile.startswith("/")
            or ".." in profile.localhost_profile.split("/")
        ):
            yield f"{path}.localhostProfile", "must be a relative path without '..'"
    elif has_local:
        yield f"{path}.localhostProfile", "may only be set when type is Localhost"


def check_context(
    sc: pod_pb2.PodSecurityContext | pod_pb2.SecurityContext,
    where: str,
    out: list[tuple[str, str]],
) -> None:
    """Append (field path, message) for each invalid profile in one security context at
    ``where`` (the API server's single pass over a pod's containers calls this per context)."""
    if sc.HasField("seccomp_profile"):
        out += _check(sc.seccomp_profile, f"{where}.seccompProfile", True)
    if sc.HasField("app_armor_profile"):
        out += _check(sc.app_armor_profile, f"{where}.appArmorProfile", False)


def problems(spec: pod_pb2.PodSpec, path: str = "spec") -> list[tuple[str, str]]:
    """(field path, message) for each invalid profile in a pod spec."""
    out: list[tuple[str, str]] = []
    if spec.HasField("security_context"):
        check_context(spec.security_context, f"{path}.securityContext", out)
    for field, containers in (
        ("initContainers", spec.init_containers),
        ("containers", spec.containers),
    ):
        for i, c in enumerate(containers):
            if c.HasField("security_context"):
                check_context(c.security_context, f"{path}.{field}[{i}].securityContext", out)
    return out


def seccomp_of(spec: pod_pb2.PodSpec, c: pod_pb2.Container) -> pod_pb2.SeccompProfile | None:
    """The seccomp profile ``c`` asks for (its own, else the pod's), or None for the node's
    default."""
    if c.security_context.HasField("seccomp_profile"):
        return c.security_context.seccomp_profile
    if spec.security_context.HasField("seccomp_profile"):
        return spec.security_context.seccomp_profile
    return None


def apparmor_of(spec: pod_pb2.PodSpec, c: pod_pb2.Container) -> pod_pb2.AppArmorProfile | None:
    if c.security_context.HasField("app_armor_profile"):
        return c.security_context.app_armor_profile
    if spec.security_context.HasField("app_armor_profile"):
        return spec.security_context.app_armor_profile
    return None
