"""Where each process of a local cluster serves /metrics, and the Prometheus config for them.

``hakube up`` gives every process it starts -- masters, the scheduler, the controller-manager,
each node agent -- a metrics address on 127.0.0.1, chosen once and recorded in the data dir's
``cluster.yaml`` (masters under ``masters``, the others under ``metrics``), so a restarted
cluster keeps its addresses and a Prometheus config stays valid. ``prometheus.yml`` in the data
dir lists them all as static targets, one job per component (``hakube-master``,
``hakube-scheduler``, ``hakube-controller-manager``, ``hakube-agent``), each target labelled
with its process name. Loopback plain HTTP needs no TLS material; a config for HTTPS endpoints
(``--metrics-tls-listen``) carries the CA and the scraper's certificate (``tls_config``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import yaml

from hakube.local.cluster import free_ports

JOBS = {
    "master": "hakube-master",
    "scheduler": "hakube-scheduler",
    "controller-manager": "hakube-controller-manager",
    "agent": "hakube-agent",
}
"""Prometheus job name of each kind of process (the alert rules and dashboards use them)."""


@dataclass(frozen=True)
class Target:
    job: str
    """A value of ``JOBS``."""
    name: str
    """The process: m1, scheduler, node-1, ..."""
    address: str
    """HOST:PORT of its /metrics."""


@dataclass(frozen=True)
class ScrapeTls:
    """What Prometheus needs for HTTPS endpoints: the cluster CA and a client certificate in
    group system:monitoring (``users/prometheus`` in the cluster's PKI)."""

    ca_file: str
    cert_file: str
    key_file: str


def metrics_addresses(state_path: str, names: list[str]) -> dict[str, str]:
    """The metrics address of each of ``names`` (processes other than the masters), as
    recorded in ``cluster.yaml``; addresses for names not there yet are chosen now (free
    loopback ports) and recorded."""
    with open(state_path) as f:
        text = f.read()
    state = yaml.safe_load(text) or {}
    recorded: dict[str, str] = {str(k): str(v) for k, v in (state.get("metrics") or {}).items()}
    missing = [n for n in names if n not in recorded]
    if missing:
        for name, port in zip(missing, free_ports(len(missing)), strict=True):
            recorded[name] = f"127.0.0.1:{port}"
        state["metrics"] = recorded
        header = "".join(line + "\n" for line in text.splitlines() if line.startswith("#"))
        tmp = state_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(header)
            yaml.safe_dump(state, f, sort_keys=False)
        os.replace(tmp, state_path)
    return {n: recorded[n] for n in names}


def prometheus_config(
    targets: list[Target],
    *,
    tls: ScrapeTls | None = None,
    scrape_interval: str = "15s",
    rule_files: list[str] | None = None,
) -> dict[str, Any]:
    """A Prometheus configuration scraping ``targets``: one job per component, in the order
    of ``JOBS``; HTTPS with ``tls`` when given."""
    config: dict[str, Any] = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "scrape_configs": [],
    }
    if rule_files:
        config["rule_files"] = list(rule_files)
    for job in JOBS.values():
        mine = [t for t in targets if t.job == job]
        if not mine:
            continue
        sc: dict[str, Any] = {
            "job_name": job,
            "static_configs": [{"targets": [t.address], "labels": {"name": t.name}} for t in mine],
        }
        if tls is not None:
            sc["scheme"] = "https"
            sc["tls_config"] = {
                "ca_file": tls.ca_file,
                "cert_file": tls.cert_file,
                "key_file": tls.key_file,
            }
        config["scrape_configs"].append(sc)
    return config


def write_prometheus_config(path: str, config: dict[str, Any], *, comment: str) -> None:
    """Write ``config`` atomically, with ``comment`` as a header."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        for line in comment.splitlines():
            f.write(f"# {line}\n")
        yaml.safe_dump(config, f, sort_keys=False)
    os.replace(tmp, path)
