"""The agent's own gRPC API (``hakube.agent.v1.NodeAgent``): container logs, exec, usage.

Like the kubelet's port 10250, each agent serves this API and publishes where: the Node's
InternalIP address and ``status.daemonEndpoints.kubeletEndpoint`` port. Exec runs commands as
root in any container of the node, so the API is for the masters only: it serves TLS with the
node's certificate (``hakube.pki.layout.NodePki``), the handshake requires a client certificate
from the cluster CA, and every call must come from a master's identity
(``system:hakube-master:<name>`` in ``system:hakube-masters``). Users reach it through the
masters' NodeProxy service (``hakube.apiserver.nodeproxy``), which authenticates them like any
API request. There is no plaintext mode: an agent without a node certificate does not start.
See docs/security-agent.md.

Containers are found through the runtime's labels (``hakube.agent.runtime``), so logs of a pod
that the API no longer knows, or of an instance before a restart (``previous``), still work.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from typing import IO, Any

import grpc

from hakube.agent.runtime import (
    LABEL_CONTAINER,
    LABEL_KIND,
    LABEL_NODE,
    LABEL_POD_NAME,
    LABEL_POD_NAMESPACE,
    LABEL_POD_UID,
    RuntimeView,
)
from hakube.agent.stats import UsageSampler
from hakube.api.agent.v1 import agent_pb2, agent_pb2_grpc
from hakube.cri.errors import CriError, NotFound
from hakube.cri.logs import parse
from hakube.cri.v1 import api_pb2 as pb
from hakube.lifecycle import StartupError
from hakube.pki import certs, files, names
from hakube.pki.layout import NodePki, normalize_host
from hakube.pki.tls import TlsFiles, identity_of_pem, server_credentials

log = logging.getLogger("hakube.agent.server")
FOLLOW_POLL = 0.1
"""Seconds between looks at a followed log file that has no new data."""


def caller_refusal(auth: dict[str, list[bytes]], node: str) -> tuple[grpc.StatusCode, str] | None:
    """Why the TLS peer ``auth`` (a gRPC auth context) may not call this agent, or None for a
    master. The handshake already verified the certificate against the cluster CA."""
    pem = auth.get("x509_pem_cert")
    if not pem:
        return (
            grpc.StatusCode.UNAUTHENTICATED,
            f"agent API of node {node}: no client certificate; only the masters may call it",
        )
    identity, _ = identity_of_pem(pem[0])
    if names.master_name(identity.user) is None or names.MASTERS_GROUP not in identity.groups:
        return (
            grpc.StatusCode.PERMISSION_DENIED,
            f'agent API of node {node}: "{identity.user}" is not a master; use '
            "hakubectl logs/exec/top, which go through the masters",
        )
    return None


class _Servicer(agent_pb2_grpc.NodeAgentServicer):
    def __init__(self, view: RuntimeView, usage: UsageSampler) -> None:
        self.view = view
        self.cri = view.cri
        self.usage = usage

    def _authorize(self, context: grpc.ServicerContext) -> None:
        refused = caller_refusal(context.auth_context(), self.view.node)  # type: ignore[arg-type]
        if refused is not None:
            context.abort(*refused)

    def Stats(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._authorize(context)
        try:
            return self.usage.collect(request.namespace)
        except CriError as e:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"stats: {e}")

    def _find(
        self, ns: str, pod: str, container: str, previous: bool, context: grpc.ServicerContext
    ) -> pb.ContainerStatus:
        where = f'pod "{pod}" in namespace "{ns}"'
        found = self.cri.list_containers(
            labels={LABEL_NODE: self.view.node, LABEL_POD_NAME: pod, LABEL_POD_NAMESPACE: ns}
        )
        if not found:
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"{where} has no containers on node {self.view.node}"
            )
        newest_uid = max(found, key=lambda c: c.created_at).labels.get(LABEL_POD_UID)
        found = [c for c in found if c.labels.get(LABEL_POD_UID) == newest_uid]
        names = sorted(
            {c.labels.get(LABEL_CONTAINER, "") for c in found if c.labels.get(LABEL_KIND) == "app"}
        )
        if not container:
            if len(names) != 1:
                context.abort(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    f"a container name must be specified for {where}, choose one "
                    f"of: [{' '.join(names)}]",
                )
            container = names[0]
        mine = sorted(
            (c for c in found if c.labels.get(LABEL_CONTAINER) == container),
            key=lambda c: c.metadata.attempt,
            reverse=True,
        )
        if not mine:
            context.abort(
                grpc.StatusCode.NOT_FOUND, f'container "{container}" is not valid for {where}'
            )
        index = 1 if previous else 0
        if len(mine) <= index:
            context.abort(
                grpc.StatusCode.NOT_FOUND,
                f'previous terminated container "{container}" in {where} not found',
            )
        return self.cri.container_status(mine[index].id)

    def Logs(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self._authorize(context)
        st = self._find(
            request.namespace, request.pod, request.container, request.previous, context
        )
        if not st.log_path:
            context.abort(grpc.StatusCode.NOT_FOUND, "the container has no log file")
        try:
            f = open(st.log_path, encoding="utf-8", errors="replace")  # noqa: SIM115
        except FileNotFoundError:
            return  # started but printed nothing yet
        with f:
            lines, pending = _read_lines(f, "")
            if request.tail_lines >= 0:
                lines = lines[len(lines) - request.tail_lines :] if request.tail_lines else []
            yield _chunk(lines, request.timestamps)
            if not request.follow or request.previous:
                return
            while context.is_active():
                lines, pending = _read_lines(f, pending)
                if lines:
                    yield _chunk(lines, request.timestamps)
                    continue
                if not self._running(st.id):
                    lines, pending = _read_lines(f, pending)
                    if lines:
                        yield _chunk(lines, request.timestamps)
                    return
                time.sleep(FOLLOW_POLL)

    def _running(self, cid: str) -> bool:
        try:
            return self.cri.container_status(cid).state == pb.CONTAINER_RUNNING
        except NotFound:
            return False

    def Exec(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._authorize(context)
        if not request.command:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "exec: a command is required")
        st = self._find(request.namespace, request.pod, request.container, False, context)
        if st.state != pb.CONTAINER_RUNNING:
            context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f'container "{st.metadata.name}" of pod "{request.pod}" is not '
                "running; exec needs a running container",
            )
        try:
            r = self.cri.exec_sync(
                st.id, list(request.command), timeout_seconds=request.timeout_seconds
            )
        except CriError as e:
            context.abort(grpc.StatusCode.UNKNOWN, f"exec in {request.pod}: {e}")
        return agent_pb2.ExecResponse(stdout=r.stdout, stderr=r.stderr, exit_code=r.exit_code)


def _read_lines(f: IO[str], pending: str) -> tuple[list[Any], str]:
    """Complete CRI log lines available now; an unfinished last line is kept for later."""
    data = pending + f.read()
    if not data:
        return [], ""
    raw = data.split("\n")
    rest = raw.pop()  # "" when data ends with a newline
    return list(parse(line + "\n" for line in raw)), rest


def _chunk(lines: list[Any], timestamps: bool) -> Any:
    text = "".join((f"{ln.time} " if timestamps else "") + ln.text + "\n" for ln in lines)
    return agent_pb2.LogChunk(data=text.encode())


def serving_files(pki: NodePki, node: str, address: str) -> TlsFiles:
    """The node's TLS files for the agent API (the agent has them before it starts: it joins
    first). OSError naming the file when they are missing, unusable or name another node.
    ``address`` is the InternalIP the masters dial: their hostname check needs it among the
    certificate's hosts."""
    tls = pki.tls_files()
    try:
        tls.check()
        cert = certs.load_cert(files.read(tls.cert))
    except (certs.CertError, OSError) as e:
        raise OSError(f"agent API: {e}") from e
    user = certs.identity_of(cert).user
    if user != names.node_user(node):
        raise OSError(f'agent API: {tls.cert} names "{user}", not "{names.node_user(node)}"')
    if normalize_host(address) not in certs.hosts_of(cert):
        log.warning(
            "%s does not list the node address %s: the masters will refuse to dial this "
            "agent until the certificate is reissued",
            tls.cert,
            address,
        )
    return tls


