"""Pod-level cgroups: each pod's containers share one cgroup whose limits are the pod's
``spec.resources`` (hakube.api.podresources), as the kubelet's pod cgroups do.

With ``AgentSettings.pod_cgroup_parent`` set (cgroupfs driver paths, e.g. ``/hakube``), a
pod's cgroup is ``<parent>/<node>/pod<uid>``: the agent creates it before the pod's sandbox,
writes the pod-level limits into it, and hands it to the runtime as the sandbox's
``cgroup_parent`` -- runc then puts the sandbox and every container in a child of it, so the
kernel enforces the pod's budget on all of them together. It goes when the pod goes, and an
agent starting up removes the pod cgroups of pods deleted while it was away (as the secret
tmpfs volumes). Only paths under ``<parent>/<node>`` are ever created or removed: other
agents, other users' cgroups and the runtime's own are never touched. The node name in the
path keeps agents that share a parent (and a containerd) apart.

What is written, per cgroup version (``stat -fc %T /sys/fs/cgroup``: ``cgroup2fs`` is v2):

===============  ==================================  ================================
pod-level        cgroup v1                           cgroup v2
===============  ==================================  ================================
limits.memory    memory/.../memory.limit_in_bytes    memory.max
limits.cpu       cpu/.../cpu.cfs_quota_us (period    cpu.max ("quota 100000")
                 cpu.cfs_period_us = 100 ms)
requests.cpu     cpu/.../cpu.shares (1024 per core)  cpu.weight (shares mapped 1..10000)
===============  ==================================  ================================

A pod without pod-level resources still gets its cgroup, without limits (its containers keep
their own). Only the cgroupfs driver is supported: with containerd's ``SystemdCgroup = true``
the parent must be a systemd slice, which this does not create; leave the setting empty there.
"""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from hakube.api import quantity
from hakube.api.v1 import pod_pb2
from hakube.cri import specs
from hakube.cri.v1 import api_pb2 as pb

log = logging.getLogger("hakube.agent.podcgroup")

PREFIX = "pod"
"""A pod's cgroup is ``pod<uid>`` (as the kubelet names them)."""


class CgroupError(Exception):
    """A pod cgroup could not be created or limited (the message names the path)."""


@dataclass(frozen=True)
class PodLimits:
    cpu_request_millis: int = 0
    cpu_limit_millis: int = 0
    memory_limit_bytes: int = 0

    def any(self) -> bool:
        return bool(self.cpu_request_millis or self.cpu_limit_millis or self.memory_limit_bytes)

    def cri(self) -> pb.LinuxContainerResources:
        """The same limits as the CRI's ``LinuxPodSandboxConfig.resources``."""
        return specs.linux_resources(
            cpu_request_millis=self.cpu_request_millis,
            cpu_limit_millis=self.cpu_limit_millis,
            memory_limit_bytes=self.memory_limit_bytes,
        )


def limits_of(pod: pod_pb2.Pod) -> PodLimits:
    """The pod-level requests and limits (validated by the API; a request defaults to the
    limit there)."""
    res = pod.spec.resources
    req, lim = dict(res.requests), dict(res.limits)
    return PodLimits(
        cpu_request_millis=quantity.cpu_millis(req.get("cpu", lim.get("cpu", ""))),
        cpu_limit_millis=quantity.cpu_millis(lim.get("cpu", "")),
        memory_limit_bytes=quantity.memory_bytes(lim.get("memory", "")),
    )


def cpu_weight(shares: int) -> int:
    """cgroup v2 ``cpu.weight`` for v1 ``cpu.shares`` (the mapping runc and the kubelet use)."""
    return 1 + ((max(specs.MIN_SHARES, shares) - 2) * 9999) // 262142


