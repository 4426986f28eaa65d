"""``hakube certs``: a PKI directory made, inspected and renewed; a running master serves a
renewed certificate to new connections without a restart."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509

from hakube.cli.main import main
from hakube.pki import certs, files
from hakube.pki.layout import Pki
from hakube.testing.cluster import LocalCluster
from hakube.testing.wait import wait_for


def hakube(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


def test_init_writes_a_private_pki_with_the_vip_in_every_master_certificate(
    tmp_path: Path,
) -> None:
    d = str(tmp_path / "pki")
    code, out, _ = hakube(
        "certs",
        "init",
        "--pki-dir",
        d,
        "--master",
        "m1=10.0.0.1,m1.lan",
        "--master",
        "m2=10.0.0.2",
        "--vip",
        "10.0.0.100",
    )
    assert code == 0
    pki = Pki(d)
    assert f"wrote {pki.master_cert('m1')}" in out and f"wrote {pki.ca_cert}" in out
    for name in ("m1", "m2"):
        hosts = certs.hosts_of(certs.load_cert(files.read(pki.master_cert(name))))
        assert "10.0.0.100" in hosts
    assert "m1.lan" in certs.hosts_of(certs.load_cert(files.read(pki.master_cert("m1"))))
    for directory in (d, os.path.join(d, "masters"), os.path.join(d, "users")):
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
    for key in (
        pki.ca_key,
        pki.master_key("m1"),
        pki.user_key("admin"),
        pki.user_key("scheduler"),
        pki.user_key("controller-manager"),
        pki.user_key("proxy"),
    ):
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    before = files.read(pki.ca_key)
    code, out, _ = hakube("certs", "init", "--pki-dir", d, "--master", "m1=10.0.0.1")
    assert code == 0 and "nothing written" in out
    assert files.read(pki.ca_key) == before


def test_check_expiration_lists_every_certificate_like_kubeadm(tmp_path: Path) -> None:
    d = str(tmp_path / "pki")
    hakube("certs", "init", "--pki-dir", d, "--master", "m1=127.0.0.1")
    code, out, _ = hakube("certs", "check-expiration", "--pki-dir", d)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "CERTIFICATE",
        "EXPIRES",
        "RESIDUAL",
        "TIME",
        "CERTIFICATE",
        "AUTHORITY",
    ]
    assert [ln.split()[0] for ln in lines[1:8]] == [
        "masters/m1",
        "users/admin",
        "users/controller-manager",
        "users/dns",
        "users/prometheus",
        "users/proxy",
        "users/scheduler",
    ]
    assert any(ln.startswith("ca ") and "9y" in ln for ln in lines)
    code, out, _ = hakube("certs", "check-expiration", "--pki-dir", d, "-o", "json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["masters/m1"]["authority"] == "ca" and not rows["masters/m1"]["renewDue"]
    assert 360 * 86400 < rows["users/admin"]["residualSeconds"] <= 365 * 86400


def test_renew_skips_what_is_not_due_unless_forced_and_keeps_identity_names_and_key(
    tmp_path: Path,
) -> None:
    d = str(tmp_path / "pki")
    hakube("certs", "init", "--pki-dir", d, "--master", "m1=10.0.0.1,m1.lan")
    pki = Pki(d)
    old = certs.load_cert(files.read(pki.master_cert("m1")))
    key = files.read(pki.master_key("m1"))
    code, out, _ = hakube("certs", "renew", "--pki-dir", d)
    assert code == 0 and "masters/m1: not renewed" in out and "--force" in out
    assert certs.load_cert(files.read(pki.master_cert("m1"))).serial_number == old.serial_number
    code, out, _ = hakube("certs", "renew", "m1", "--pki-dir", d, "--force")
    assert code == 0 and "masters/m1: renewed" in out
    new = certs.load_cert(files.read(pki.master_cert("m1")))
    assert new.serial_number != old.serial_number
    assert certs.identity_of(new) == certs.identity_of(old)
    assert sorted(certs.hosts_of(new)) == sorted(certs.hosts_of(old))
    assert files.read(pki.master_key("m1")) == key
    assert (
        new.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        == old.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    )
    code, _, err = hakube("certs", "renew", "nobody", "--pki-dir", d)
    assert code == 1 and err.count("\n") == 1 and '"nobody" is unknown' in err


def _served_certificate(endpoint: str, pki: Pki) -> x509.Certificate:
    host, _, port = endpoint.rpartition(":")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(pki.user_cert("admin"), pki.user_key("admin"))
    with (
        socket.create_connection((host, int(port)), timeout=10) as sock,
        ctx.wrap_socket(sock) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


@pytest.mark.timeout(120)
def test_a_running_master_serves_its_renewed_certificate_to_new_connections(
    tmp_path: Path,
) -> None:
    with LocalCluster(str(tmp_path / "c"), 1) as cluster:
        m = cluster.masters[0]
        before = _served_certificate(m.api, cluster.pki)
        code, _, _ = hakube(
            "certs", "renew", "masters/m1", "--pki-dir", cluster.pki.root, "--force"
        )
        assert code == 0
        on_disk = certs.load_cert(files.read(cluster.pki.master_cert("m1")))
        assert on_disk.serial_number != before.serial_number
        wait_for(
            lambda: _served_certificate(m.api, cluster.pki).serial_number == on_disk.serial_number,
            10,
            "the renewed certificate served",
        )
        served = _served_certificate(m.api, cluster.pki)
        assert served.not_valid_after_utc == on_disk.not_valid_after_utc
        assert m.alive
        with cluster.client(timeout=10) as c:
            assert c.namespaces.get("default").metadata.name == "default"
