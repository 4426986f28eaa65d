"""What a master checks and prepares before it serves; every failure is a ``StartupError``.

The data dir's lock (one master per data dir), the Raft peers (members.json once it exists:
flags only seed a new data dir), this master's TLS material, the Secrets' encryption keys and
the audit log. Nothing here listens on a socket, so a failure leaves nothing to clean up but
the lock.
"""

from __future__ import annotations

import fcntl
import logging
import os

from hakube.apiserver import encryption
from hakube.apiserver.audit import AuditError, AuditLog
from hakube.apiserver.encryption import Transformer
from hakube.lifecycle import StartupError
from hakube.master.settings import MasterSettings, api_advertise
from hakube.pki import certs as pki_certs
from hakube.pki.layout import Pki, PkiError, listen_hosts
from hakube.pki.tls import TlsFiles
from hakube.store import datadir

log = logging.getLogger("hakube.master")


def lock_data_dir(d: str) -> int:
    """The data dir (created owner-only), locked for this process; returns the lock's fd."""
    try:
        datadir.ensure_private_dir(d)
        fd = os.open(os.path.join(d, "LOCK"), os.O_RDWR | os.O_CREAT, 0o600)
    except datadir.DataDirError as exc:
        raise StartupError(f"hakube master: {exc}") from exc
    except OSError as exc:
        raise StartupError(f"hakube master: data dir {d}: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise StartupError(f"hakube master: data dir {d} is in use by another master") from exc
    return fd


def membership(s: MasterSettings) -> datadir.Membership:
    """Decide the Raft peers: members.json when the data dir has one (the flags only seed a
    new data dir), after --force-new-cluster has rewritten it if asked."""
    try:
        if s.force_new_cluster:
            log.warning(
                "%s",
                datadir.force_new_cluster(
                    s.data_dir, name=s.name, raft=s.raft_listen, api=api_advertise(s)
                ),
            )
        m = datadir.read_members(s.data_dir)
        if m is None:
            m = datadir.Membership(name=s.name, raft=s.raft_listen, peers=dict(s.peers))
            datadir.write_members(s.data_dir, m)
    except (datadir.DataDirError, OSError) as exc:
        raise StartupError(f"hakube master: {exc}") from exc
    if m.name != s.name:
        raise StartupError(
            f"hakube master: data dir {s.data_dir} belongs to master {m.name!r}, "
            f"not {s.name!r}; a new member needs an empty data dir"
        )
    if m.raft != s.raft_listen:
        raise StartupError(
            f"hakube master: data dir {s.data_dir} was created for raft address "
            f"{m.raft}, not {s.raft_listen}; a member's raft address cannot "
            "change: remove it and add a new member instead"
        )
    if s.peers and s.peers != m.peers:
        log.warning(
            "ignoring --peers %s: this data dir's membership is %s (members.json)",
            s.peers,
            m.peers,
        )
    return m


def pki(s: MasterSettings, peers: dict[str, str]) -> tuple[Pki, TlsFiles]:
    """This master's TLS material: the CA (made here only for a new cluster of one) and its
    own certificate, issued or re-issued when it does not cover the listen addresses."""
    p = Pki(s.pki_dir or os.path.join(s.data_dir, "pki"))
    try:
        if not p.has_ca():
            if peers:
                raise StartupError(
                    f"hakube master: no cluster CA in {p.root}: copy ca.crt and ca.key "
                    "from the first master there, or run `hakube certs init`"
                )
            p.init_ca()
            log.info("created a new cluster CA in %s", p.root)
        hosts = listen_hosts(s.api_listen, s.raft_listen, api_advertise(s)) + list(s.cert_sans)
        p.ensure_master(s.name, hosts)
        files = p.master_tls(s.name)
        files.check()
    except (PkiError, pki_certs.CertError, OSError) as exc:
        raise StartupError(f"hakube master: {exc}") from exc
    return p, files


def encryption_keys(path: str) -> Transformer:
    """The keys of --encryption-provider-config (none: Secrets stored in clear)."""
    if not path:
        return Transformer()
    try:
        return encryption.load_config(path)
    except encryption.EncryptionConfigError as exc:
        raise StartupError(f"hakube master: {exc}") from exc


def audit_log(s: MasterSettings) -> AuditLog | None:
    if not s.audit.path:
        return None
    try:
        return AuditLog(s.audit)
    except AuditError as exc:
        raise StartupError(f"hakube master: {exc}") from exc
