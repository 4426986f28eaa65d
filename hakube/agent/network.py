"""Pod networks: a node-local bridge configured through CNI, with pod IPs from the node's CIDR.

When the agent knows its node's pod CIDR (``--pod-cidr``, or ``spec.podCIDR`` of its Node), it
writes one CNI network config into the runtime's CNI config directory: Debian's
containernetworking-plugins ``bridge`` plugin (a Linux bridge on the node, its first address the
pods' gateway, the node reaching every pod directly) with ``host-local`` IPAM handing out
addresses from the CIDR. containerd picks the file up by itself and then reports
``NetworkReady``; from then on, pods that do not ask for ``hostNetwork`` get their own network
namespace, address and hostname. No masquerading and no port mappings (they need iptables):
pods reach the node and each other on the node; reaching other nodes' pods needs routes
between nodes, which hakube does not set up.
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
            }
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
