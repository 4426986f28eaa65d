"""Overload harness: one client storming writes, simulated nodes renewing their Leases the way
agents do, and a quiet client whose latency is measured -- for the priority-and-fairness test
(tests/integration/test_priority.py) and its benchmark (bench/bench_priority.py).

* ``Storm`` runs in a child process (its CPU and GIL are not the measuring process's; a plain
  ``python -m hakube.testing.overload`` subprocess, not ``multiprocessing``, whose "spawn"
  start method leaves a resource-tracker process running until the runner exits): one user
  keeps ``inflight`` Updates of ``size``-byte ConfigMaps outstanding against one master through
  raw gRPC, re-sending as soon as an answer comes back and never backing off: the worst client.
  It reports how each request ended (status code counts; a RESOURCE_EXHAUSTED without a
  ``retry-after-ms`` hint is counted apart).
* ``NodeRenewers``: each simulated node renews ``kube-node-lease/<node>`` every ``interval``
  seconds with its own node identity (``system:node:<name>`` in ``system:nodes``), as agents
  do, on one thread per node; every renewal's latency and the longest gap between two
  successful renewals are recorded.
* ``Prober``: another user writes one small ConfigMap at a time and records each latency.

Identities are issued from the cluster's CA (``user_credentials``); ``grant_configmap_writes``
lets users write ConfigMaps (RBAC), as a real cluster's admin would.
"""

from __future__ import annotations

import collections
import json
import subprocess
import sys
import threading
import time
from typing import Any

import grpc

from hakube.api import kinds
from hakube.api.timestamps import micro_time
from hakube.api.v1 import api_pb2, api_pb2_grpc, core_pb2
from hakube.client import Client, errors
from hakube.client.authz import access_review
from hakube.local.cluster import LocalCluster
from hakube.pki import names
from hakube.pki.certs import Identity
from hakube.pki.tls import Credentials, channel_credentials
from hakube.testing.fakekubelet import LEASE_NS, node_object

WRITER_ROLE = "overload-configmap-writer"


def user_credentials(cluster: LocalCluster, user: str, groups: tuple[str, ...] = ()) -> Credentials:
    """A client certificate for ``user`` in ``groups``, from the cluster's CA."""
    cert, key = cluster.pki.load_ca().issue_pair(Identity(user, groups))
    return Credentials(cluster.credentials.ca, cert, key)


def grant_configmap_writes(admin: Client, users: list[str], timeout: float = 15.0) -> None:
    """A ClusterRole to read, watch and write ConfigMaps, bound to each of ``users`` (one
    binding per user, so grants add up), and wait until every master's authorizer allows it
    (a follower applies the binding a moment after the write is acknowledged)."""
    admin.apply(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": WRITER_ROLE},
            "rules": [
                {
                    "apiGroups": [""],
                    "resources": ["configmaps"],
                    "verbs": ["get", "list", "watch", "create", "update", "delete"],
                }
            ],
        }
    )
    for user in users:
        admin.apply(
            {
                "apiVersion": "rbac.authorization.k8s.io/v1",
                "kind": "ClusterRoleBinding",
                "metadata": {"name": f"{WRITER_ROLE}-{user}"},
                "subjects": [
                    {"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}
                ],
                "roleRef": {
                    "kind": "ClusterRole",
                    "name": WRITER_ROLE,
                    "apiGroup": "rbac.authorization.k8s.io",
                },
            }
        )
    deadline = time.monotonic() + timeout
    for endpoint in admin.servers:
        with Client([endpoint], credentials=admin.transport.credentials) as one:
            for user in users:
                while not access_review(one, "update", "configmaps", user=user).allowed:
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"{endpoint}: {user} may not write configmaps yet")
                    time.sleep(0.05)


def configmap(name: str, namespace: str, payload: str) -> api_pb2.Object:
    return kinds.wrap(
        core_pb2.ConfigMap(metadata={"name": name, "namespace": namespace}, data={"d": payload})
    )


# -- the storm ---------------------------------------------------------------------------------


