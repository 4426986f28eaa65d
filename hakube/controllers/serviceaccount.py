"""ServiceAccounts controller: every namespace has a ``default`` ServiceAccount and a
``kube-root-ca.crt`` ConfigMap holding the cluster CA certificate (key ``ca.crt``), as
Kubernetes' serviceaccount and root-ca-cert-publisher controllers keep them.

Pods rely on both: admission gives a pod without ``serviceAccountName`` the ``default`` account
and refuses an account that does not exist, and the token volume it adds projects
``kube-root-ca.crt`` so that a process in the pod can verify the API server. A deleted one is
made again; an edited ConfigMap is put back (a changed CA certificate is written over it).
Namespaces being deleted are left alone (their contents are going).
"""

from __future__ import annotations

import logging
from typing import Any

from hakube.api.v1 import core_pb2, meta_pb2
from hakube.client import errors
from hakube.controllers.base import Context, Controller
from hakube.controllers.manager import register
from hakube.controllers.owned import on_any_change

log = logging.getLogger("hakube.controllers.serviceaccount")

DEFAULT_ACCOUNT = "default"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
ROOT_CA_KEY = "ca.crt"


@register
class ServiceAccountController(Controller):
    name = "serviceaccount"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.ca_pem = ctx.client.transport.credentials.ca.decode()
        """The cluster CA certificate: the controller-manager's own trust anchor."""

    def setup(self) -> None:
        self.namespaces = self.ctx.informers.get(core_pb2.Namespace)
        self.accounts = self.ctx.informers.get(core_pb2.ServiceAccount)
        self.configmaps = self.ctx.informers.get(core_pb2.ConfigMap)
        on_any_change(self.namespaces, lambda ns: self.queue.add(ns.metadata.name))
        for informer, name in (
            (self.accounts, DEFAULT_ACCOUNT),
            (self.configmaps, ROOT_CA_CONFIGMAP),
        ):
            on_any_change(informer, self._owned(name))

    def _owned(self, name: str) -> Any:
        def changed(obj: Any) -> None:
            if obj.metadata.name == name:
                self.queue.add(obj.metadata.namespace)

        return changed

    def sync(self, key: Any) -> None:
        ns = self.namespaces.get(key)
        if ns is None or ns.metadata.deletion_timestamp or ns.status.phase == "Terminating":
            return
        # The ConfigMap first: a pod admitted once the account exists projects it.
        cm = self.configmaps.get(ROOT_CA_CONFIGMAP, key)
        if cm is None:
            made = core_pb2.ConfigMap(
                metadata=meta_pb2.ObjectMeta(name=ROOT_CA_CONFIGMAP, namespace=key),
                data={ROOT_CA_KEY: self.ca_pem},
            )
            self._create(self.client.configmaps, made)
        elif dict(cm.data) != {ROOT_CA_KEY: self.ca_pem} or cm.binary_data:
            fixed = core_pb2.ConfigMap()
            fixed.CopyFrom(cm)
            fixed.ClearField("data")
            fixed.ClearField("binary_data")
            fixed.data[ROOT_CA_KEY] = self.ca_pem
            try:
                self.client.configmaps.update(fixed)
            except errors.NotFound:
                self.queue.add(key)
        if self.accounts.get(DEFAULT_ACCOUNT, key) is None:
            account = core_pb2.ServiceAccount(
                metadata=meta_pb2.ObjectMeta(name=DEFAULT_ACCOUNT, namespace=key)
            )
            self._create(self.client.serviceaccounts, account)

    def _create(self, resource: Any, obj: Any) -> None:
        try:
            resource.create(obj)
        except errors.AlreadyExists:
            pass  # made meanwhile (or our informer is behind): the next event settles it
        except (errors.NotFound, errors.Forbidden) as exc:
            if "being terminated" not in str(exc) and "not found" not in str(exc):
                raise  # the namespace went (or is going) meanwhile: nothing to keep there
