"""A real Prometheus scrapes a ``hakube up`` cluster with the ``prometheus.yml`` it wrote, and
evaluates the alert rules of deploy/prometheus: every target is up, the main metrics answer
after a Deployment rolls out, label cardinality stays bounded however many objects and made-up
kinds clients throw at the API, every metric the rules and dashboards use exists, and after
kill -9 of the Raft leader the survivors count a leader change and "no leader" does not fire
once a new leader exists.

One cluster and one Prometheus for the module (``hakube up`` costs ~10 s); the leader kill
comes last."""

from __future__ import annotations

import datetime
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
import yaml

from hakube.api.kinds import KINDS
from hakube.api.v1 import api_pb2, api_pb2_grpc, core_pb2
from hakube.client import Client
from hakube.client.config import load_client_config
from hakube.pki.tls import channel_credentials
from hakube.testing.prometheus import Prometheus
from hakube.testing.wait import wait_for
from tests.cli.conftest import EXAMPLES, ctl_command, ctl_env
from tests.cli.test_up import Up
from tests.observability.conftest import RULES, need
from tests.observability.names import referenced_metric_names

pytestmark = pytest.mark.timeout(420)

MASTERS, NODES = 3, 2
TARGETS = MASTERS + NODES + 2  # + scheduler + controller-manager


@dataclass
class Stack:
    home: str
    data_dir: str
    client_config: str
    up: Up
    prom: Prometheus

    def client(self) -> Client:
        return Client.from_config(self.client_config, timeout=10)

    def value(self, expr: str) -> float | None:
        return self.prom.scalar(expr)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    need("prometheus")
    home = str(tmp_path_factory.mktemp("home"))
    data_dir = os.path.join(home, "cluster")
    client_config = os.path.join(home, "client-config")
    up = Up(
        home,
        "--data-dir",
        data_dir,
        "--client-config",
        client_config,
        "--nodes",
        str(NODES),
        "--no-restart",
    )
    prom: Prometheus | None = None
    try:
        up.expect("Ctrl-C stops the cluster", timeout=150)
        with open(os.path.join(data_dir, "prometheus.yml")) as f:
            written = yaml.safe_load(f)
        prom = Prometheus(os.path.join(home, "prometheus"), written, rule_files=[RULES]).start()
        yield Stack(home, data_dir, client_config, up, prom)
    finally:
        if prom is not None:
            prom.stop()
        up.close(data_dir)


def test_every_process_hakube_up_started_is_a_target_and_up(stack: Stack) -> None:
    with open(os.path.join(stack.data_dir, "cluster.yaml")) as f:
        state = yaml.safe_load(f)
    listed = {m["metrics"] for m in state["masters"]} | set(state["metrics"].values())
    assert len(listed) == TARGETS

    def all_up() -> bool:
        targets = stack.prom.targets()
        return len(targets) == TARGETS and all(t["health"] == "up" for t in targets)

    wait_for(all_up, 120, f"{TARGETS} targets up", interval=0.5)
    scraped = {t["labels"]["instance"] for t in stack.prom.targets()}
    assert scraped == listed
    jobs = {t["labels"]["job"] for t in stack.prom.targets()}
    assert jobs == {
        "hakube-master",
        "hakube-scheduler",
        "hakube-controller-manager",
        "hakube-agent",
    }
    assert stack.value('sum(up{job=~"hakube-.*"})') == TARGETS


def test_exactly_one_raft_leader_and_one_active_scheduler_and_controller_manager(
    stack: Stack,
) -> None:
    wait_for(lambda: stack.value("sum(hakube_raft_is_leader)") == 1, 30, "one leader", interval=0.5)
    assert stack.value("min(hakube_raft_has_leader)") == 1
    wait_for(
        lambda: (
            stack.value("sum by (lease) (hakube_leader_election_is_leader)") is not None
            and all(
                float(r["value"][1]) == 1
                for r in stack.prom.query("sum by (lease) (hakube_leader_election_is_leader)")
            )
            and len(stack.prom.query("sum by (lease) (hakube_leader_election_is_leader)")) == 2
        ),
        30,
        "one holder of each component lease",
        interval=0.5,
    )


