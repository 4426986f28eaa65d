"""Kubernetes' Pod Security Standards (levels privileged, baseline, restricted) as pure checks.

``violations(spec, level)`` lists what in a pod spec a level forbids, each with its field path,
for the fields hakube's Pod type has. The API server (``hakube.apiserver.admission``) decides
the level from the namespace's ``pod-security.kubernetes.io/enforce`` label and refuses the
write; this module knows nothing of namespaces or the store, so tests can drive it with a table.

What hakube's Pod type has no field for cannot be asked for and is not checked: hostPID,
hostIPC, sysctls, procMount, seLinuxOptions (a manifest with one of them is refused as an
unknown field); windowsOptions is refused for every pod. seccomp and AppArmor are checked both
as fields (``seccompProfile``, ``appArmorProfile``) and as the older annotations.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from hakube.api.profiles import LOCALHOST, RUNTIME_DEFAULT, UNCONFINED
from hakube.api.v1 import pod_pb2

PRIVILEGED, BASELINE, RESTRICTED = "privileged", "baseline", "restricted"
LEVELS = (PRIVILEGED, BASELINE, RESTRICTED)
"""From the least to the most strict."""

LABEL_ENFORCE = "pod-security.kubernetes.io/enforce"
LABEL_ENFORCE_VERSION = "pod-security.kubernetes.io/enforce-version"
"""Accepted and ignored: hakube checks the one version of the standards it implements."""

BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
"""Capabilities baseline lets a container add (the runtime's default set)."""

RESTRICTED_CAPABILITIES = frozenset({"NET_BIND_SERVICE"})
RESTRICTED_VOLUMES = (
    "config_map",
    "downward_api",
    "empty_dir",
    "persistent_volume_claim",
    "projected",
    "secret",
)
"""Volume sources restricted allows (of those hakube's Volume type has)."""

_VOLUME_JSON = {
    "host_path": "hostPath",
    "config_map": "configMap",
    "downward_api": "downwardAPI",
    "empty_dir": "emptyDir",
    "persistent_volume_claim": "persistentVolumeClaim",
    "projected": "projected",
    "secret": "secret",
}
_APPARMOR_PREFIX = "container.apparmor.security.beta.kubernetes.io/"
_SECCOMP_POD = "seccomp.security.alpha.kubernetes.io/pod"
_SECCOMP_PREFIX = "container.seccomp.security.alpha.kubernetes.io/"

Violation = tuple[str, str]
"""(field path, what is not allowed)."""


def level_problem(value: str) -> str | None:
    """Why ``value`` is not a level, or None."""
    if value not in LEVELS:
        return f'unknown Pod Security level "{value}": one of {", ".join(LEVELS)}'
    return None


def _containers(spec: pod_pb2.PodSpec, path: str) -> Iterator[tuple[str, pod_pb2.Container]]:
    for field, cs in (("initContainers", spec.init_containers), ("containers", spec.containers)):
        for i, c in enumerate(cs):
            yield f"{path}.{field}[{i}]", c


def _profile_violations(
    sc: pod_pb2.PodSecurityContext | pod_pb2.SecurityContext, where: str, out: list[Violation]
) -> None:
    if sc.HasField("seccomp_profile") and sc.seccomp_profile.type == UNCONFINED:
        out.append((f"{where}.seccompProfile.type", 'seccomp profile "Unconfined" is not allowed'))
    if sc.HasField("app_armor_profile") and sc.app_armor_profile.type == UNCONFINED:
        out.append(
            (f"{where}.appArmorProfile.type", 'AppArmor profile "Unconfined" is not allowed')
        )


def _baseline(
    spec: pod_pb2.PodSpec, annotations: Mapping[str, str], path: str, meta_path: str
) -> list[Violation]:
    """One pass over the containers (every pod create pays for it): a context's rules run
    only when it is set. Profiles (pod, then containers) are reported before the containers'
    other violations."""
    out: list[Violation] = []
    if spec.host_network:
        out.append((f"{path}.hostNetwork", "host namespaces are not allowed"))
    for i, v in enumerate(spec.volumes):
        if v.HasField("host_path"):
            out.append((f"{path}.volumes[{i}].hostPath", "hostPath volumes are not allowed"))
    if spec.HasField("security_context"):
        _profile_violations(spec.security_context, f"{path}.securityContext", out)
    rest: list[Violation] = []
    for field, cs in (("initContainers", spec.init_containers), ("containers", spec.containers)):
        for i, c in enumerate(cs):
            if c.HasField("security_context"):
                scp = f"{path}.{field}[{i}].securityContext"
                sc = c.security_context
                _profile_violations(sc, scp, out)
                if sc.privileged:
                    rest.append((f"{scp}.privileged", "privileged containers are not allowed"))
                for j, cap in enumerate(sc.capabilities.add):
                    if cap not in BASELINE_CAPABILITIES:
                        why = f'adding capability "{cap}" is not allowed'
                        rest.append((f"{scp}.capabilities.add[{j}]", why))
            for j, port in enumerate(c.ports):
                if port.host_port:
                    why = "host ports are not allowed"
                    rest.append((f"{path}.{field}[{i}].ports[{j}].hostPort", why))
    out += rest
    for key, value in sorted(annotations.items()) if annotations else ():
        if (
            key.startswith(_APPARMOR_PREFIX)
            and value
            and value != "runtime/default"
            and not value.startswith("localhost/")
        ):
            out.append(
                (
                    f"{meta_path}.annotations[{key}]",
                    f'AppArmor profile "{value}" is not allowed (runtime/default or localhost/*)',
                )
            )
        if (key == _SECCOMP_POD or key.startswith(_SECCOMP_PREFIX)) and value == "unconfined":
            why = 'seccomp profile "unconfined" is not allowed'
            out.append((f"{meta_path}.annotations[{key}]", why))
    return out


def _restricted(spec: pod_pb2.PodSpec, path: str) -> Iterator[Violation]:
    for i, v in enumerate(spec.volumes):
        source = next((f for f in _VOLUME_JSON if v.HasField(f)), "empty_dir")
        if source not in RESTRICTED_VOLUMES and source != "host_path":  # baseline said it
            yield (
                f"{path}.volumes[{i}].{_VOLUME_JSON[source]}",
                f"{_VOLUME_JSON[source]} volumes are not allowed",
            )
    psc = spec.security_context
    pod_non_root = psc.HasField("run_as_non_root") and psc.run_as_non_root
    if psc.HasField("run_as_non_root") and not psc.run_as_non_root:
        yield f"{path}.securityContext.runAsNonRoot", "must be true"
    if psc.HasField("run_as_user") and psc.run_as_user == 0:
        yield f"{path}.securityContext.runAsUser", "must not be 0 (root)"
    pod_seccomp = psc.seccomp_profile.type in (RUNTIME_DEFAULT, LOCALHOST)
    for cp, c in _containers(spec, path):
        sc = c.security_context
        scp = f"{cp}.securityContext"
        if not sc.HasField("seccomp_profile") and not pod_seccomp:
            yield (
                f"{scp}.seccompProfile",
                "must be RuntimeDefault or Localhost (here or in the pod's securityContext)",
            )
        if sc.HasField("run_as_non_root"):
            if not sc.run_as_non_root:
                yield f"{scp}.runAsNonRoot", "must be true"
        elif not pod_non_root:
            yield (f"{scp}.runAsNonRoot", "must be true (here or in the pod's securityContext)")
        if sc.HasField("run_as_user") and sc.run_as_user == 0:
            yield f"{scp}.runAsUser", "must not be 0 (root)"
        if not (sc.HasField("allow_privilege_escalation") and not sc.allow_privilege_escalation):
            yield f"{scp}.allowPrivilegeEscalation", "must be false"
        if "ALL" not in sc.capabilities.drop:
            yield f"{scp}.capabilities.drop", 'must include "ALL"'
        for j, cap in enumerate(sc.capabilities.add):
            if cap in BASELINE_CAPABILITIES and cap not in RESTRICTED_CAPABILITIES:
                yield (
                    f"{scp}.capabilities.add[{j}]",
                    f'adding capability "{cap}" is not allowed (only NET_BIND_SERVICE)',
                )


def violations(
    spec: pod_pb2.PodSpec,
    level: str,
    *,
    annotations: Mapping[str, str] = {},
    path: str = "spec",
    meta_path: str = "metadata",
) -> list[Violation]:
    """What ``level`` forbids in a pod spec (and its annotations); empty when it may run."""
    if level == PRIVILEGED:
        return []
    out = _baseline(spec, annotations, path, meta_path)
    if level == RESTRICTED:
        out += _restricted(spec, path)
    return out
