"""A pod's DNS settings: Kubernetes' rules and the resolv.conf each dnsPolicy makes."""

from __future__ import annotations

from typing import Any

import pytest

from hakube.api import convert, poddns, resolvconf
from hakube.api.kinds import BY_NAME
from hakube.apiserver.errors import Invalid
from hakube.apiserver.validation import default_and_validate

NODE = resolvconf.parse(
    "# the node's\nnameserver 192.0.2.53\nnameserver 192.0.2.54\nsearch corp.example\n"
    "options timeout:2 rotate\n"
)
CLUSTER = poddns.ClusterDNS(("10.96.0.10",), "cluster.local")


def pod(**spec: Any) -> Any:
    return convert.from_dict(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "p", "namespace": "shop"},
            "spec": {"containers": [{"name": "c", "image": "i:1"}], **spec},
        }
    )


def resolv(**spec: Any) -> poddns.Resolver:
    return poddns.resolver(pod(**spec), CLUSTER, NODE)


def test_cluster_first_is_the_default_and_searches_the_pods_namespace_first() -> None:
    r = resolv()
    assert r.nameservers == ["10.96.0.10"]
    assert r.searches == ["shop.svc.cluster.local", "svc.cluster.local", "cluster.local"]
    assert r.options == ["ndots:5"]
    assert resolv(dnsPolicy="ClusterFirst") == r


def test_default_is_the_nodes_resolv_conf() -> None:
    r = resolv(dnsPolicy="Default")
    assert r.nameservers == ["192.0.2.53", "192.0.2.54"]
    assert r.searches == ["corp.example"]
    assert r.options == ["timeout:2", "rotate"]


def test_host_network_pods_get_the_nodes_unless_cluster_first_with_host_net() -> None:
    assert resolv(hostNetwork=True).nameservers == NODE.nameservers
    assert resolv(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet").nameservers == [
        "10.96.0.10"
    ]


def test_none_takes_only_dns_config_and_dns_config_extends_the_others() -> None:
    cfg = {
        "nameservers": ["192.0.2.99"],
        "searches": ["a.example."],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}],
    }
    r = resolv(dnsPolicy="None", dnsConfig=cfg)
    assert (r.nameservers, r.searches, r.options) == (
        ["192.0.2.99"],
        ["a.example"],
        ["ndots:2", "edns0"],
    )
    r = resolv(dnsConfig=cfg)
    assert r.nameservers == ["10.96.0.10", "192.0.2.99"]
    assert r.searches[-1] == "a.example" and r.options == ["ndots:2", "edns0"]


def test_limits_are_applied_to_what_the_node_contributes() -> None:
    big = resolvconf.parse(
        "".join(f"nameserver 192.0.2.{i}\n" for i in range(5))
        + "search "
        + " ".join(f"d{i}.example" for i in range(40))
    )
    r = poddns.resolver(pod(dnsPolicy="Default"), CLUSTER, big)
    assert len(r.nameservers) == 3 and len(r.searches) == 32


def test_without_cluster_dns_cluster_first_falls_back_to_the_node() -> None:
    r = poddns.resolver(pod(), poddns.ClusterDNS((), "cluster.local"), NODE)
    assert r.nameservers == NODE.nameservers


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"dnsPolicy": "Cluster"}, 'spec.dnsPolicy: unsupported value "Cluster"'),
        ({"dnsPolicy": "None"}, 'spec.dnsConfig: required when dnsPolicy is "None"'),
        (
            {"dnsPolicy": "None", "dnsConfig": {"searches": ["a.example"]}},
            "spec.dnsConfig.nameservers: required",
        ),
        (
            {"dnsConfig": {"nameservers": ["1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4"]}},
            "spec.dnsConfig.nameservers: at most 3",
        ),
        ({"dnsConfig": {"nameservers": ["dns.example"]}}, "spec.dnsConfig.nameservers[0]"),
        (
            {"dnsConfig": {"searches": [f"d{i}.example" for i in range(33)]}},
            "spec.dnsConfig.searches: at most 32",
        ),
        ({"dnsConfig": {"searches": ["Bad_Domain"]}}, "spec.dnsConfig.searches[0]"),
        ({"dnsConfig": {"options": [{"value": "1"}]}}, "spec.dnsConfig.options[0].name"),
        ({"hostAliases": [{"ip": "db.local", "hostnames": ["x"]}]}, "spec.hostAliases[0].ip"),
        ({"hostAliases": [{"ip": "192.0.2.1"}]}, "spec.hostAliases[0].hostnames: required"),
        (
            {"hostAliases": [{"ip": "192.0.2.1", "hostnames": ["Bad Name"]}]},
            "spec.hostAliases[0].hostnames[0]",
        ),
    ],
)
def test_the_api_refuses_broken_dns_settings_naming_the_field(
    spec: dict[str, Any], message: str
) -> None:
    with pytest.raises(Invalid) as e:
        default_and_validate(BY_NAME["Pod"], pod(**spec))
    assert message in str(e.value)


def test_valid_settings_pass_and_the_policy_defaults_to_cluster_first() -> None:
    p = pod(
        dnsConfig={"nameservers": ["192.0.2.1"], "searches": ["a.example"]},
        hostAliases=[{"ip": "192.0.2.5", "hostnames": ["db.local", "db"]}],
    )
    default_and_validate(BY_NAME["Pod"], p)
    assert p.spec.dns_policy == "ClusterFirst"