def test_a_rolled_out_deployment_shows_in_scheduler_agent_and_controller_metrics(
    stack: Stack,
) -> None:
    env = ctl_env(stack.home, HAKUBE_CONFIG=stack.client_config)
    subprocess.run(
        ctl_command("apply", "-f", os.path.join(EXAMPLES, "hello.yaml")),
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    with stack.client() as c:
        wait_for(
            lambda: c.deployments.get("web", namespace="demo").status.available_replicas == 2,
            120,
            "deployment demo/web available",
            interval=0.2,
        )
    checks = {
        "pods scheduled": "sum(hakube_scheduler_pod_scheduling_duration_seconds_count)",
        "scheduling attempts": 'sum(hakube_scheduler_schedule_attempts_total{result="scheduled"})',
        "pods started by agents": "sum(hakube_agent_pod_start_duration_seconds_count)",
        "running pods": "sum(hakube_agent_running_pods)",
    }
    for what, expr in checks.items():
        wait_for(
            lambda expr=expr: (stack.value(expr) or 0) >= 2, 60, f"{what}: {expr}", interval=0.5
        )
    for controller in ("deployment", "replicaset"):
        expr = f'sum(hakube_controller_syncs_total{{controller="{controller}",result="ok"}})'
        wait_for(lambda expr=expr: (stack.value(expr) or 0) > 0, 30, expr, interval=0.5)
    # Quantiles answer (the dashboards' panels), not just counts.
    p99 = stack.value(
        "histogram_quantile(0.99, sum by (le) "
        "(hakube_scheduler_pod_scheduling_duration_seconds_bucket))"
    )
    assert p99 is not None and 0 < p99 <= 60
    start = stack.value(
        "histogram_quantile(0.99, sum by (le) (hakube_agent_pod_start_duration_seconds_bucket))"
    )
    assert start is not None and 0 < start <= 60
    assert (
        stack.value('sum(hakube_agent_cri_request_duration_seconds_count{method="StartContainer"})')
        or 0
    ) >= 2


def _series_of(stack: Stack, name: str) -> int:
    """hakube_* series of one master's /metrics, as Prometheus last scraped them."""
    value = stack.value(f'count({{job="hakube-master", name="{name}", __name__=~"hakube_.+"}})')
    assert value is not None
    return int(value)


def _wait_scraped_after(stack: Stack, moment: float) -> None:
    def scraped() -> bool:
        masters = [t for t in stack.prom.targets() if t["labels"]["job"] == "hakube-master"]
        return all(_ts(t["lastScrape"]) > moment + 0.5 for t in masters)

    wait_for(scraped, 30, "a scrape of every master after the load", interval=0.3)


def _ts(rfc3339: str) -> float:
    """Seconds since the epoch of Prometheus' RFC 3339 times (nanoseconds cut to micro)."""
    head, _, frac = rfc3339.rstrip("Z").partition(".")
    stamp = datetime.datetime.fromisoformat(head).replace(tzinfo=datetime.UTC)
    return stamp.timestamp() + (float("0." + frac[:6].split("+")[0]) if frac else 0.0)


def _load(stack: Stack, round_: int, n: int) -> None:
    """Through master m1 only (so both rounds make the same kinds of request there): ``n``
    namespaces with a ConfigMap each, ``n`` Nodes, and requests for ``n`` kinds that do not
    exist -- each a new label value if labels were taken from requests."""
    cfg = load_client_config(stack.client_config)
    m1 = cfg.servers[0]
    with Client([m1], credentials=cfg.credentials(), timeout=10) as c:
        for i in range(n):
            ns = f"card-{round_}-{i}"
            c.namespaces.create(core_pb2.Namespace(metadata={"name": ns}))
            c.configmaps.create(
                core_pb2.ConfigMap(metadata={"name": f"cm-{i}", "namespace": ns}, data={"k": "v"})
            )
            c.nodes.create(core_pb2.Node(metadata={"name": f"fake-{round_}-{i}"}))
    with grpc.secure_channel(m1, channel_credentials(cfg.credentials())) as ch:
        stub = api_pb2_grpc.ObjectServiceStub(ch)
        for i in range(n):
            with pytest.raises(grpc.RpcError):
                stub.Get(
                    api_pb2.GetRequest(kind=f"Madeup{round_}x{i}", name="x", namespace="default"),
                    timeout=5,
                )


def test_label_cardinality_stays_bounded_as_objects_nodes_and_unknown_kinds_grow(
    stack: Stack,
) -> None:
    _load(stack, 1, 30)
    _wait_scraped_after(stack, time.time())
    first = _series_of(stack, "m1")
    _load(stack, 2, 150)  # five times as many new names again
    _wait_scraped_after(stack, time.time())
    second = _series_of(stack, "m1")
    # A label taken from any of the four made-up names would add 150 series or more; the
    # other clients of m1 (agents, components) may add a few label combinations meanwhile.
    assert second - first < 100, (first, second)
    kinds = stack.value('count(count by (kind) (hakube_api_requests_total{name="m1"}))')
    assert kinds is not None and kinds <= len(KINDS) + 2  # + "unknown" and ""
    # No label value anywhere (any component) carries a name the load made up.
    for pattern in ("card-.*", "cm-.*", "fake-.*", "Madeup.*"):
        for label in ("kind", "name", "namespace", "node", "controller", "reason", "method"):
            found = stack.prom.query(f'count({{__name__=~"hakube_.+", {label}=~"{pattern}"}})')
            assert found == [], (label, pattern, found)
    assert stack.value('sum(hakube_api_requests_total{kind="unknown"})')


def test_every_metric_the_rules_and_dashboards_use_exists_on_the_live_cluster(
    stack: Stack,
) -> None:
    names = set(stack.prom.api("label/__name__/values"))
    used = referenced_metric_names()
    assert used, "no metric names found in the rules and dashboards"
    missing = sorted(n for n in used if n not in names)
    assert not missing, f"used by rules or dashboards but not exported: {missing}"


def test_after_kill_9_of_the_leader_leader_changes_count_and_no_leader_does_not_fire(
    stack: Stack,
) -> None:
    rows = stack.prom.query("hakube_raft_is_leader == 1")
    assert len(rows) == 1
    old = rows[0]["metric"]["name"]
    survivors = [f"m{i}" for i in range(1, MASTERS + 1) if f"m{i}" != old]
    sel = "|".join(survivors)
    before = stack.value(f'sum(hakube_raft_leader_changes_seen_total{{name=~"{sel}"}})')
    assert before is not None
    with open(os.path.join(stack.data_dir, f"{old}.pid")) as f:
        pid = int(f.read().strip())
    os.kill(pid, signal.SIGKILL)  # the master process hakube up started for this test
    wait_for(
        lambda: (
            stack.value(f'sum(hakube_raft_is_leader{{name=~"{sel}"}} == 1)') == 1
            and (stack.value(f'min(hakube_raft_has_leader{{name=~"{sel}"}})') or 0) == 1
        ),
        60,
        "a new leader among the survivors, seen by Prometheus",
        interval=0.3,
    )
    elected = time.time()
    wait_for(
        lambda: (
            (stack.value(f'sum(hakube_raft_leader_changes_seen_total{{name=~"{sel}"}})') or 0)
            > before
        ),
        30,
        "the survivors' leader-changes counter to increase",
        interval=0.3,
    )

    # The rule has been evaluated since the new leader was seen, and does not fire (nor is it
    # pending): every live master knows a leader.
    def evaluated_since() -> bool:
        for g in stack.prom.rule_groups():
            for r in g["rules"]:
                if r.get("name") == "HakubeNoLeader":
                    assert r["health"] == "ok", r
                    return _ts(r["lastEvaluation"]) > elected
        raise AssertionError("HakubeNoLeader is not loaded")

    wait_for(evaluated_since, 60, "an evaluation of HakubeNoLeader", interval=0.3)
    firing = [a for a in stack.prom.alerts() if a["labels"]["alertname"] == "HakubeNoLeader"]
    assert firing == []
    assert stack.prom.query('ALERTS{alertname="HakubeNoLeader"}') == []
    # The killed master is down in Prometheus' eyes (an alert pending, not yet firing).
    assert stack.value(f'up{{name="{old}"}}') == 0
