"""NodePort allocation in the API server: unique ports from 30000-32767, given ones honoured,
taken or out-of-range ones refused naming the field, kept across updates, freed on delete."""

from __future__ import annotations

from typing import Any

import pytest

from hakube.client import Client, errors

pytestmark = pytest.mark.timeout(120)


def nodeport(name: str, *ports: int, type: str = "NodePort") -> dict[str, Any]:
    spec_ports = [
        {"name": f"p{i}", "port": 80 + i, **({"nodePort": n} if n else {})}
        for i, n in enumerate(ports or (0,))
    ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": type, "ports": spec_ports},
    }


def ports_of(client: Client, name: str) -> list[int]:
    return [p.node_port for p in client.services.get(name, namespace="default").spec.ports]


def test_every_port_gets_a_distinct_node_port_in_range(client: Client) -> None:
    client.apply(nodeport("np-a", 0, 0, 0))
    client.apply(nodeport("np-b", 0))
    got = ports_of(client, "np-a") + ports_of(client, "np-b")
    assert all(30000 <= p <= 32767 for p in got) and len(set(got)) == 4


def test_a_given_node_port_is_honoured_and_a_taken_one_refused_naming_the_field(
    client: Client,
) -> None:
    client.apply(nodeport("np-c", 31000))
    assert ports_of(client, "np-c") == [31000]
    with pytest.raises(
        errors.Invalid, match=r"spec\.ports\[1\]\.nodePort.*31000.*already allocated"
    ):
        client.apply(nodeport("np-d", 0, 31000))
    with pytest.raises(errors.NotFound):
        client.services.get("np-d", namespace="default")  # nothing half-written


def test_out_of_range_and_clusterip_node_ports_are_refused(client: Client) -> None:
    with pytest.raises(errors.Invalid, match=r"spec\.ports\[0\]\.nodePort.*30000-32767"):
        client.apply(nodeport("np-e", 8080))
    with pytest.raises(errors.Invalid, match=r"spec\.ports\[0\]\.nodePort: may not be used"):
        client.apply(nodeport("np-e", 31001, type="ClusterIP"))


def test_an_update_keeps_node_ports_and_a_delete_frees_them(client: Client) -> None:
    client.apply(nodeport("np-f", 31100))
    svc = client.services.get("np-f", namespace="default")
    svc.spec.ports[0].ClearField("node_port")
    svc.metadata.labels["touched"] = "yes"
    updated = client.services.update(svc)
    assert updated.spec.ports[0].node_port == 31100
    assert updated.metadata.generation == svc.metadata.generation
    client.services.delete("np-f", namespace="default")
    client.apply(nodeport("np-g", 31100))
    assert ports_of(client, "np-g") == [31100]
    # Turning a NodePort Service into a ClusterIP one frees its ports too.
    svc = client.services.get("np-g", namespace="default")
    svc.spec.type = "ClusterIP"
    svc.spec.ports[0].ClearField("node_port")
    client.services.update(svc)
    client.apply(nodeport("np-h", 31100))