def _storm_main(
    endpoint: str,
    creds: tuple[bytes, bytes, bytes],
    namespace: str,
    objects: int,
    inflight: int,
    size: int,
    seconds: float,
) -> dict[str, int]:
    """Child process: keep ``inflight`` Updates outstanding for ``seconds``; return the counts
    of status codes."""
    channel = grpc.secure_channel(
        endpoint,
        channel_credentials(Credentials(*creds)),
        options=[("grpc.max_send_message_length", 8 * 1024 * 1024)],
    )
    stub = api_pb2_grpc.ObjectServiceStub(channel)
    slots = threading.Semaphore(inflight)
    counts: collections.Counter[str] = collections.Counter()
    lock = threading.Lock()
    body = "x" * size

    def finished(fut: Any) -> None:
        code = fut.code()
        name = code.name if code is not None else "CANCELLED"
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED and errors.retry_after(fut) is None:
            name += " without retry hint"
        with lock:
            counts[name] += 1
        slots.release()

    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        if not slots.acquire(timeout=0.1):
            continue
        i += 1
        req = api_pb2.UpdateRequest(
            object=configmap(f"storm-{i % objects}", namespace, f"{i}{body}")
        )
        stub.Update.future(req, timeout=10).add_done_callback(finished)
    for _ in range(inflight):  # wait for the last answers
        slots.acquire(timeout=15)
    channel.close()
    with lock:
        return dict(counts)


class Storm:
    """One storming client in a child process (see the module docstring)."""

    def __init__(
        self,
        endpoint: str,
        creds: Credentials,
        *,
        namespace: str,
        objects: int = 50,
        inflight: int = 64,
        size: int = 64 * 1024,
        seconds: float = 8.0,
    ) -> None:
        self.objects = objects
        self.namespace = namespace
        self.size = size
        # On stdin, so the key never shows on a command line.
        self._job = json.dumps(
            {
                "endpoint": endpoint,
                "creds": [c.decode() for c in (creds.ca, creds.cert, creds.key)],
                "namespace": namespace,
                "objects": objects,
                "inflight": inflight,
                "size": size,
                "seconds": seconds,
            }
        )
        self.proc: subprocess.Popen[str] | None = None

    def prepare(self, admin: Client) -> None:
        """Create the storm's objects (the storm updates them)."""
        for i in range(self.objects):
            admin.apply(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": f"storm-{i}", "namespace": self.namespace},
                    "data": {"d": "x" * self.size},
                }
            )

    def start(self) -> Storm:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hakube.testing.overload"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdin is not None
        self.proc.stdin.write(self._job)
        self.proc.stdin.close()
        return self

    def result(self, timeout: float) -> dict[str, int]:
        """Status code counts, once the storm is over."""
        assert self.proc is not None and self.proc.stdout is not None, "the storm never started"
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"the storm did not report within {timeout:g}s") from None
        out = self.proc.stdout.read()
        if self.proc.returncode != 0 or not out:
            raise RuntimeError(f"the storm failed: exit {self.proc.returncode}")
        counts: dict[str, int] = json.loads(out)
        return counts

    def stop(self) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait(5)
            if self.proc.stdout is not None:
                self.proc.stdout.close()


def storm_and_quiet(cluster: LocalCluster, admin: Client, endpoint: str, **storm: Any) -> Storm:
    """The usual scene: namespaces ``storm`` and ``quiet``, users of the same names allowed to
    write ConfigMaps, and a prepared (not started) Storm of user ``storm`` against
    ``endpoint``; ``storm`` are Storm's keyword arguments."""
    for ns in ("storm", "quiet"):
        admin.create(core_pb2.Namespace(metadata={"name": ns}))
    grant_configmap_writes(admin, ["storm", "quiet"])
    out = Storm(endpoint, user_credentials(cluster, "storm"), namespace="storm", **storm)
    out.prepare(admin)
    return out


# -- node lease renewals -----------------------------------------------------------------------


