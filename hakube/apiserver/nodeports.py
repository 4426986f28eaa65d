"""NodePort allocation: every port of a NodePort (or LoadBalancer) Service gets a node port.

As in Kubernetes, the API server allocates, when the Service is written, from 30000-32767
(``RANGE``): a port given in ``spec.ports[].nodePort`` is honoured unless another Service holds
it (INVALID_ARGUMENT naming the field), a missing one gets a free port at random, and an update
that leaves a port's ``nodePort`` out keeps the one it had. A Service's ports are free again
once it is deleted, or no longer of a type with node ports: what is allocated is read from the
Services themselves, so nothing can leak.

Which ports are taken comes from this master's copy of the store, indexed by record revision
(each Service is parsed once per version). Two creates racing on two masters between one
replication round could choose the same free port (1 in 2,768 for two random picks): the proxy
then programs the Service whose key sorts first (``hakube.proxy.rules.Builder``).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from hakube.apiserver.errors import Invalid
from hakube.apiserver.validation import NODE_PORT_RANGE
from hakube.store.fsm import Record, StoreFSM

RANGE = NODE_PORT_RANGE
TYPES = ("NodePort", "LoadBalancer")

Parse = Callable[[str, str, Record], Any]
"""(namespace, name, record) -> the Service it holds."""


def wants_node_ports(svc: Any) -> bool:
    return bool(svc.spec.type in TYPES)


class NodePorts:
    def __init__(self, fsm: StoreFSM, parse: Parse) -> None:
        self.fsm = fsm
        self.parse = parse
        self._cache: dict[tuple[str, str], tuple[int, frozenset[int]]] = {}

    def used(self, *, exclude: tuple[str, str]) -> dict[int, str]:
        """Node port -> "namespace/name" of the Service holding it, but ``exclude``'s."""
        _, items = self.fsm.snapshot("Service", None, 0)
        out: dict[int, str] = {}
        cache: dict[tuple[str, str], tuple[int, frozenset[int]]] = {}
        for key, rec in items:
            hit = self._cache.get(key)
            if hit is None or hit[0] != rec.mod_rev:
                svc = self.parse(key[0], key[1], rec)
                ports = frozenset(p.node_port for p in svc.spec.ports if p.node_port)
                hit = (rec.mod_rev, ports if wants_node_ports(svc) else frozenset())
            cache[key] = hit
            if key != exclude:
                out.update((p, f"{key[0]}/{key[1]}") for p in hit[1])
        self._cache = cache
        return out

    def assign(self, svc: Any, old: Any | None, *, seed: str = "") -> None:
        """Fill in ``svc``'s node ports (keeping ``old``'s); Invalid if one asked for is taken.
        ``seed`` (the request id) makes a retried create choose the same ports."""
        if not wants_node_ports(svc):
            return
        m = svc.metadata
        used = self.used(exclude=(m.namespace, m.name))
        kept = {}
        if old is not None and wants_node_ports(old):
            kept = {(p.protocol, p.port): p.node_port for p in old.spec.ports if p.node_port}
        mine: set[tuple[str, int]] = set()
        for i, p in enumerate(svc.spec.ports):
            if not p.node_port:
                p.node_port = kept.get((p.protocol, p.port), 0)
            if not p.node_port:
                continue
            holder = used.get(p.node_port)
            if holder is not None:
                raise Invalid(
                    f'Service "{m.name}" is invalid: spec.ports[{i}].nodePort: Invalid value: '
                    f"{p.node_port}: provided port is already allocated (to {holder})"
                )
            if (p.protocol, p.node_port) in mine:
                raise Invalid(
                    f'Service "{m.name}" is invalid: spec.ports[{i}].nodePort: Duplicate value: '
                    f"{p.node_port}/{p.protocol}"
                )
            mine.add((p.protocol, p.node_port))
        rnd = random.Random(seed) if seed else random.Random()
        taken = set(used) | {n for _, n in mine}
        for i, p in enumerate(svc.spec.ports):
            if p.node_port:
                continue
            free = RANGE[1] - RANGE[0] + 1 - len(taken)
            if free <= 0:
                raise Invalid(
                    f'Service "{m.name}" is invalid: spec.ports[{i}].nodePort: no free node '
                    f"port left in {RANGE[0]}-{RANGE[1]}"
                )
            while True:
                n = rnd.randint(*RANGE)
                if n not in taken:
                    break
            p.node_port = n
            taken.add(n)
