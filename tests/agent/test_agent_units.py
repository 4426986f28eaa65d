"""The agent's pure parts: quantities, env expansion, back-off, the work queue, settings,
status rules, volume files."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hakube.agent import status, tmpfs, volumes
from hakube.agent.backoff import BackOff
from hakube.agent.config import AgentSettings, parse_labels, parse_taints
from hakube.agent.env import ConfigError, Lookup, PodFacts, container_env, expand
from hakube.agent.queue import WorkQueue
from hakube.agent.runtime import PodRecord
from hakube.api import quantity
from hakube.api.v1 import core_pb2
from hakube.cri.v1 import api_pb2 as pb
from hakube.testing import mounts
from tests.agent.conftest import make_pod


def test_quantities_convert_to_millicores_and_bytes() -> None:
    assert quantity.cpu_millis("100m") == 100
    assert quantity.cpu_millis("0.5") == 500
    assert quantity.cpu_millis("2") == 2000
    assert quantity.memory_bytes("64Mi") == 64 * 2**20
    assert quantity.memory_bytes("1G") == 10**9
    assert quantity.memory_bytes("1e3") == 1000
    with pytest.raises(ValueError, match="not a quantity"):
        quantity.parse("lots")


def test_env_expands_earlier_variables_and_keeps_unknown_references() -> None:
    env = {"A": "x"}
    assert expand("$(A)-$(B)-$$(A)", env) == "x-$(B)-$(A)"


def test_env_reads_configmaps_secrets_and_fields_in_kubernetes_order() -> None:
    pod = make_pod(
        "p",
        "n",
        [
            {
                "name": "c",
                "image": "i",
                "envFrom": [{"configMapRef": {"name": "cm"}, "prefix": "CM_"}],
                "env": [
                    {"name": "S", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "k"}}},
                    {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
                    {
                        "name": "OPT",
                        "valueFrom": {
                            "configMapKeyRef": {"name": "none", "key": "k", "optional": True}
                        },
                    },
                    {"name": "MIX", "value": "$(S)@$(IP)"},
                ],
            }
        ],
    )
    objs = {"cm": core_pb2.ConfigMap(data={"a": "1"}), "sec": core_pb2.Secret(data={"k": b"v"})}
    env = container_env(
        pod,
        pod.spec.containers[0],
        lambda kind, ns, n: objs.get(n),
        PodFacts(pod_ip="10.0.0.5", host_ip="192.0.2.1"),
    )
    assert env == {"CM_a": "1", "S": "v", "IP": "10.0.0.5", "MIX": "v@10.0.0.5"}
    objs.pop("sec")
    with pytest.raises(ConfigError, match='secret "sec" not found'):
        container_env(
            pod,
            pod.spec.containers[0],
            lambda kind, ns, n: objs.get(n),
            PodFacts(pod_ip="", host_ip=""),
        )


def test_back_off_starts_at_once_then_doubles_to_its_cap_and_resets() -> None:
    now = [100.0]
    b = BackOff(10, 40, reset=600, clock=lambda: now[0])
    assert b.remaining("k", since=now[0]) == 0  # first failure: restart at once
    assert [b.next("k") for _ in range(4)] == [10, 20, 40, 40]
    assert b.remaining("k", since=now[0]) == 40
    now[0] += 39
    assert b.remaining("k", since=100.0) == pytest.approx(1)
    now[0] += 700  # ran long enough: forgiven
    assert b.remaining("k", since=now[0]) == 0 and b.next("k") == 10


def test_work_queue_never_hands_one_key_to_two_workers_and_keeps_late_adds() -> None:
    q = WorkQueue()
    q.add("a")
    q.add("a")
    assert len(q) == 1
    assert q.get() == "a"
    q.add("a")  # changed while being worked on
    assert len(q) == 0
    q.done("a")
    assert q.get() == "a"
    q.done("a")
    q.add_after("b", 0.05)
    got: list[str | None] = []
    t = threading.Thread(target=lambda: got.append(q.get()))
    t.start()
    t.join(5)
    assert got == ["b"]
    q.close()
    assert q.get() is None


def test_settings_are_validated_with_messages_naming_the_flag() -> None:
    ok = AgentSettings(node_name="n", servers=("a:1",), root_dir="/tmp/x")
    ok.validate()
    with pytest.raises(ValueError, match="--node-name"):
        AgentSettings(node_name="", servers=("a:1",), root_dir="/x").validate()
    with pytest.raises(ValueError, match="--backoff-max"):
        AgentSettings(
            node_name="n", servers=("a:1",), root_dir="/x", backoff_base=10, backoff_max=5
        ).validate()
    assert parse_labels("a=b,c=") == {"a": "b", "c": ""}
    assert [(t.key, t.value, t.effect) for t in parse_taints("k=v:NoExecute,x:NoSchedule")] == [
        ("k", "v", "NoExecute"),
        ("x", "", "NoSchedule"),
    ]
    with pytest.raises(ValueError, match="EFFECT"):
        parse_taints("k=v:Sometimes")


def test_the_agent_api_listens_on_the_node_ip_and_reads_the_root_dirs_pki_by_default() -> None:
    s = AgentSettings(node_name="n", servers=("a:1",), root_dir="/var/lib/a")
    assert s.listen_address("10.0.0.7") == "10.0.0.7:10250"
    assert s.listen_address("fd00::7") == "[fd00::7]:10250"
    assert s.node_pki_dir() == "/var/lib/a/pki"
    s = AgentSettings(
        node_name="n",
        servers=("a:1",),
        root_dir="/x",
        listen="0.0.0.0:9",
        pki_dir="/etc/hakube/node",
    )
    assert (s.listen_address("10.0.0.7"), s.node_pki_dir()) == ("0.0.0.0:9", "/etc/hakube/node")


def _exited(name: str, code: int, attempt: int = 0) -> pb.ContainerStatus:
    return pb.ContainerStatus(
        id=f"{name}{attempt}",
        state=pb.CONTAINER_EXITED,
        exit_code=code,
        metadata=pb.ContainerMetadata(name=name, attempt=attempt),
        started_at=10**18,
        finished_at=2 * 10**18,
    )


@pytest.mark.parametrize(
    ("policy", "codes", "phase"),
    [
        ("Always", [0], "Running"),
        ("Never", [0, 0], "Succeeded"),
        ("Never", [0, 1], "Failed"),
        ("OnFailure", [0, 1], "Running"),
        ("OnFailure", [0, 0], "Succeeded"),
    ],
)
def test_phase_follows_the_restart_policy(policy: str, codes: list[int], phase: str) -> None:
    names = [f"c{i}" for i in range(len(codes))]
    pod = make_pod("p", "n", [{"name": n, "image": "i"} for n in names], restartPolicy=policy)
    rec = PodRecord("u", containers={n: [_exited(n, c)] for n, c in zip(names, codes, strict=True)})
    st = status.compute(pod, rec, status.Observed(now=1.0))
    assert st.phase == phase
    assert all(
        s.state.terminated.reason == ("Completed" if c == 0 else "Error")
        for s, c in zip(st.container_statuses, codes, strict=True)
    )


def test_a_waiting_container_shows_its_last_termination() -> None:
    pod = make_pod("p", "n", [{"name": "c", "image": "i"}])
    rec = PodRecord("u", containers={"c": [_exited("c", 137, attempt=3)]})
    st = status.compute(
        pod, rec, status.Observed(waiting={"c": ("CrashLoopBackOff", "back-off")}, now=1.0)
    )
    cs = st.container_statuses[0]
    assert cs.state.waiting.reason == "CrashLoopBackOff" and cs.restart_count == 3
    assert cs.last_state.terminated.exit_code == 137
    assert {c.type: c.status for c in st.conditions}["Ready"] == "False"


SECRETS_ON_DISK = os.geteuid() != 0
"""Root (as on a node) mounts a tmpfs for a secret volume; anyone else writes it to disk."""


@pytest.fixture
def vol_root(tmp_path: Path) -> Iterator[Path]:
    """An agent root directory for volumes; whatever a failed test left mounted below it is
    unmounted at teardown."""
    yield tmp_path
    mounts.unmount_under(tmp_path)


def prepare_pod(
    root: Path,
    uid: str,
    pod_volumes: list[dict[str, Any]],
    lookup: Lookup,
    *,
    on_disk: bool = SECRETS_ON_DISK,
) -> dict[str, volumes.HostVolume]:
    """``volumes.prepare`` for a one-container pod ``n/p`` with ``uid`` and ``pod_volumes``."""
    pod = make_pod("p", "n", [{"name": "c", "image": "i"}], volumes=pod_volumes)
    pod.metadata.uid = uid
    return volumes.prepare(
        pod, str(root), lookup, PodFacts(pod_ip="", host_ip=""), secrets_on_disk=on_disk
    )


def test_config_and_secret_volumes_are_written_as_files(vol_root: Path) -> None:
    specs: list[dict[str, Any]] = [
        {"name": "cfg", "configMap": {"name": "cm", "items": [{"key": "a", "path": "d/a.txt"}]}},
        {"name": "sec", "secret": {"secretName": "s", "defaultMode": 0o400}},
        {"name": "tmp", "emptyDir": {}},
    ]
    objs = {
        "cm": core_pb2.ConfigMap(data={"a": "A", "b": "B"}),
        "s": core_pb2.Secret(data={"k": b"V"}),
    }
    vols = prepare_pod(vol_root, "uid1", specs, lambda kind, ns, n: objs.get(n))
    cfg, sec = Path(vols["cfg"].path), Path(vols["sec"].path)
    assert tmpfs.is_tmpfs(sec) is not SECRETS_ON_DISK and not tmpfs.is_tmpfs(cfg)
    assert (cfg / "d" / "a.txt").read_text() == "A" and not (cfg / "b").exists()
    assert (cfg / "d" / "a.txt").stat().st_mode & 0o777 == 0o644
    assert (sec / "k").read_bytes() == b"V" and (sec / "k").stat().st_mode & 0o777 == 0o400
    assert vols["cfg"].read_only and not vols["tmp"].read_only
    objs["s"] = core_pb2.Secret(data={"other": b"W"})
    prepare_pod(vol_root, "uid1", specs, lambda kind, ns, n: objs.get(n))
    assert sorted(p.name for p in sec.iterdir()) == ["other"]
    volumes.remove(str(vol_root), "uid1")
    assert not (vol_root / "pods" / "uid1").exists() and not tmpfs.mounts_under(vol_root)


def test_a_projected_volume_merges_config_map_and_secret_sources(vol_root: Path) -> None:
    projected = {
        "defaultMode": 0o440,
        "sources": [
            {"configMap": {"name": "cm", "items": [{"key": "a", "path": "a.txt"}]}},
            {"secret": {"name": "s"}},
            {"configMap": {"name": "absent", "optional": True}},
        ],
    }
    objs = {"cm": core_pb2.ConfigMap(data={"a": "A"}), "s": core_pb2.Secret(data={"k": b"V"})}
    vols = prepare_pod(
        vol_root,
        "uid2",
        [{"name": "all", "projected": projected}],
        lambda kind, ns, n: objs.get(n) if (kind == "Secret") == (n == "s") else None,
        on_disk=True,
    )
    d = Path(vols["all"].path)
    assert sorted(p.name for p in d.iterdir()) == ["a.txt", "k"]
    assert (d / "a.txt").read_text() == "A" and (d / "k").read_bytes() == b"V"
    assert (d / "k").stat().st_mode & 0o777 == 0o440
    volumes.remove(str(vol_root), "uid2")


def test_secret_files_default_to_0400_and_an_agent_restart_sweeps_gone_pods(
    vol_root: Path,
) -> None:
    for uid in ("live", "gone"):
        vols = prepare_pod(
            vol_root,
            uid,
            [{"name": "sec", "secret": {"secretName": "s"}}],
            lambda kind, ns, n: core_pb2.Secret(data={"k": b"V"}),
        )
        assert (Path(vols["sec"].path) / "k").stat().st_mode & 0o777 == 0o400
    assert volumes.sweep(str(vol_root), {"live"}) == ["gone"]
    assert sorted(p.name for p in (vol_root / "pods").iterdir()) == ["live"]
    assert [m.parts[-3:] for m in tmpfs.mounts_under(vol_root)] == (
        [] if SECRETS_ON_DISK else [("live", "volumes", "sec")]
    )
    volumes.remove(str(vol_root), "live")
    assert not tmpfs.mounts_under(vol_root)


def test_agent_flags_come_from_the_environment_and_bad_ones_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from hakube.cli.main import main, parse

    monkeypatch.setenv("HAKUBE_NODE_NAME", "from-env")
    monkeypatch.setenv("HAKUBE_SERVERS", "10.0.0.1:6443,10.0.0.2:6443")
    monkeypatch.setenv("HAKUBE_BACKOFF_BASE", "2")
    config = tmp_path / "agent.yaml"
    config.write_text("register-with-taints: gpu=yes:NoSchedule\nlabels: a=b\n")
    s = parse(["--config", str(config), "agent", "--backoff-max", "8"])[2].agent
    assert (s.node_name, s.servers) == ("from-env", ("10.0.0.1:6443", "10.0.0.2:6443"))
    assert (s.backoff_base, s.backoff_max, s.labels) == (2.0, 8.0, {"a": "b"})
    assert [(t.key, t.value, t.effect) for t in s.taints] == [("gpu", "yes", "NoSchedule")]
    assert (s.listen, s.pki_dir) == ("", "")
    s = parse(["agent", "--pki-dir", "/p"])[2].agent
    assert s.pki_dir == "/p"
    monkeypatch.delenv("HAKUBE_BACKOFF_BASE")
    assert main(["agent", "--backoff-max", "1", "--root-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["hakube agent: --backoff-max (1.0) must be >= --backoff-base (10.0)"]
    config.write_text("labels: {a: b, c: d}\nregister-with-taints: [x:NoSchedule]\n")
    s = parse(["--config", str(config), "agent"])[2].agent
    assert s.labels == {"a": "b", "c": "d"} and [t.key for t in s.taints] == ["x"]


def test_usage_is_published_under_the_name_the_autoscaler_reads_and_only_on_real_change() -> None:
    from hakube.agent.stats import USAGE_ANNOTATION, usage_to_publish
    from hakube.controllers import hpa

    assert USAGE_ANNOTATION == hpa.USAGE_ANNOTATION
    pod = make_pod("p", "n", [{"name": "c", "image": "i", "resources": {"requests": {"cpu": "1"}}}])
    assert usage_to_publish(pod, 200_000_000) is None  # not running yet
    pod.status.phase = "Running"
    assert usage_to_publish(pod, 200_000_000) == "200m"
    pod.metadata.annotations[USAGE_ANNOTATION] = "200m"
    assert usage_to_publish(pod, 215_000_000) is None  # jitter: < 10 %
    assert usage_to_publish(pod, 260_000_000) == "260m"
    no_request = make_pod("q", "n", [{"name": "c", "image": "i"}])
    no_request.status.phase = "Running"
    assert usage_to_publish(no_request, 10**9) is None
