"""Token cleaner: deletes bootstrap-token Secrets once they expire (Kubernetes' tokencleaner).

An expired token already authenticates nobody (the masters check the expiration on every join
request); this removes its Secret so tokens do not pile up in kube-system (``hakube up`` makes a
short-lived one at every start). Every ``--token-cleaner-period`` seconds it looks at the
Secrets of type ``bootstrap.kubernetes.io/token`` in kube-system and deletes the expired ones,
with the Secret's uid as a precondition so that a token re-created under the same name stays.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from hakube.api.v1 import core_pb2
from hakube.client import errors
from hakube.controllers.base import Context, Controller
from hakube.controllers.manager import register
from hakube.pki import bootstrap

log = logging.getLogger("hakube.controllers.tokencleaner")
KEY = ("", "tokencleaner")


@register
class TokenCleanerController(Controller):
    name = "tokencleaner"

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.period = ctx.settings.token_cleaner_period

    def setup(self) -> None:
        self.secrets = self.ctx.informers.get(core_pb2.Secret)
        self.queue.add(KEY)

    def sync(self, key: Any) -> None:
        try:
            now = datetime.datetime.now(datetime.UTC)
            for secret in self.secrets.list():
                meta = secret.metadata
                if meta.namespace != bootstrap.SECRET_NAMESPACE:
                    continue
                stored = bootstrap.from_secret(meta.name, secret.type, dict(secret.data))
                if stored is None or stored.expiration is None or now < stored.expiration:
                    continue
                self._delete(secret)
        finally:
            self.queue.add_after(KEY, self.period)

    def _delete(self, secret: core_pb2.Secret) -> None:
        if self.ctx.leading.is_set():
            return
        meta = secret.metadata
        log.info("token cleaner: deleting expired bootstrap token %s/%s", meta.namespace, meta.name)
        try:
            self.client.secrets.delete(meta.name, namespace=meta.namespace, uid=meta.uid)
        except (errors.NotFound, errors.Conflict):
            pass
