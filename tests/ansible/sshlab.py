"""Hosts reached over real SSH: an ``sshd`` (Debian's openssh-server) in each network namespace
of a :class:`~hakube.testing.netns.Network`, and a control namespace that runs
``ansible-playbook`` against them as operators do.

Each sshd has its own configuration, host key and the test's authorised key (root may log in with
that key only; no passwords, no PAM). The control node verifies host keys: the lab writes a
``known_hosts`` with every host's key, and ssh runs with ``StrictHostKeyChecking=yes`` against it.
Everything lives in the network's workdir and goes with it; the sshds are processes of the
network, killed when it closes. The one thing made outside: sshd's privilege-separation directory
``/run/sshd`` (empty, what the openssh-server package's own unit creates), if it is missing. Each
sshd runs in a mount namespace of its own in which root's ``~/.bashrc`` is an empty file: the
sessions of a test host do not run this machine's login set-up.
"""

from __future__ import annotations

import pwd
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from hakube.testing.netns import Host, Network
from hakube.testing.wait import wait_for

SSHD = Path("/usr/sbin/sshd")


def unavailable_reason() -> str | None:
    """Why SSH hosts cannot be made here, or None."""
    if not SSHD.exists():
        return "sshd is not installed (scripts/install/ansible.sh: openssh-server)"
    for tool in ("ssh", "ssh-keygen"):
        if subprocess.run(["which", tool], capture_output=True).returncode != 0:
            return f"{tool} is not installed (scripts/install/ansible.sh: openssh-client)"
    return None


def _keygen(path: Path) -> str:
    """A new ed25519 key pair at ``path``; returns the public key line."""
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return path.with_suffix(".pub").read_text().strip()


@dataclass
class SshLab:
    """The SSH side of a network: :meth:`add_host` gives a host with a running sshd."""

    net: Network
    dir: Path = field(init=False)
    identity: Path = field(init=False)
    known_hosts: Path = field(init=False)
    control: Host = field(init=False)

    def __post_init__(self) -> None:
        self.dir = self.net.workdir / "ssh"
        self.dir.mkdir(mode=0o700)
        self.identity = self.dir / "id_ed25519"
        (self.dir / "authorized_keys").write_text(_keygen(self.identity) + "\n")
        self.known_hosts = self.dir / "known_hosts"
        self.known_hosts.write_text("")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.control = self.net.add_host("ctl", "192.0.2.250/24")

    def add_host(self, name: str, address: str) -> Host:
        """A host on the network with sshd listening on its address, port 22, its host key in
        the known_hosts file."""
        host = self.net.add_host(name, address)
        key = self.dir / f"{name}_host_ed25519"
        public = _keygen(key)
        config = self.dir / f"{name}_sshd_config"
        config.write_text(
            f"ListenAddress {host.ip}:22\n"
            f"HostKey {key}\n"
            "PidFile none\n"
            f"AuthorizedKeysFile {self.dir / 'authorized_keys'}\n"
            "PermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            # The workdir's parent is /tmp (world-writable, sticky), which StrictModes refuses
            # for the authorised keys' directory.
            "StrictModes no\n"
            "Subsystem sftp internal-sftp\n"
        )
        # sshd runs root's shell, which reads this machine's ~root/.bashrc for every session
        # (bash does so when sshd starts it): a developer's login set-up is not the test host's
        # (one that waits on a stale pyenv lock costs every Ansible task a minute, and writes
        # into its output). sshd gets a mount namespace of its own where that file is empty.
        argv = [str(SSHD), "-D", "-e", "-f", str(config)]
        bashrc = Path(pwd.getpwnam("root").pw_dir) / ".bashrc"
        if bashrc.exists():
            empty = self.dir / "empty-bashrc"
            empty.write_text("")
            script = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
            argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"]
            argv += [str(empty), str(bashrc), str(SSHD), "-D", "-e", "-f", str(config)]
        host.spawn(argv, log=self.dir / f"{name}-sshd.log")
        with self.known_hosts.open("a") as f:
            f.write(f"{host.ip} {' '.join(public.split()[:2])}\n")
        wait_for(lambda: self._listening(host.ip), 30, f"sshd on {name}", interval=0.2)
        return host

    def _listening(self, ip: str) -> bool:
        code = (
            "import socket,sys\n"
            "try: socket.create_connection((sys.argv[1], 22), 1).close()\n"
            "except OSError: sys.exit(1)\n"
        )
        return self.control.run([sys.executable, "-I", "-c", code, ip], check=False).returncode == 0

    def options(self, control_dir: Path) -> list[str]:
        """ssh ``-o`` options for these hosts: this identity only, host keys verified against the
        lab's known_hosts, one multiplexed connection per host (``control_dir`` must be a short
        path: it holds unix sockets)."""
        return [
            "IdentitiesOnly=yes",
            f"IdentityFile={self.identity}",
            f"UserKnownHostsFile={self.known_hosts}",
            "StrictHostKeyChecking=yes",
            "GlobalKnownHostsFile=/dev/null",
            "ControlMaster=auto",
            "ControlPersist=120s",
            f"ControlPath={control_dir}/%C",
            "ConnectTimeout=20",
        ]

    def ssh_args(self, control_dir: Path) -> str:
        """The same as Ansible's ``ssh_args``."""
        return " ".join(f"-o {opt}" for opt in self.options(control_dir))

    def ssh(
        self, host: Host, *command: str, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` on ``host`` over SSH from the control namespace."""
        argv = ["ssh", "-F", "/dev/null", "-o", "BatchMode=yes"]
        for opt in self.options(self.dir):
            argv += ["-o", opt]
        return self.control.run([*argv, f"root@{host.ip}", *command], timeout=timeout, check=False)
