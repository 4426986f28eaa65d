"""Where the cluster's key material lives, and making it.

One PKI directory (``hakube certs init``, ``hakube up``, the Ansible playbook) holds::

    ca.crt  ca.key                      the cluster CA (every master has both: it signs joins)
    masters/<name>.crt  <name>.key      each master: API server, Raft peer, client of agents
    users/<user>.crt  <user>.key        admin, scheduler, controller-manager, proxy, dns (client
                                        only)

All directories are 0700 and all keys 0600 (hakube.pki.files). A master reads
``ca.crt``, ``ca.key`` and its own ``masters/<name>.*``; on a host with one master the directory
may hold only that master's files (Ansible copies just those).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from hakube.pki import certs, files, jwt, names
from hakube.pki.tls import TlsFiles

USERS = {
    "admin": certs.Identity(names.ADMIN_USER, (names.ADMINS_GROUP,)),
    "scheduler": certs.Identity(names.SCHEDULER_USER),
    "controller-manager": certs.Identity(names.CONTROLLER_MANAGER_USER),
    "proxy": certs.Identity(names.PROXY_USER),
    "dns": certs.Identity(names.DNS_USER),
    "prometheus": certs.Identity(names.PROMETHEUS_USER, (names.MONITORING_GROUP,)),
}
"""The client identities `hakube certs init` issues, by file name (``prometheus``: the scraper of
the HTTPS metrics endpoints; RBAC grants it nothing in the API)."""
RENEW_BEFORE = datetime.timedelta(days=30)
"""`hakube certs renew` (without --force) and agents renew certificates this close to expiry."""


class PkiError(Exception):
    """The PKI directory cannot be used as asked; the message names the file."""


@dataclass(frozen=True)
class Pki:
    """Paths inside one PKI directory."""

    root: str

    @property
    def ca_cert(self) -> str:
        return os.path.join(self.root, "ca.crt")

    @property
    def ca_key(self) -> str:
        return os.path.join(self.root, "ca.key")

    def master_cert(self, name: str) -> str:
        return os.path.join(self.root, "masters", f"{name}.crt")

    def master_key(self, name: str) -> str:
        return os.path.join(self.root, "masters", f"{name}.key")

    def user_cert(self, user: str) -> str:
        return os.path.join(self.root, "users", f"{user}.crt")

    def user_key(self, user: str) -> str:
        return os.path.join(self.root, "users", f"{user}.key")

    def master_tls(self, name: str) -> TlsFiles:
        """Master ``name``'s TLS files: the CA, its certificate and key."""
        return TlsFiles(self.ca_cert, self.master_cert(name), self.master_key(name))

    def user_tls(self, user: str) -> TlsFiles:
        """A user's (admin, scheduler, controller-manager, proxy) TLS files."""
        return TlsFiles(self.ca_cert, self.user_cert(user), self.user_key(user))

    def has_ca(self) -> bool:
        return os.path.exists(self.ca_cert)

    def load_ca(self, *, with_key: bool = True) -> certs.CA:
        try:
            cert = files.read(self.ca_cert)
            key = files.read(self.ca_key) if with_key else None
        except OSError as exc:
            raise PkiError(f"cluster CA: {exc.filename}: {exc.strerror}") from exc
        try:
            return certs.CA.load(cert, key)
        except certs.CertError as exc:
            raise PkiError(f"cluster CA in {self.root}: {exc}") from exc

    def token_signing_key(self) -> ec.EllipticCurvePrivateKey:
        """The ServiceAccount token key, derived from ``ca.key`` (hakube.pki.jwt): the same on
        every master. PkiError if the CA key is missing or readable by group or others."""
        try:
            mode = os.stat(self.ca_key).st_mode
        except OSError as exc:
            raise PkiError(f"cluster CA: {self.ca_key}: {exc.strerror}") from exc
        if mode & 0o077:
            raise PkiError(
                f"{self.ca_key} is readable by others (mode {mode & 0o777:o}): chmod 600 it"
            )
        ca = self.load_ca()
        assert ca.key is not None
        return jwt.derive_signing_key(ca.key)

    def init_ca(self) -> certs.CA:
        """Create the CA unless it exists; return it."""
        files.ensure_private_dir(self.root)
        if not self.has_ca():
            cert, key = certs.create_ca()
            files.write_atomic(self.ca_key, key)
            files.write_atomic(self.ca_cert, cert, mode=files.PUBLIC_FILE_MODE)
        return self.load_ca()

    def write_pair(self, cert_path: str, key_path: str, pair: tuple[bytes, bytes]) -> None:
        """Key first: a reader that sees the new certificate finds its key."""
        files.ensure_private_dir(os.path.dirname(cert_path))
        files.write_atomic(key_path, pair[1])
        files.write_atomic(cert_path, pair[0], mode=files.PUBLIC_FILE_MODE)

    def issue_master(self, ca: certs.CA, name: str, hosts: list[str]) -> None:
        """(Re)issue master ``name``'s certificate for ``hosts`` plus localhost."""
        all_hosts = tuple(dict.fromkeys([*hosts, "localhost", "127.0.0.1"]))
        pair = ca.issue_pair(
            certs.Identity(names.master_user(name), (names.MASTERS_GROUP,)),
            server=True,
            client=True,
            hosts=all_hosts,
        )
        self.write_pair(self.master_cert(name), self.master_key(name), pair)

    def issue_user(self, ca: certs.CA, user: str) -> None:
        pair = ca.issue_pair(USERS[user])
        self.write_pair(self.user_cert(user), self.user_key(user), pair)

    def ensure_master(self, name: str, hosts: list[str]) -> None:
        """Issue master ``name``'s certificate if it is missing or does not cover ``hosts``."""
        path = self.master_cert(name)
        if os.path.exists(path) and os.path.exists(self.master_key(name)):
            have = set(certs.hosts_of(certs.load_cert(files.read(path))))
            if {normalize_host(h) for h in hosts} <= have:
                return
        self.issue_master(self.load_ca(), name, hosts)

    def entries(self) -> list[tuple[str, str, str]]:
        """Every issued certificate in the directory: (name, cert path, key path), named
        ``masters/<name>`` and ``users/<user>``."""
        out = []
        for sub in ("masters", "users"):
            d = os.path.join(self.root, sub)
            for f in sorted(os.listdir(d)) if os.path.isdir(d) else []:
                if f.endswith(".crt"):
                    out.append(
                        (f"{sub}/{f[:-4]}", os.path.join(d, f), os.path.join(d, f[:-4] + ".key"))
                    )
        return out

    def renew(self, ca: certs.CA, cert_path: str, key_path: str) -> x509.Certificate:
        """Re-issue a certificate with the same identity, names, usages and key. Only the
        certificate file changes (atomically): a reader never sees a key that does not match."""
        try:
            old = certs.load_cert(files.read(cert_path))
            key = certs.load_key(files.read(key_path))
        except OSError as exc:
            raise PkiError(f"{exc.filename}: {exc.strerror}") from exc
        try:
            usages = old.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            usages = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH])
        cert = ca.issue(
            certs.identity_of(old),
            key.public_key(),
            server=ExtendedKeyUsageOID.SERVER_AUTH in usages,
            client=ExtendedKeyUsageOID.CLIENT_AUTH in usages,
            hosts=tuple(certs.hosts_of(old)),
        )
        files.write_atomic(cert_path, certs.cert_pem(cert), mode=files.PUBLIC_FILE_MODE)
        return cert

    def init(self, masters: dict[str, list[str]]) -> list[str]:
        """Create the CA, each master's certificate and the users' certificates, keeping every
        file that exists. Returns the paths written."""
        written = []
        if not self.has_ca():
            written.append(self.ca_cert)
        ca = self.init_ca()
        for name, hosts in masters.items():
            if not os.path.exists(self.master_cert(name)):
                self.issue_master(ca, name, hosts)
                written.append(self.master_cert(name))
        for user in USERS:
            if not os.path.exists(self.user_cert(user)):
                self.issue_user(ca, user)
                written.append(self.user_cert(user))
        return written


