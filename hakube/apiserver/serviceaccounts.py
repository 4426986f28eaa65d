"""ServiceAccount admission of Pods (Kubernetes' ServiceAccount admission plugin).

On create:

* ``spec.serviceAccountName`` defaults to ``default``;
* a pod naming another account that does not exist in its namespace is refused, naming the
  field. The ``default`` account is made by the controller-manager when the namespace appears
  (``hakube.controllers.serviceaccount``); a pod created before it exists is admitted without a
  token volume instead of refused, so a cluster without a controller-manager still runs pods;
* a pod without ``imagePullSecrets`` gets the account's;
* unless ``automountServiceAccountToken`` is false (on the pod, else on the account), the pod
  gets Kubernetes' projected volume ``kube-api-access-<5 chars>`` -- a bound token of its
  account (``expirationSeconds`` 3607), ``ca.crt`` from ConfigMap ``kube-root-ca.crt`` and the
  namespace from the downward API -- mounted read-only at
  ``/var/run/secrets/kubernetes.io/serviceaccount`` in every container that has nothing there.

An update keeps what admission added: a spec sent without the account or the token volume (an
apply of the original manifest) gets them back from the stored pod.
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

from hakube.api.v1 import core_pb2, pod_pb2
from hakube.apiserver.errors import Forbidden
from hakube.store.fsm import StoreFSM

DEFAULT_ACCOUNT = "default"
VOLUME_PREFIX = "kube-api-access-"
MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
TOKEN_SECONDS = 3607
"""Kubernetes' lifetime of the token it projects (an hour and 7 s, so clients see a refresh)."""
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def account(fsm: StoreFSM, namespace: str, name: str) -> core_pb2.ServiceAccount | None:
    """The stored ServiceAccount, or None."""
    rec = fsm.get("ServiceAccount", namespace, name)
    return None if rec is None else core_pb2.ServiceAccount.FromString(rec.value)


def token_volume(name: str) -> pod_pb2.Volume:
    """Kubernetes' standard projected volume of a ServiceAccount token."""
    v = pod_pb2.Volume(name=name)
    p = v.projected
    p.default_mode = 0o644
    p.sources.add().service_account_token.CopyFrom(
        pod_pb2.ServiceAccountTokenProjection(expiration_seconds=TOKEN_SECONDS, path="token")
    )
    cm = p.sources.add().config_map
    cm.name = ROOT_CA_CONFIGMAP
    cm.items.add(key="ca.crt", path="ca.crt")
    item = p.sources.add().downward_api.items.add(path="namespace")
    item.field_ref.api_version = "v1"
    item.field_ref.field_path = "metadata.namespace"
    return v


_VOLUME = token_volume("")
"""The volume's template: copying it is cheaper than building it for every pod."""


def _suffix(seed: str, taken: set[str]) -> str:
    """Five characters for the volume name, from the request id when there is one (so a
    retried create names the same volume) and not already a volume of the pod."""
    digest = hashlib.sha256(seed.encode() if seed else os.urandom(16)).digest()
    for i in range(0, len(digest) - 4):
        name = VOLUME_PREFIX + "".join(_CHARS[b % len(_CHARS)] for b in digest[i : i + 5])
        if name not in taken:
            return name
    return _suffix(digest.hex(), taken)


def _injected(spec: Any) -> Any:
    for v in spec.volumes:
        if v.name.startswith(VOLUME_PREFIX) and v.HasField("projected"):
            return v
    return None


def admit_create(fsm: StoreFSM, pod: pod_pb2.Pod, *, seed: str = "") -> None:
    """Default, check and mount the pod's ServiceAccount (in place); Forbidden naming
    ``spec.serviceAccountName`` when the account does not exist."""
    spec, ns = pod.spec, pod.metadata.namespace
    if not spec.service_account_name:
        spec.service_account_name = DEFAULT_ACCOUNT
    sa = account(fsm, ns, spec.service_account_name)
    if sa is None:
        if spec.service_account_name == DEFAULT_ACCOUNT:
            return
        raise Forbidden(
            f'pods "{pod.metadata.name}" is forbidden: spec.serviceAccountName: '
            f'serviceaccount "{spec.service_account_name}" not found in namespace "{ns}"'
        )
    if not spec.image_pull_secrets:
        spec.image_pull_secrets.extend(sa.image_pull_secrets)
    if spec.HasField("automount_service_account_token"):
        if not spec.automount_service_account_token:
            return
    elif sa.HasField("automount_service_account_token") and not sa.automount_service_account_token:
        return
    if _injected(spec) is not None:
        return
    name = _suffix(seed, {v.name for v in spec.volumes})
    vol = spec.volumes.add()
    vol.CopyFrom(_VOLUME)
    vol.name = name
    mount = pod_pb2.VolumeMount(name=name, read_only=True, mount_path=MOUNT_PATH)
    for c in (*spec.init_containers, *spec.containers):
        if any(m.mount_path.rstrip("/") == MOUNT_PATH for m in c.volume_mounts):
            continue
        c.volume_mounts.append(mount)


def keep_on_update(old: pod_pb2.Pod, new: pod_pb2.Pod) -> None:
    """Give ``new`` the account, pull secrets and token volume admission gave ``old`` when it
    left them out."""
    if not new.spec.service_account_name:
        new.spec.service_account_name = old.spec.service_account_name
    if not new.spec.image_pull_secrets:
        new.spec.image_pull_secrets.extend(old.spec.image_pull_secrets)
    vol = _injected(old.spec)
    if vol is None:
        return
    if not any(v.name == vol.name for v in new.spec.volumes):
        new.spec.volumes.append(vol)
    mounts = {
        c.name: [m for m in c.volume_mounts if m.name == vol.name]
        for c in (*old.spec.init_containers, *old.spec.containers)
    }
    for c in (*new.spec.init_containers, *new.spec.containers):
        if not any(m.name == vol.name for m in c.volume_mounts):
            c.volume_mounts.extend(mounts.get(c.name, []))
