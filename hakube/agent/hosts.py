"""The pod's /etc/hosts, managed by the agent as the kubelet does.

Every container of a pod mounts ``<root-dir>/pods/<uid>/etc-hosts`` at /etc/hosts (unless it
mounts something there itself), so the file holds what Kubernetes puts in it:

- a pod on the pod network: the loopback names, then the pod's own address with its names
  (``<hostname>.<subdomain>.<ns>.svc.<domain>`` and ``<hostname>`` when it has a subdomain,
  else ``<hostname>``), so a pod resolves its own name without DNS;
- a host-network pod: the node's /etc/hosts;
- then, for both, ``spec.hostAliases``, one line per entry.

The file is rewritten at every reconcile that starts containers (the pod address is known only
once the sandbox runs), atomically, so a container never reads half of it.
"""

from __future__ import annotations

import os
import tempfile

from hakube.api.v1 import pod_pb2
from hakube.cri.v1 import api_pb2 as cri

ETC_HOSTS = "/etc/hosts"
HEADER = "# Managed by hakube agent.\n"
LOOPBACK = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "fe00::0\tip6-mcastprefix\n"
    "fe00::1\tip6-allnodes\n"
    "fe00::2\tip6-allrouters\n"
)


def content(
    pod: pod_pb2.Pod, pod_ip: str, *, host_network: bool, domain: str, node_hosts: str = ""
) -> str:
    """The text of ``pod``'s /etc/hosts (see the module docstring)."""
    if host_network:
        out = node_hosts if node_hosts.endswith("\n") or not node_hosts else node_hosts + "\n"
    else:
        out = HEADER + LOOPBACK
        hostname = (pod.spec.hostname or pod.metadata.name)[:63]
        if pod_ip:
            if pod.spec.subdomain:
                fqdn = f"{hostname}.{pod.spec.subdomain}.{pod.metadata.namespace}.svc.{domain}"
                out += f"{pod_ip}\t{fqdn}\t{hostname}\n"
            else:
                out += f"{pod_ip}\t{hostname}\n"
    if pod.spec.host_aliases:
        out += "\n# Entries added by HostAliases.\n"
        for a in pod.spec.host_aliases:
            out += f"{a.ip}\t{chr(9).join(a.hostnames)}\n"
    return out


def write(path: str, text: str) -> None:
    """Replace ``path`` with ``text`` atomically (0644: every container user reads it)."""
    d = os.path.dirname(path)
    os.makedirs(d, exist_ok=True)
    try:
        with open(path) as f:
            if f.read() == text:
                return
    except OSError:
        pass
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".etc-hosts-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def mount(c: pod_pb2.Container, path: str) -> list[cri.Mount]:
    """The /etc/hosts mount of container ``c``, unless it mounts a volume there itself."""
    if not path or any(m.mount_path.rstrip("/") == ETC_HOSTS for m in c.volume_mounts):
        return []
    return [cri.Mount(container_path=ETC_HOSTS, host_path=path)]
