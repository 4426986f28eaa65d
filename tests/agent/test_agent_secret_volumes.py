"""Secrets on nodes, with real containerd: a secret volume is a tmpfs of its own (never the
node's disk), its files are 0400, the container reads them, and the mount and files go with the
pod -- also when the pod was deleted while the agent was down. An agent that cannot mount tmpfs
(not root) refuses to put Secret data on disk."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hakube.agent import tmpfs
from hakube.api.v1 import pod_pb2
from hakube.client import Client
from hakube.testing.containerd import BUSYBOX_IMAGE
from hakube.testing.wait import wait_for
from tests.agent.conftest import StartAgent, ctl_endpoints, get_pod, make_pod, secret, wait_pod

ROOT = Path(__file__).resolve().parents[2]


def _mounted(path: Path) -> bool:
    return tmpfs.is_tmpfs(path)


def _secret_pod(name: str, node: str) -> pod_pb2.Pod:
    return make_pod(
        name,
        node,
        [
            {
                "name": "c",
                "image": BUSYBOX_IMAGE,
                "command": ["sh", "-c", "cat /etc/sec/token; echo; exec sleep 3600"],
                "volumeMounts": [{"name": "sec", "mountPath": "/etc/sec"}],
            }
        ],
        volumes=[{"name": "sec", "secret": {"secretName": "tok"}}],
        terminationGracePeriodSeconds=1,
    )


@pytest.mark.containerd
@pytest.mark.timeout(150)
def test_a_secret_volume_is_a_0400_tmpfs_that_goes_with_the_pod(
    client: Client, start_agent: StartAgent, tmp_path: Path
) -> None:
    client.secrets.create(secret("tok", {"token": "t0ps3cret"}))
    try:
        agent = start_agent()
        client.pods.create(_secret_pod("sec-a", agent.node))
        p = wait_pod(client, "sec-a", lambda p: p.status.phase == "Running", 40, "Running")
        vol = tmp_path / agent.node / "pods" / p.metadata.uid / "volumes" / "sec"
        assert _mounted(vol), "the secret volume is not a tmpfs mount"
        assert (vol / "token").read_bytes() == b"t0ps3cret"
        assert (vol / "token").stat().st_mode & 0o7777 == 0o400
        code, out, _ = ctl_endpoints(client, "exec", "sec-a", "--", "cat", "/etc/sec/token")
        assert (code, out) == (0, "t0ps3cret")
        client.pods.delete("sec-a", namespace="default")
        wait_for(lambda: get_pod(client, "sec-a") is None, 20, "pod sec-a removed")
        wait_for(lambda: not vol.exists(), 10, "the volume directory removed")
        assert not _mounted(vol)
        assert not tmpfs.mounts_under(tmp_path / agent.node)

        # Deleted while the agent is down: the restarted agent unmounts and removes it.
        client.pods.create(_secret_pod("sec-b", agent.node))
        p = wait_pod(client, "sec-b", lambda p: p.status.phase == "Running", 40, "Running")
        vol = tmp_path / agent.node / "pods" / p.metadata.uid / "volumes" / "sec"
        assert _mounted(vol)
        agent.kill()
        client.pods.delete("sec-b", namespace="default", grace_period_seconds=0)
        start_agent(node=agent.node, root=tmp_path / agent.node)
        wait_for(lambda: not vol.exists(), 20, "the gone pod's volume removed after restart")
        assert not tmpfs.mounts_under(tmp_path / agent.node)
    finally:
        client.secrets.delete("tok", namespace="default")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop a capability")
def test_an_agent_that_cannot_mount_tmpfs_keeps_secret_data_off_the_disk(tmp_path: Path) -> None:
    """Without CAP_SYS_ADMIN (setpriv drops it) the secret volume is refused with a clear
    message and no file is written; with the development flag it goes to disk."""
    script = textwrap.dedent(f"""
        from hakube.agent import volumes
        from hakube.agent.env import ConfigError, PodFacts
        from hakube.api import convert
        from hakube.api.v1 import core_pb2
        pod = convert.from_dict({{"apiVersion": "v1", "kind": "Pod",
            "metadata": {{"name": "p", "namespace": "d", "uid": "u"}},
            "spec": {{"containers": [{{"name": "c", "image": "i"}}],
                      "volumes": [{{"name": "sec", "secret": {{"secretName": "s"}}}}]}}}})
        s = core_pb2.Secret(data={{"k": b"V"}})
        try:
            volumes.prepare(pod, {str(tmp_path)!r}, lambda *a: s, PodFacts("", ""))
            print("MOUNTED")
        except ConfigError as e:
            print("REFUSED", e)
        v = volumes.prepare(pod, {str(tmp_path)!r}, lambda *a: s, PodFacts("", ""),
                            secrets_on_disk=True)
        print("ONDISK", open(v["sec"].path + "/k").read())
    """)
    out = subprocess.run(
        [
            "setpriv",
            "--bounding-set=-sys_admin",
            "--inh-caps=-sys_admin",
            sys.executable,
            "-c",
            script,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        check=False,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith('REFUSED volume "sec": cannot mount a tmpfs on '), lines
    assert "Secret data is never written to the node's disk" in lines[0]
    assert "--secret-volumes-on-disk" in lines[0]
    assert lines[1] == "ONDISK V"
    assert not tmpfs.mounts_under(tmp_path)
