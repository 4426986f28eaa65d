"""Pod networks configured through CNI, with pod IPs from the node's CIDR.

When the agent knows its node's pod CIDR (``--pod-cidr``, or ``spec.podCIDR`` of its Node,
which the controller-manager allocates), it writes one CNI network config list into the
runtime's CNI config directory -- its own file, ``10-hakube.conflist``, and nothing else. Its
first plugin (Debian's containernetworking-plugins) depends on ``--cni-mode``:

* ``routed`` (the default), ``ptp``: each pod gets a veth pair whose node end holds the range's
  first address as a /32 and a /32 route to the pod; the pod's default route goes via that
  address. No bridge: a packet between pods crosses one veth per node and the IP forwarding
  of the node, which is all a routed (host-gw) network needs, and every packet to or from a
  pod is routed by the node -- so it meets the node's netfilter hooks once, also between
  two pods of one node (no ``br_netfilter`` needed for Services).
* ``bridge``: a Linux bridge on the node (``hakube0`` unless ``--cni-bridge``), its first
  address the pods' gateway, the node reaching every pod directly. Pods of one node talk
  over the bridge without the node routing; a frame crossing it costs a bridge hop (and, with
  ``br_netfilter``'s ``bridge-nf-call-iptables``, the IP hooks once more).

``host-local`` IPAM hands out addresses from the CIDR in both modes (its state in the same
directory, so the addresses of running pods stay taken across a mode change).
* ``portmap``: a container's ``hostPort`` is forwarded from the node's addresses (DNAT rules
  of the plugin's own chains, in the node's network namespace).

The loopback interface of each pod is containerd's job (its CRI plugin runs the ``loopback``
plugin itself, from the same plugin directory). containerd picks the file up by itself and
then reports ``NetworkReady``; from then on, pods that do not ask for ``hostNetwork`` get their
own network namespace, address and hostname.

No masquerading (``ipMasq`` off): pod-to-pod traffic across nodes keeps the pods' addresses
(routes between nodes: hakube.agent.routes), and traffic to outside the cluster leaves with
the pod's address -- a network that should carry it needs a route back to the cluster CIDR,
or an operator's masquerade rule (docs/networking.md).
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path

CONFIG_NAME = "10-hakube.conflist"
NETWORK_NAME = "hakube"
MODES = ("routed", "bridge")
"""``--cni-mode``: a routed veth per pod (CNI ``ptp``) or a node bridge (CNI ``bridge``)."""


def cni_config(
    pod_cidr: str, bridge: str, ipam_dir: str, mtu: int = 0, mode: str = "routed"
) -> dict[str, object]:
    """The conflist for ``mode`` (one of :data:`MODES`); ``mtu`` > 0 sets the pods' MTU
    (VXLAN mode), else the plugin's default (1500, or that of the bridge). ``bridge`` names
    the node bridge of the bridge mode."""
    if mode not in MODES:
        raise ValueError(f"--cni-mode {mode!r}: use routed or bridge")
    net = ipaddress.ip_network(pod_cidr)  # ValueError names the bad CIDR
    first: dict[str, object] = {"type": "ptp", "ipMasq": False}
    if mode == "bridge":
        first = {
            "type": "bridge",
            "bridge": bridge,
            "isGateway": True,
            "ipMasq": False,
            "hairpinMode": True,
        }
    first["ipam"] = {
        "type": "host-local",
        "ranges": [[{"subnet": str(net)}]],
        "routes": [{"dst": "0.0.0.0/0" if net.version == 4 else "::/0"}],
        "dataDir": ipam_dir,
    }
    if mtu > 0:
        first["mtu"] = mtu
    return {
        "cniVersion": "0.4.0",
        "name": NETWORK_NAME,
        "plugins": [first, {"type": "portmap", "capabilities": {"portMappings": True}}],
    }


def write_config(
    conf_dir: str, pod_cidr: str, bridge: str, ipam_dir: str, *, mtu: int = 0, mode: str = "routed"
) -> Path:
    """Write (atomically) the CNI config; returns its path."""
    path = Path(conf_dir) / CONFIG_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{CONFIG_NAME}.tmp")
    tmp.write_text(json.dumps(cni_config(pod_cidr, bridge, ipam_dir, mtu, mode), indent=2) + "\n")
    os.replace(tmp, path)
    return path
