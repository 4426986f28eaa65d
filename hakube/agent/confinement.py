"""The security context a container gets from the runtime (CRI LinuxContainerSecurityContext).

Users and groups (``runAsUser``, ``runAsGroup``, ``supplementalGroups`` and ``fsGroup`` as an
extra group), ``readOnlyRootFilesystem``, capabilities to add and drop, ``no_new_privs`` when
``allowPrivilegeEscalation: false``, and the seccomp and AppArmor profiles. ``runAsNonRoot``
is checked here, as kubelet does, because the runtime does not: the container's user (its own
``runAsUser``, else the image's) must be a non-zero number, or the container waits with
``CreateContainerConfigError``.

Profiles:

The pod's choice (``hakube.api.profiles``: the container's own, else the pod's) is passed on as
it is; without one, the node's default applies (``AgentSettings.seccomp_default``: the
runtime's default filter, or none). A ``Localhost`` seccomp profile is a file under the node's
profile directory: the API refuses absolute paths and ``..``, and the agent checks again that
the resolved file stays inside that directory before handing the path to the runtime.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from hakube.api import profiles
from hakube.api.v1 import pod_pb2
from hakube.cri.v1 import api_pb2 as pb

_TYPES = {
    profiles.RUNTIME_DEFAULT: pb.SecurityProfile.RuntimeDefault,
    profiles.UNCONFINED: pb.SecurityProfile.Unconfined,
    profiles.LOCALHOST: pb.SecurityProfile.Localhost,
}


class ProfileError(ValueError):
    """A security setting the agent will not run; the message names the field."""


def _pick(pod: pod_pb2.Pod, c: pod_pb2.Container, field: str) -> int | None:
    """A container's own user/group setting, else the pod's."""
    if c.security_context.HasField(field):
        return int(getattr(c.security_context, field))
    if pod.spec.security_context.HasField(field):
        return int(getattr(pod.spec.security_context, field))
    return None


def security_context(
    pod: pod_pb2.Pod,
    c: pod_pb2.Container,
    image: Callable[[], pb.Image | None],
    *,
    seccomp_default: bool,
    seccomp_root: str,
) -> pb.LinuxContainerSecurityContext:
    """Everything of ``c``'s security context but its namespaces (``image`` is asked only
    when the image's user must be checked); ProfileError when it must not run (a profile
    leaving its directory, root where ``runAsNonRoot`` forbids it)."""
    sc = c.security_context
    psc = pod.spec.security_context
    out = pb.LinuxContainerSecurityContext(
        privileged=sc.privileged,
        readonly_rootfs=sc.read_only_root_filesystem,
        no_new_privs=sc.HasField("allow_privilege_escalation")
        and not sc.allow_privilege_escalation,
        seccomp=seccomp(pod, c, default_on=seccomp_default, profile_root=seccomp_root),
    )
    user, group = _pick(pod, c, "run_as_user"), _pick(pod, c, "run_as_group")
    if user is not None:
        out.run_as_user.value = user
    if group is not None:
        out.run_as_group.value = group
    groups = list(psc.supplemental_groups)
    if psc.HasField("fs_group") and psc.fs_group not in groups:
        groups.append(psc.fs_group)
    out.supplemental_groups.extend(groups)
    out.capabilities.add_capabilities.extend(sc.capabilities.add)
    out.capabilities.drop_capabilities.extend(sc.capabilities.drop)
    profile = apparmor(pod, c)
    if profile is not None:
        out.apparmor.CopyFrom(profile)
    non_root = _pick_bool(pod, c, "run_as_non_root")
    if non_root:
        _check_non_root(c, user, image() if user is None else None)
    return out


def _pick_bool(pod: pod_pb2.Pod, c: pod_pb2.Container, field: str) -> bool:
    if c.security_context.HasField(field):
        return bool(getattr(c.security_context, field))
    return bool(getattr(pod.spec.security_context, field))


def _check_non_root(c: pod_pb2.Container, user: int | None, image: pb.Image | None) -> None:
    if user is not None:
        if user == 0:
            raise ProfileError(f"container {c.name!r} has runAsNonRoot and runAsUser 0")
        return
    if image is None:
        raise ProfileError(f"container {c.name!r} has runAsNonRoot and its image is unknown")
    if image.HasField("uid") or not image.username:  # no user in the image: root
        if image.uid.value == 0:
            raise ProfileError(
                f"container {c.name!r} has runAsNonRoot and image will run as root "
                "(set runAsUser to a non-zero id)"
            )
        return
    raise ProfileError(
        f"container {c.name!r} has runAsNonRoot and image has non-numeric user "
        f"({image.username or 'unset'}), cannot verify user is non-root"
    )


def seccomp(
    pod: pod_pb2.Pod, c: pod_pb2.Container, *, default_on: bool, profile_root: str
) -> pb.SecurityProfile:
    chosen = profiles.seccomp_of(pod.spec, c)
    if chosen is None:
        kind = pb.SecurityProfile.RuntimeDefault if default_on else pb.SecurityProfile.Unconfined
        return pb.SecurityProfile(profile_type=kind)
    out = pb.SecurityProfile(profile_type=_TYPES[chosen.type])
    if chosen.type == profiles.LOCALHOST:
        root = os.path.realpath(profile_root)
        path = os.path.realpath(os.path.join(root, chosen.localhost_profile))
        if os.path.commonpath([root, path]) != root:
            raise ProfileError(
                f"container {c.name!r}: seccompProfile.localhostProfile "
                f"{chosen.localhost_profile!r} leaves {profile_root}"
            )
        out.localhost_ref = path
    return out


def apparmor(pod: pod_pb2.Pod, c: pod_pb2.Container) -> pb.SecurityProfile | None:
    """None when the pod names none: the runtime applies its default where AppArmor exists."""
    chosen = profiles.apparmor_of(pod.spec, c)
    if chosen is None:
        return None
    out = pb.SecurityProfile(profile_type=_TYPES[chosen.type])
    if chosen.type == profiles.LOCALHOST:
        out.localhost_ref = chosen.localhost_profile
    return out