class AgentServer:
    """The NodeAgent gRPC server, a ``hakube.lifecycle.Service``; ``port`` is known once
    ``ready``. It serves TLS with the node's certificate from ``pki``. ``address``: the node
    address the masters dial (for the certificate check)."""

    def __init__(
        self,
        view: RuntimeView,
        listen: str,
        *,
        pki: NodePki,
        address: str,
        simulated: bool = False,
        workers: int = 8,
    ) -> None:
        self.listen = listen
        self.pki = pki
        self.address = address
        self.port = 0
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="agent-api")
        )
        self.view = view
        self.usage = UsageSampler(view.cri, view.node, simulated=simulated)
        agent_pb2_grpc.add_NodeAgentServicer_to_server(_Servicer(view, self.usage), self._server)

    def run(self) -> None:
        """Serve until ``stop()``; ``StartupError`` if the address cannot be used."""
        if self._stop.is_set():
            return
        tls = serving_files(self.pki, self.view.node, self.address)
        self.port = self._server.add_secure_port(self.listen, server_credentials(tls))
        if not self.port:
            raise StartupError(f"hakube agent: cannot listen on {self.listen} for the agent API")
        self._server.start()
        self.ready.set()
        try:
            self._stop.wait()
        finally:
            self._server.stop(1).wait(5)

    def stop(self) -> None:
        self._stop.set()
