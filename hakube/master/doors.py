"""The ways into a master: the gRPC API (with its extra services) and the Kubernetes REST door.

Both doors share one ``ApiServer``: the REST door turns each HTTP request into the same request
message, so authentication, authorization, admission, the store and watch have one
implementation. Besides the object API, the gRPC server carries the access reviews, the
operations service (members, snapshots), joining nodes (bootstrap tokens) and calls through
the master to node agents.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from hakube.api.v1 import api_pb2
from hakube.apiserver.audit import AuditLog
from hakube.apiserver.authn import Authenticator
from hakube.apiserver.authz.authorizer import Authorizer
from hakube.apiserver.authz.review import AUTHORIZATION_SERVICE, ReviewServicer
from hakube.apiserver.flowcontrol import FlowControl
from hakube.apiserver.join import BOOTSTRAP_METHODS, JOIN_SERVICE, BootstrapTokens, JoinServicer
from hakube.apiserver.metrics import MasterMetrics
from hakube.apiserver.nodeproxy import NODE_PROXY_SERVICE, NodeProxyServicer
from hakube.apiserver.objects import ObjectAPI
from hakube.apiserver.ops import OPS_SERVICE, OpsServicer
from hakube.apiserver.rest.server import RestServer, default_listen
from hakube.apiserver.server import ApiServer
from hakube.apiserver.tokens import TOKEN_SERVICE, Tokens
from hakube.apiserver.watch import WatchHub
from hakube.lifecycle import StartupError
from hakube.master.settings import MasterSettings, api_advertise
from hakube.pki import certs as pki_certs
from hakube.pki.layout import Pki, PkiError
from hakube.pki.tls import TlsFiles
from hakube.store.fsm import StoreFSM
from hakube.store.raft import RaftNode

log = logging.getLogger("hakube.master")


class Doors:
    """The gRPC server and the REST door of one master; ``start`` then ``stop`` on its loop."""

    def __init__(
        self,
        settings: MasterSettings,
        *,
        fsm: StoreFSM,
        raft: RaftNode,
        api: ObjectAPI,
        hub: WatchHub,
        metrics: MasterMetrics,
        pki: Pki,
        tls: TlsFiles,
        audit: AuditLog | None,
        cluster_status: Callable[[], api_pb2.ClusterStatusResponse],
    ) -> None:
        s = self.s = settings
        self.tls = tls
        self.tokens = BootstrapTokens(fsm, transformer=api.transformer)
        try:
            self.sa_tokens = Tokens(
                fsm,
                pki.token_signing_key(),
                issuer=s.service_account_issuer,
                audiences=tuple(s.api_audiences),
            )
        except PkiError as exc:
            raise StartupError(f"hakube master: {exc}") from exc
        authorizer = Authorizer(fsm, s.authorization_mode)
        if s.authorization_mode == "AlwaysAllow":
            log.warning(
                "master %s: AUTHORIZATION IS OFF (--authorization-mode=AlwaysAllow): "
                "every authenticated caller may do anything, read every Secret, take "
                "snapshots and remove masters. Use only to measure; never in a real "
                "cluster.",
                s.name,
            )
        ca_name = pki_certs.identity_of(tls.load_ca_cert()).user
        server = self.server = ApiServer(
            api,
            hub,
            metrics,
            cluster_status,
            authenticator=Authenticator(
                ca_name, bootstrap=self.tokens.identity, tokens=self.sa_tokens.authenticate
            ),
            authorizer=authorizer,
            audit=audit,
            flow=FlowControl(s.flow, metrics.registry),
        )
        self.review = ReviewServicer(authorizer)
        server.extra_services[AUTHORIZATION_SERVICE] = self.review.handlers(server.unary)
        self.ops = OpsServicer(
            name=s.name,
            raft_address=s.raft_listen,
            api_address=api_advertise(s),
            fsm=fsm,
            raft=raft,
            api=api,
        )
        server.extra_services[OPS_SERVICE] = self.ops.handlers(server.unary, server.authenticate)
        server.extra_services[JOIN_SERVICE] = JoinServicer(pki).handlers(server.unary)
        server.bootstrap_methods.update(BOOTSTRAP_METHODS)
        server.extra_services[TOKEN_SERVICE] = self.sa_tokens.handlers(server.unary)
        self.proxy = NodeProxyServicer(fsm, tls)
        server.extra_services[NODE_PROXY_SERVICE] = self.proxy.handlers(
            server.unary, server.authenticate
        )
        self.rest: RestServer | None = None
        self.api_port = 0
        self.k8s_api_port = 0

    async def start(self) -> None:
        """Listen on both doors (the gRPC one not serving until ready); ``StartupError`` if
        an address cannot be used, with nothing left listening."""
        s, server = self.s, self.server
        try:
            self.api_port = await server.start(
                s.api_listen, self.tls, extra_roots=self.tokens.roots
            )
        except (OSError, RuntimeError) as exc:
            raise StartupError(
                f"hakube master: cannot listen on {s.api_listen} for the API: {exc}"
            ) from exc
        await server.set_serving(False)
        if s.k8s_api_listen == "off":
            return
        rest = RestServer(
            server,
            server.authenticator,
            self.tls,
            review=self.review.access_review,
            logs=self.proxy.log_stream,
            exec_=self.proxy.exec_as_caller,
            create_token=self.sa_tokens.create,
        )
        listen = s.k8s_api_listen or default_listen(s.api_listen)
        try:
            self.k8s_api_port = await rest.start(listen)
        except OSError as exc:
            if not s.k8s_api_listen:
                # Only the derived default is taken: the master serves on without it.
                log.warning(
                    "master %s: the Kubernetes API is off: cannot listen on %s (%s); "
                    "choose an address with --k8s-api-listen",
                    s.name,
                    listen,
                    exc,
                )
                return
            await server.stop(0)
            raise StartupError(
                f"hakube master: cannot listen on {listen} for the Kubernetes API: {exc}"
            ) from exc
        self.rest = rest

    async def stop(self) -> None:
        if self.rest is not None:
            await self.rest.stop()
        await self.server.stop(0.5)
