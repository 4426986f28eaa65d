"""Pod networks: a node-local bridge configured through CNI, with pod IPs from the node's CIDR.

When the agent knows its node's pod CIDR (``--pod-cidr``, or ``spec.podCIDR`` of its Node,
which the controller-manager allocates), it writes one CNI network config list into the
runtime's CNI config directory -- its own file, ``10-hakube.conflist``, and nothing else:

* ``bridge`` (Debian's containernetworking-plugins): a Linux bridge on the node (``hakube0``
  unless ``--cni-bridge``), its first address the pods' gateway, the node reaching every pod
  directly; ``host-local`` IPAM hands out addresses from the CIDR.
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


def cni_config(pod_cidr: str, bridge: str, ipam_dir: str) -> dict[str, object]:
    net = ipaddress.ip_network(pod_cidr)  # ValueError names the bad CIDR
    return {
        "cniVersion": "0.4.0",
        "name": NETWORK_NAME,
        "plugins": [
            {
                "type": "bridge",
                "bridge": bridge,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": str(net)}]],
                    "routes": [{"dst": "0.0.0.0/0" if net.version == 4 else "::/0"}],
                    "dataDir": ipam_dir,
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def write_config(conf_dir: str, pod_cidr: str, bridge: str, ipam_dir: str) -> Path:
    """Write (atomically) the CNI config; returns its path."""
    path = Path(conf_dir) / CONFIG_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{CONFIG_NAME}.tmp")
    tmp.write_text(json.dumps(cni_config(pod_cidr, bridge, ipam_dir), indent=2) + "\n")
    os.replace(tmp, path)
    return path
