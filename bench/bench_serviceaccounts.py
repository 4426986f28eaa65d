"""What ServiceAccounts cost on the request path, in-process (no cluster, no network).

Run: ``python -m bench.bench_serviceaccounts [--n 20000]`` (a few seconds). Three measures, each
the median of five rounds, in microseconds per operation:

* pod admission: ``default_and_validate`` of a typical pod alone, and followed by the
  ServiceAccount admission (account lookup, the kube-api-access volume and mounts added); the
  issue's budget is at most 10 % more validation cost per Pod create;
* authentication at the REST door: a client certificate (what every request pays today) and a
  bearer token (ES256 verification, claims, account and pod lookups);
* signing one token (TokenRequest), for the agent's refreshes.

The store is a dict standing in for the master's replica (its ``get`` is a dict lookup too), so
the figures are the CPU of the code that runs per request, not of Raft or gRPC.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

from hakube.api import convert
from hakube.api.kinds import BY_NAME
from hakube.api.v1 import core_pb2, pod_pb2, token_pb2
from hakube.apiserver import serviceaccounts
from hakube.apiserver.authn import Authenticator
from hakube.apiserver.tokens import Tokens
from hakube.apiserver.validation import default_and_validate
from hakube.pki import certs, jwt


class _Rec:
    def __init__(self, value: bytes) -> None:
        self.value = value


class _Store:
    """``get(kind, ns, name)`` over a dict, as StoreFSM answers it."""

    def __init__(self) -> None:
        self.items: dict[tuple[str, str, str], _Rec] = {}

    def put(self, kind: str, ns: str, name: str, msg: Any) -> None:
        self.items[(kind, ns, name)] = _Rec(msg.SerializeToString())

    def get(self, kind: str, ns: str, name: str) -> _Rec | None:
        return self.items.get((kind, ns, name))


POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
    "spec": {
        "containers": [
            {
                "name": "web",
                "image": "nginx:1.27",
                "ports": [{"containerPort": 80}],
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                "readinessProbe": {"httpGet": {"path": "/", "port": 80}},
            }
        ]
    },
}


def _per_op(fn: Callable[[], object], n: int) -> float:
    rounds = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(n):
            fn()
        rounds.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(rounds)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20000, help="operations per round")
    args = p.parse_args(argv)
    n = args.n
    store = _Store()
    sa = core_pb2.ServiceAccount(metadata={"name": "default", "namespace": "default", "uid": "u1"})
    store.put("ServiceAccount", "default", "default", sa)
    template = convert.from_dict(dict(POD))
    kind = BY_NAME["Pod"]

    def validate_only() -> None:
        pod = pod_pb2.Pod()
        pod.CopyFrom(template)
        default_and_validate(kind, pod)

    def validate_and_admit() -> None:
        pod = pod_pb2.Pod()
        pod.CopyFrom(template)
        default_and_validate(kind, pod)
        serviceaccounts.admit_create(store, pod, seed="r")  # type: ignore[arg-type]

    v, va = _per_op(validate_only, n), _per_op(validate_and_admit, n)
    print(f"pod create: validation {v:.1f} us, with ServiceAccount admission {va:.1f} us "
          f"(+{(va / v - 1) * 100:.1f} %)")  # fmt: skip

    ca_cert, ca_key = certs.create_ca()
    ca = certs.CA.load(ca_cert, ca_key)
    assert ca.key is not None
    key = jwt.derive_signing_key(ca.key)
    bound = pod_pb2.Pod(metadata={"name": "web", "namespace": "default", "uid": "p1"})
    bound.spec.service_account_name = "default"
    store.put("Pod", "default", "web", bound)
    tokens = Tokens(store, key)  # type: ignore[arg-type]
    tr = token_pb2.TokenRequest()
    ref = tr.spec.bound_object_ref
    ref.kind, ref.name, ref.uid = "Pod", "web", "p1"
    req = token_pb2.CreateTokenRequest(namespace="default", name="default", token_request=tr)
    token = asyncio.run(tokens.create(req)).status.token
    user_cert, _ = ca.issue_pair(certs.Identity("someone", ("devs",)))
    authn = Authenticator(certs.identity_of(ca.cert).user, tokens=tokens.authenticate)
    c = _per_op(lambda: authn.identify_certificate(user_cert), n // 4)
    b = _per_op(lambda: authn.identify_bearer(f"Bearer {token}"), n // 4)
    print(f"authentication: client certificate {c:.1f} us, bearer token {b:.1f} us")
    s = _per_op(lambda: asyncio.run(tokens.create(req)), max(1, n // 40))
    print(f"TokenRequest: {s:.1f} us per signed token (asyncio.run included)")


if __name__ == "__main__":
    main()