class NodeRenewers:
    """Simulated nodes renewing their Leases with their own identities (module docstring)."""

    def __init__(
        self, cluster: LocalCluster, endpoint: str, nodes: list[str], *, interval: float = 0.5
    ) -> None:
        self.cluster = cluster
        self.endpoint = endpoint
        self.nodes = nodes
        self.interval = interval
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self.max_gap: dict[str, float] = dict.fromkeys(nodes, 0.0)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._clients: list[Client] = []

    def register(self, admin: Client) -> None:
        """Create each node and its Lease (as the admin, before the measured part)."""
        for name in self.nodes:
            try:
                admin.create(node_object(name))
            except errors.AlreadyExists:
                pass
            lease = core_pb2.Lease(metadata={"name": name, "namespace": LEASE_NS})
            lease.spec.holder_identity = name
            lease.spec.lease_duration_seconds = 40
            lease.spec.renew_time = micro_time()
            try:
                admin.create(lease)
            except errors.AlreadyExists:
                pass

    def start(self) -> NodeRenewers:
        for name in self.nodes:
            creds = user_credentials(self.cluster, names.node_user(name), (names.NODES_GROUP,))
            client = Client([self.endpoint], credentials=creds, timeout=30)
            self._clients.append(client)
            t = threading.Thread(target=self._run, args=(client, name), daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def reset(self) -> None:
        """Forget what was measured so far (e.g. after the unloaded phase)."""
        with self._lock:
            self.latencies.clear()
            self.errors.clear()
            self.max_gap = dict.fromkeys(self.nodes, 0.0)

    def snapshot(self) -> tuple[list[float], list[str], dict[str, float]]:
        with self._lock:
            return list(self.latencies), list(self.errors), dict(self.max_gap)

    def _run(self, client: Client, name: str) -> None:
        last_ok = time.monotonic()
        lease: core_pb2.Lease | None = None
        while not self._stop.wait(self.interval):
            start = time.monotonic()
            try:
                # As agents do: update the Lease last written, read it only when that failed.
                if lease is None:
                    lease = client.leases.get(name, namespace=LEASE_NS)
                lease.spec.renew_time = micro_time()
                lease = client.leases.update(lease)
            except errors.HakubeError as exc:
                lease = None
                with self._lock:
                    self.errors.append(f"{name}: {exc}")
                continue
            now = time.monotonic()
            with self._lock:
                self.latencies.append(now - start)
                self.max_gap[name] = max(self.max_gap.get(name, 0.0), now - last_ok)
            last_ok = now

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(35)
        for c in self._clients:
            c.close()


# -- a quiet client ----------------------------------------------------------------------------


class Prober:
    """Writes one small ConfigMap at a time as a user of its own; records the latencies."""

    def __init__(self, cluster: LocalCluster, endpoint: str, user: str, namespace: str) -> None:
        self.client = Client([endpoint], credentials=user_credentials(cluster, user), timeout=30)
        self.namespace = namespace
        self._i = 0

    def measure(self, count: int) -> list[float]:
        out = []
        for _ in range(count):
            self._i += 1
            cm = core_pb2.ConfigMap(
                metadata={"name": f"probe-{self._i % 20}", "namespace": self.namespace},
                data={"n": str(self._i)},
            )
            start = time.monotonic()
            try:
                self.client.update(cm)
            except errors.NotFound:
                self.client.create(cm)
            out.append(time.monotonic() - start)
        return out

    def measure_for(self, seconds: float) -> list[float]:
        out: list[float] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            out.extend(self.measure(1))
        return out

    def close(self) -> None:
        self.client.close()


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> None:
    """The storm's child process: the job as JSON on stdin, the counts as JSON on stdout."""
    job = json.load(sys.stdin)
    creds = tuple(c.encode() for c in job["creds"])
    counts = _storm_main(
        job["endpoint"],
        (creds[0], creds[1], creds[2]),
        job["namespace"],
        job["objects"],
        job["inflight"],
        job["size"],
        job["seconds"],
    )
    json.dump(counts, sys.stdout)


if __name__ == "__main__":
    main()