@dataclass(frozen=True)
class NodePki:
    """A node agent's key material, under its root dir (``<root-dir>/pki``, 0700)::

    ca.crt            the cluster CA (from the join, checked against --ca-cert-hash)
    node.crt node.key system:node:<name> in system:nodes: the agent's client certificate
                      towards the API and its serving certificate for its own API
    """

    root: str

    @property
    def ca_cert(self) -> str:
        return os.path.join(self.root, "ca.crt")

    @property
    def cert(self) -> str:
        return os.path.join(self.root, "node.crt")

    @property
    def key(self) -> str:
        return os.path.join(self.root, "node.key")

    def exists(self) -> bool:
        return all(os.path.exists(p) for p in (self.ca_cert, self.cert, self.key))

    def tls_files(self) -> TlsFiles:
        return TlsFiles(self.ca_cert, self.cert, self.key)

    def provision(self, ca: certs.CA, name: str, hosts: list[str]) -> None:
        """Write a node certificate issued directly by ``ca`` (pre-provisioned nodes, and
        the masters' answer to a join)."""
        files.ensure_private_dir(self.root)
        pair = ca.issue_pair(
            node_identity(name),
            server=True,
            client=True,
            hosts=tuple(dict.fromkeys([*hosts, name, "localhost", "127.0.0.1"])),
        )
        files.write_atomic(self.ca_cert, ca.pem, mode=files.PUBLIC_FILE_MODE)
        files.write_atomic(self.key, pair[1])
        files.write_atomic(self.cert, pair[0], mode=files.PUBLIC_FILE_MODE)


def node_identity(name: str) -> certs.Identity:
    return certs.Identity(names.node_user(name), (names.NODES_GROUP,))


def normalize_host(host: str) -> str:
    """A host as a certificate lists it (IPv6 without brackets, compressed)."""
    host = host.strip("[]")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return host


def listen_hosts(*addresses: str) -> list[str]:
    """The hosts of HOST:PORT listen addresses, without wildcards."""
    out = []
    for a in addresses:
        if not a:
            continue
        host = normalize_host(a.rpartition(":")[0])
        if host and host not in ("0.0.0.0", "::"):
            out.append(host)
    return out
