"""``hakube certs init|check-expiration|renew``: the cluster PKI directory (kubeadm's certs).

``init`` makes what a new cluster needs (hakube.pki.layout) and keeps every file that exists, so
it is safe to run again, e.g. to add a master. ``renew`` re-issues certificates with the same
identity, names and key; masters and clients pick renewed files up for new connections without
a restart (hakube.pki.tls re-reads them). Without ``--force`` only certificates within
RENEW_BEFORE of their expiry are renewed, and the others are named as skipped.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass

from hakube.cli.printers import human_duration
from hakube.pki import certs, files
from hakube.pki.layout import RENEW_BEFORE, Pki, PkiError
from hakube.settings import add_actions, setting


def parse_masters(text: str) -> dict[str, list[str]]:
    """``NAME=HOST[,HOST...]`` for each master, as one text (repeated ``--master`` flags are
    joined with commas): a word with ``=`` starts a master, the words after it are more of its
    names and addresses."""
    out: dict[str, list[str]] = {}
    name = ""
    for word in (w.strip() for w in text.split(",")):
        if not word:
            continue
        if "=" in word:
            name, _, host = word.partition("=")
            if not name or not host or name in out:
                raise ValueError(
                    f'"{word}": ' + ("a master named twice" if name in out else "not NAME=HOST")
                )
            out[name] = [host]
        elif not name:
            raise ValueError(f'"{word}" is not NAME=HOST[,HOST...]')
        else:
            out[name].append(word)
    return out


@dataclass(frozen=True)
class PkiDir:
    """The directory every certs action works on."""

    pki_dir: str = setting("", required=True, metavar="DIR")
    """The cluster PKI directory."""


@dataclass(frozen=True)
class CertsInit(PkiDir):
    """``hakube certs init``."""

    master: dict[str, list[str]] = setting(
        {}, parse=parse_masters, repeatable=True, metavar="NAME=HOST[,HOST...]"
    )
    """A master and the names/addresses its certificate is for (repeat the flag per master)."""
    vip: str = ""
    """Virtual IP or name every master's certificate also names."""


@dataclass(frozen=True)
class CertsCheck(PkiDir):
    """``hakube certs check-expiration``."""

    output: str = setting("table", aliases=("-o",), choices=("table", "json"))
    """table: for people; json: one object per certificate."""


@dataclass(frozen=True)
class CertsRenew(PkiDir):
    """``hakube certs renew``."""

    names: list[str] = setting(["all"], operand=True, metavar="all|NAME")
    """masters/<name>, users/<user>, or just the name (default all)."""
    force: bool = setting(False, help=f"Renew even if more than {RENEW_BEFORE.days} days are left.")


ACTIONS: dict[str, tuple[type, str]] = {
    "init": (
        CertsInit,
        "create the CA, the masters' and the users' certificates (existing files are kept)",
    ),
    "check-expiration": (CertsCheck, "when each certificate expires"),
    "renew": (CertsRenew, "re-issue certificates (same identity, names, key)"),
}


def add_parser(sub: argparse._SubParsersAction) -> dict[str, Callable[[PkiDir], int]]:
    add_actions(sub, "certs", "create, inspect and renew the cluster's certificates", ACTIONS)
    return {"certs": run}


def run(s: PkiDir) -> int:
    pki = Pki(s.pki_dir)
    try:
        if isinstance(s, CertsInit):
            return _init(pki, s)
        if isinstance(s, CertsCheck):
            return _check(pki, s.output)
        assert isinstance(s, CertsRenew)
        return _renew(pki, s.names, s.force)
    except (PkiError, certs.CertError, OSError) as exc:
        print(f"hakube certs: {exc}", file=sys.stderr)
        return 1


def _init(pki: Pki, s: CertsInit) -> int:
    masters = {name: [*hosts, *([s.vip] if s.vip else [])] for name, hosts in s.master.items()}
    written = pki.init(masters)
    for path in written:
        print(f"wrote {path}")
    if not written:
        print(f"{pki.root}: every certificate exists already; nothing written")
    return 0


def _rows(pki: Pki) -> list[dict[str, object]]:
    if not pki.has_ca():
        raise PkiError(f"no cluster CA in {pki.root} (run `hakube certs init`)")
    now = datetime.datetime.now(datetime.UTC)
    out: list[dict[str, object]] = []
    for name, cert_path, _ in [("ca", pki.ca_cert, ""), *pki.entries()]:
        cert = certs.load_cert(files.read(cert_path))
        left = (certs.not_after(cert) - now).total_seconds()
        out.append(
            {
                "name": name,
                "path": cert_path,
                "expires": certs.not_after(cert).strftime("%b %d, %Y %H:%M UTC"),
                "residualSeconds": int(left),
                "authority": "" if name == "ca" else "ca",
                "renewDue": left <= RENEW_BEFORE.total_seconds(),
            }
        )
    return out


def _check(pki: Pki, output: str) -> int:
    rows = _rows(pki)
    if output == "json":
        print(json.dumps(rows, indent=2))
        return 0

    def table(header: tuple[str, ...], body: list[tuple[str, ...]]) -> None:
        widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
        for r in [header, *body]:
            print("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())

    def residual(r: dict[str, object]) -> str:
        left = float(r["residualSeconds"])  # type: ignore[arg-type]
        return human_duration(left) if left > 0 else "<expired>"

    table(
        ("CERTIFICATE", "EXPIRES", "RESIDUAL TIME", "CERTIFICATE AUTHORITY"),
        [
            (str(r["name"]), str(r["expires"]), residual(r), str(r["authority"]))
            for r in rows
            if r["name"] != "ca"
        ],
    )
    print()
    table(
        ("CERTIFICATE AUTHORITY", "EXPIRES", "RESIDUAL TIME"),
        [(str(r["name"]), str(r["expires"]), residual(r)) for r in rows if r["name"] == "ca"],
    )
    return 0


def _renew(pki: Pki, wanted: list[str], force: bool) -> int:
    entries = pki.entries()
    if "all" in wanted:
        chosen = entries
    else:
        chosen = []
        for w in wanted:
            match = [e for e in entries if e[0] == w or e[0].split("/", 1)[1] == w]
            if len(match) != 1:
                known = ", ".join(e[0] for e in entries) or "none"
                raise PkiError(
                    f'certificate "{w}" is {"ambiguous" if match else "unknown"} in '
                    f"{pki.root} (known: {known})"
                )
            chosen.append(match[0])
    ca = pki.load_ca()
    now = datetime.datetime.now(datetime.UTC)
    for name, cert_path, key_path in chosen:
        left = certs.not_after(certs.load_cert(files.read(cert_path))) - now
        if not force and left > RENEW_BEFORE:
            print(
                f"{name}: not renewed, {human_duration(left.total_seconds())} left (renewal is "
                f"due {RENEW_BEFORE.days} days before expiry; --force renews anyway)"
            )
            continue
        cert = pki.renew(ca, cert_path, key_path)
        print(f"{name}: renewed, expires {certs.not_after(cert):%b %d, %Y %H:%M UTC}")
    return 0
