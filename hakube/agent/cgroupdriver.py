"""Which cgroup driver the container runtime runs containers with, from its CRI status.

Pod cgroups (``--pod-cgroup-parent``) are cgroupfs paths the agent makes itself; with the
systemd driver runc expects ``slice:prefix:name`` parents and units that systemd owns, so the
two do not mix. containerd (1.6 and later) reports its configuration in the verbose CRI
``Status`` (``info["config"]``, JSON): the default runtime's ``options.SystemdCgroup`` (runc
v2 shim), or the older plugin-wide ``systemdCgroup``. The Ansible role sets
``SystemdCgroup = true``, as kubeadm does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

SYSTEMD, CGROUPFS = "systemd", "cgroupfs"


def driver_of(info: Mapping[str, str]) -> str | None:
    """``systemd`` or ``cgroupfs`` as the runtime's status ``info`` says, None when it does not
    say (another runtime, or a shape this does not know)."""
    try:
        config: Any = json.loads(info.get("config", ""))
    except ValueError:
        return None
    if not isinstance(config, dict):
        return None
    ctd = config.get("containerd")
    if isinstance(ctd, dict):
        name = ctd.get("defaultRuntimeName") or ctd.get("default_runtime_name") or "runc"
        runtime = (ctd.get("runtimes") or {}).get(name)
        if isinstance(runtime, dict) and isinstance(runtime.get("options"), dict):
            return SYSTEMD if runtime["options"].get("SystemdCgroup") is True else CGROUPFS
    if "systemdCgroup" in config:
        return SYSTEMD if config["systemdCgroup"] is True else CGROUPFS
    return None


def refusal(info: Mapping[str, str], endpoint: str) -> str | None:
    """The one-line reason pod cgroups cannot be used with this runtime, or None."""
    if driver_of(info) != SYSTEMD:
        return None
    return (
        f"--pod-cgroup-parent needs the cgroupfs cgroup driver, but the runtime at {endpoint} "
        "uses the systemd driver (containerd: SystemdCgroup = true); set SystemdCgroup = false "
        "in containerd's runc options, or run the agent without --pod-cgroup-parent"
    )
