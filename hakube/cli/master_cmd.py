"""``hakube master``: flags and their checks; the master itself lives in hakube.master."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Callable

from prometheus_client import CollectorRegistry

from hakube import gctune
from hakube.apiserver.audit import AuditSettings
from hakube.apiserver.tokens import DEFAULT_ISSUER
from hakube.cli import master_flow
from hakube.cli.in_process import start_in_process, stop_all
from hakube.leaderelection import Component
from hakube.lifecycle import Running, run_until_signal
from hakube.master import Master, MasterSettings, tune_process
from hakube.pki.layout import Pki
from hakube.store.raft import RaftSettings


def parse_peers(text: str) -> dict[str, str]:
    """``n2=127.0.0.1:7002,n3=127.0.0.1:7003`` -> {"n2": "127.0.0.1:7002", ...}."""
    peers: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, sep, addr = part.partition("=")
        if not sep or not name or not addr:
            raise argparse.ArgumentTypeError(f'peer "{part}" is not NAME=HOST:PORT')
        if name in peers:
            raise argparse.ArgumentTypeError(f'peer "{name}" is listed twice')
        peers[name] = addr
    return peers


def parse_list(value: str | list[object]) -> list[str]:
    """``a,b`` (a flag or variable) or a YAML list (config file) -> ["a", "b"]."""
    items = value if isinstance(value, list) else str(value).split(",")
    return [str(h).strip() for h in items if str(h).strip()]


def add_parser(sub: argparse._SubParsersAction) -> dict[str, Callable[[argparse.Namespace], int]]:
    p = sub.add_parser("master", help="run one master (store + API server)")
    p.add_argument("--name", help="this master's name, unique in the cluster")
    p.add_argument("--data-dir", help="directory for the Raft journal and dumps")
    p.add_argument("--api-listen", default="127.0.0.1:6443", help="HOST:PORT for the gRPC API")
    p.add_argument("--raft-listen", help="HOST:PORT for Raft traffic between masters")
    p.add_argument(
        "--peers",
        type=parse_peers,
        default={},
        help="the other masters: NAME=HOST:PORT,... (their Raft addresses)",
    )
    p.add_argument(
        "--k8s-api-listen",
        default="",
        help="HOST:PORT for the Kubernetes REST API (kubectl); default: the gRPC API's host "
        "with port + 1 (6444); 'off': not served",
    )
    p.add_argument(
        "--metrics-listen",
        default="",
        help="HOST:PORT for /metrics, /healthz and /readyz (empty: off)",
    )
    p.add_argument(
        "--metrics-tls-listen",
        default="",
        help="HOST:PORT for the same endpoints over HTTPS with this master's certificate, "
        "for scrapers with a client certificate from the cluster CA in group "
        "system:monitoring (users/prometheus); empty: off",
    )
    p.add_argument(
        "--quota-bytes",
        type=int,
        default=2 * 1024**3,
        help="store size limit in bytes (default 2 GiB, as etcd); over it only "
        "deletes, shrinking updates and Lease renewals are accepted (0: no limit)",
    )
    p.add_argument("--history-size", type=int, default=20000, help="watch history kept, in events")
    p.add_argument("--election-timeout-min", type=float, default=0.4)
    p.add_argument("--election-timeout-max", type=float, default=1.4)
    p.add_argument(
        "--compaction-min-entries",
        type=int,
        default=50000,
        help="compact the Raft log after this many entries",
    )
    p.add_argument(
        "--sync-journal",
        action="store_true",
        help="msync the Raft journal every tick (power-loss durability)",
    )
    p.add_argument(
        "--fsync",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="sync the Raft journal to disk before acknowledging writes (default; "
        "--no-fsync: writes survive a crash of every master but not a power loss "
        "of a majority, for lower latency)",
    )
    p.add_argument(
        "--snapshot-dir",
        default="",
        help="directory for scheduled snapshots of the store (empty: none)",
    )
    p.add_argument(
        "--snapshot-interval",
        type=float,
        default=3600.0,
        help="seconds between scheduled snapshots (3600)",
    )
    p.add_argument(
        "--snapshot-retain",
        type=int,
        default=24,
        help="scheduled snapshots kept, oldest deleted first (24)",
    )
    p.add_argument(
        "--allow-unauthenticated-metrics",
        action="store_true",
        help="serve /metrics, /healthz, /readyz on a non-loopback --metrics-listen "
        "(plain HTTP, no authentication)",
    )
    p.add_argument(
        "--force-new-cluster",
        action="store_true",
        help="quorum-loss recovery: make this master a cluster of itself alone, "
        "keeping all its data (refused if it already ran on this data dir)",
    )
    p.add_argument(
        "--pki-dir",
        default="",
        help="the cluster's PKI directory: ca.crt, ca.key, masters/NAME.crt/.key "
        "(default: DATA_DIR/pki). Raft between masters is mutual TLS with this CA; a "
        "new single master creates the CA, others need ca.crt/ca.key copied from "
        "the first master (or `hakube certs init`)",
    )
    p.add_argument(
        "--cert-sans",
        type=parse_list,
        default=[],
        help="extra names/IPs for this master's certificate, comma-separated (e.g. "
        "a VIP); the listen hosts are always included",
    )
    p.add_argument(
        "--authorization-mode",
        choices=("RBAC", "AlwaysAllow"),
        default="RBAC",
        help="RBAC (default: RBAC plus the node authorizer) or AlwaysAllow (no "
        "authorization at all; only to measure what it costs)",
    )
    p.add_argument(
        "--service-account-issuer",
        default=DEFAULT_ISSUER,
        metavar="URL",
        help="the iss claim of the ServiceAccount tokens the masters sign "
        f"(default {DEFAULT_ISSUER})",
    )
    p.add_argument(
        "--api-audiences",
        default="",
        metavar="AUD[,AUD...]",
        help="audiences a bearer token must name to authenticate (default: the issuer)",
    )
    p.add_argument(
        "--rbac-reconcile-interval",
        type=float,
        default=5.0,
        help="seconds between the leader's checks that the default roles and "
        "bindings are present and unchanged (5)",
    )
    p.add_argument(
        "--pod-security-default",
        default="baseline",
        choices=("privileged", "baseline", "restricted"),
        help="Pod Security level enforced in namespaces without a "
        "pod-security.kubernetes.io/enforce label (baseline); kube-system is "
        "privileged unless labelled",
    )
    p.add_argument(
        "--encryption-provider-config",
        default="",
        help="EncryptionConfiguration file (0600; the same on every master) whose "
        "keys seal Secrets before they enter the Raft log (empty: stored in clear)",
    )
    p.add_argument(
        "--audit-log-path",
        default="",
        help="append one JSON line per API request here (empty: no audit log)",
    )
    p.add_argument(
        "--audit-log-maxsize",
        type=int,
        default=100,
        help="rotate the audit log at this many MiB (100)",
    )
    p.add_argument(
        "--audit-log-maxbackups", type=int, default=10, help="rotated audit logs kept (10)"
    )
    p.add_argument(
        "--audit-policy-file",
        default="",
        help="audit.k8s.io/v1 Policy (levels None/Metadata; default: Metadata for "
        "everything but lease/event reads and lease renewals)",
    )
    master_flow.add_flags(p)
    p.add_argument(
        "--with-controllers",
        action="store_true",
        help="also run the scheduler and the controllers in this process "
        "(leader-elected: one master's copy is active)",
    )
    return {"master": run}


def run(args: argparse.Namespace) -> int:
    missing = [
        f"--{n.replace('_', '-')}"
        for n in ("name", "data_dir", "raft_listen")
        if not getattr(args, n)
    ]
    if missing:
        print(f"hakube master: missing required setting {', '.join(missing)}", file=sys.stderr)
        return 2
    raft = {
        "election_timeout_min": args.election_timeout_min,
        "election_timeout_max": args.election_timeout_max,
        "sync_journal": args.sync_journal,
        "fsync": args.fsync,
        "compaction_min_entries": args.compaction_min_entries,
    }
    if args.snapshot_interval <= 0 or args.snapshot_retain < 1:
        print(
            "hakube master: --snapshot-interval must be > 0 and --snapshot-retain >= 1",
            file=sys.stderr,
        )
        return 2
    if args.rbac_reconcile_interval <= 0:
        print("hakube master: --rbac-reconcile-interval must be > 0", file=sys.stderr)
        return 2
    try:
        flow = master_flow.settings(args)
    except ValueError as exc:
        print(f"hakube master: {exc}", file=sys.stderr)
        return 2
    pki = Pki(args.pki_dir or os.path.join(args.data_dir, "pki"))
    tls = pki.master_tls(args.name)
    try:
        RaftSettings(
            name=args.name,
            raft_address=args.raft_listen,
            peers=args.peers,
            data_dir=args.data_dir,
            tls=tls,
            **raft,
        ).validate()
    except ValueError as exc:
        print(f"hakube master: {exc}", file=sys.stderr)
        return 2
    settings = MasterSettings(
        name=args.name,
        data_dir=args.data_dir,
        api_listen=args.api_listen,
        raft_listen=args.raft_listen,
        peers=args.peers,
        metrics_listen=args.metrics_listen,
        metrics_tls_listen=args.metrics_tls_listen,
        k8s_api_listen=args.k8s_api_listen,
        history_size=args.history_size,
        raft=raft,
        force_new_cluster=args.force_new_cluster,
        snapshot_dir=args.snapshot_dir,
        snapshot_interval=args.snapshot_interval,
        snapshot_retain=args.snapshot_retain,
        pki_dir=args.pki_dir,
        cert_sans=args.cert_sans,
        metrics_remote_ok=args.allow_unauthenticated_metrics,
        quota_bytes=args.quota_bytes,
        flow=flow,
        authorization_mode=args.authorization_mode,
        service_account_issuer=args.service_account_issuer,
        api_audiences=[a for a in args.api_audiences.split(",") if a],
        rbac_reconcile_interval=args.rbac_reconcile_interval,
        pod_security_default=args.pod_security_default,
        encryption_provider_config=args.encryption_provider_config,
        audit=AuditSettings(
            path=args.audit_log_path,
            max_size_mb=args.audit_log_maxsize,
            max_backups=args.audit_log_maxbackups,
            policy_file=args.audit_policy_file,
        ),
    )
    running: list[Running[Component]] = []

    def components(pki: Pki, registry: CollectorRegistry) -> None:
        # Started once the master has its PKI (it may have just created the CA); their metrics
        # are served with the master's.
        running.extend(start_in_process(args.name, args.api_listen, pki, registry=registry))

    gctune.install()
    tune_process()
    master = Master(settings, on_serving=components if args.with_controllers else None)
    try:
        run_until_signal(
            master, what="hakube master", handlers={signal.SIGHUP: master.reload_encryption}
        )
    finally:  # a StartupError goes on to hakube.cli.main, which prints it
        stop_all(running)
    return 0
