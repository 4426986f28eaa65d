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

from hakube.cli.printers import human_duration
from hakube.pki import certs, files
from hakube.pki.layout import RENEW_BEFORE, Pki, PkiError


def _master(text: str) -> tuple[str, list[str]]:
    name, sep, hosts = text.partition("=")
    if not sep or not name or not hosts.strip(","):
        raise argparse.ArgumentTypeError(f'--master "{text}" is not NAME=HOST[,HOST...]')
    return name, [h.strip() for h in hosts.split(",") if h.strip()]


def add_parser(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    top = sub.add_parser("certs", help="create, inspect and renew the cluster's certificates")
    actions = top.add_subparsers(dest="certs_command", required=True, metavar="ACTION")
    p = actions.add_parser(
        "init",
        help="create the CA, the masters' and the users' certificates (existing files are kept)",
    )
    p.add_argument("--pki-dir", required=True, help="the cluster PKI directory")
    p.add_argument(
        "--master",
        action="append",
        type=_master,
        default=[],
        metavar="NAME=HOST[,HOST...]",
        help="a master and the names/addresses its certificate is for (repeat)",
    )
    p.add_argument(
        "--vip", default="", help="virtual IP or name every master's certificate also names"
    )
    p = actions.add_parser("check-expiration", help="when each certificate expires")
    p.add_argument("--pki-dir", required=True)
    p.add_argument("-o", "--output", choices=["table", "json"], default="table")
    p = actions.add_parser("renew", help="re-issue certificates (same identity, names, key)")
    p.add_argument(
        "names",
        nargs="*",
        default=["all"],
        metavar="all|NAME",
        help="masters/<name>, users/<user>, or just the name (default all)",
    )
    p.add_argument("--pki-dir", required=True)
    p.add_argument(
        "--force",
        action="store_true",
        help=f"renew even if more than {RENEW_BEFORE.days} days are left",
    )
    return {"certs": run}


def run(args: argparse.Namespace) -> int:
    pki = Pki(args.pki_dir)
    try:
        if args.certs_command == "init":
            return _init(pki, args)
        if args.certs_command == "check-expiration":
            return _check(pki, args.output)
        return _renew(pki, args.names, args.force)
    except (PkiError, certs.CertError, OSError) as exc:
        print(f"hakube certs: {exc}", file=sys.stderr)
        return 1


def _init(pki: Pki, args: argparse.Namespace) -> int:
    masters = {name: [*hosts, *([args.vip] if args.vip else [])] for name, hosts in args.master}
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
