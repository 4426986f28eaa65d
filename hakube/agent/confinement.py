"""The seccomp and AppArmor profiles a container gets from the runtime (CRI SecurityProfile).

The pod's choice (``hakube.api.profiles``: the container's own, else the pod's) is passed on as
it is; without one, the node's default applies (``AgentSettings.seccomp_default``: the
runtime's default filter, or none). A ``Localhost`` seccomp profile is a file under the node's
profile directory: the API refuses absolute paths and ``..``, and the agent checks again that
the resolved file stays inside that directory before handing the path to the runtime.
"""

from __future__ import annotations

import os

from hakube.api import profiles
from hakube.api.v1 import pod_pb2
from hakube.cri.v1 import api_pb2 as pb

_TYPES = {
    profiles.RUNTIME_DEFAULT: pb.SecurityProfile.RuntimeDefault,
    profiles.UNCONFINED: pb.SecurityProfile.Unconfined,
    profiles.LOCALHOST: pb.SecurityProfile.Localhost,
}


class ProfileError(ValueError):
    """A profile the agent will not pass on; the message names the field."""


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