class PodCgroups:
    """The pod cgroups of one node under ``parent`` (cgroupfs paths, from the cgroup root)."""

    def __init__(self, parent: str, node: str, fs_root: str = "/sys/fs/cgroup") -> None:
        if not parent.startswith("/") or ".." in parent.split("/"):
            raise ValueError(f"pod cgroup parent {parent!r}: want an absolute path without '..'")
        self.base = f"{parent.rstrip('/')}/{node}"
        self.fs_root = Path(fs_root)
        self.v2 = (self.fs_root / "cgroup.controllers").exists()

    def path(self, uid: str) -> str:
        """The pod's cgroup as the runtime's ``cgroup_parent``."""
        return f"{self.base}/{PREFIX}{uid}"

    def _hierarchies(self) -> list[Path]:
        """Mount points of the hierarchies (v2: the one; v1: each controller's, real dirs
        only -- ``cpu,cpuacct`` style links name the same hierarchy twice)."""
        if self.v2:
            return [self.fs_root]
        try:
            return sorted(p for p in self.fs_root.iterdir() if p.is_dir() and not p.is_symlink())
        except OSError:
            return []

    def ensure(self, pod: pod_pb2.Pod) -> str:
        """Create the pod's cgroup with its limits (again: idempotent); its path."""
        uid, limits = pod.metadata.uid, limits_of(pod)
        rel = self.path(uid).lstrip("/")
        try:
            if self.v2:
                self._ensure_v2(rel, limits)
            else:
                self._ensure_v1(rel, limits)
        except OSError as e:
            raise CgroupError(
                f"pod cgroup {self.path(uid)}: {e.strerror or e} (the agent must run as root "
                "with the cgroupfs driver; --pod-cgroup-parent '' turns pod cgroups off)"
            ) from e
        return self.path(uid)

    def _ensure_v1(self, rel: str, limits: PodLimits) -> None:
        # memory and cpu are created here to carry the limits; runc creates the pod's
        # directory in the other hierarchies itself (with their parents' settings).
        mem = self.fs_root / "memory" / rel
        cpu = self.fs_root / "cpu" / rel
        for d in (mem, cpu):
            d.mkdir(parents=True, exist_ok=True)
        _write(mem / "memory.limit_in_bytes", str(limits.memory_limit_bytes or -1))
        quota = limits.cri()
        _write(cpu / "cpu.shares", str(quota.cpu_shares))
        if quota.cpu_quota:
            _write(cpu / "cpu.cfs_period_us", str(quota.cpu_period))
        _write(cpu / "cpu.cfs_quota_us", str(quota.cpu_quota or -1))

    def _ensure_v2(self, rel: str, limits: PodLimits) -> None:
        d = self.fs_root / rel
        d.mkdir(parents=True, exist_ok=True)
        # The controllers must be enabled on every ancestor for the files to exist.
        parts = Path(rel).parts
        for i in range(len(parts)):
            _write(self.fs_root.joinpath(*parts[:i]) / "cgroup.subtree_control", "+cpu +memory")
        quota = limits.cri()
        _write(d / "memory.max", str(limits.memory_limit_bytes or "max"))
        _write(d / "cpu.weight", str(cpu_weight(quota.cpu_shares)))
        _write(d / "cpu.max", f"{quota.cpu_quota or 'max'} {quota.cpu_period or 100000}")

    def remove(self, uid: str) -> bool:
        """Remove the pod's cgroup from every hierarchy (the runtime has removed the
        containers' children by now); False if one is still busy (a process left in it)."""
        rel = self.path(uid).lstrip("/")
        done = True
        for h in self._hierarchies():
            top = h / rel
            if not top.is_dir():
                continue
            for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                done = _rmdir(d) and done
            done = _rmdir(top) and done
        return done

    def sweep(self, live: set[str]) -> list[str]:
        """Remove the cgroups of pods not in ``live`` (uids); the uids removed."""
        gone: set[str] = set()
        for h in self._hierarchies():
            base = h / self.base.lstrip("/")
            try:
                names = [p.name for p in base.iterdir() if p.is_dir()]
            except OSError:
                continue
            gone.update(n[len(PREFIX) :] for n in names if n.startswith(PREFIX))
        gone -= live
        return [uid for uid in sorted(gone) if self.remove(uid)]


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _rmdir(path: Path) -> bool:
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return True
    except OSError as e:
        log.warning(
            "cannot remove pod cgroup %s: %s", path, "busy" if e.errno == errno.EBUSY else e
        )
        return False
    return True
