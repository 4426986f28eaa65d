"""Where a master serves the Kubernetes API: an address it cannot bind stops it with one line;
the derived default (the gRPC port + 1) that is taken only turns the REST door off."""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path

import pytest

from hakube.local import procs
from hakube.local.cluster import free_ports
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(60)


def _master(tmp_path: Path, api: int, *extra: str) -> list[str]:
    (raft,) = free_ports(1)
    d, r, a = str(tmp_path / "d"), f"127.0.0.1:{raft}", f"127.0.0.1:{api}"
    return procs.hakube_argv(
        "master", "--name", "m1", "--data-dir", d, "--raft-listen", r, "--api-listen", a, *extra
    )


def test_an_explicit_address_in_use_stops_the_master_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        (api,) = free_ports(1)
        r = subprocess.run(
            _master(tmp_path, api, "--k8s-api-listen", f"127.0.0.1:{port}"),
            capture_output=True,
            text=True,
            timeout=45,
        )
    assert r.returncode == 1
    assert (
        r.stderr.strip()
        .splitlines()[-1]
        .startswith(f"hakube master: cannot listen on 127.0.0.1:{port} for the Kubernetes API")
    )


def test_a_taken_default_port_leaves_the_master_serving_without_it(tmp_path: Path) -> None:
    # Find a port whose successor is free to hold, so the master's default (api + 1) is taken.
    for _ in range(50):
        (api,) = free_ports(1)
        blocker = socket.socket()
        try:
            blocker.bind(("127.0.0.1", api + 1))
            break
        except OSError:
            blocker.close()
    else:
        pytest.fail("no free pair of ports")
    log = tmp_path / "m.log"
    with blocker, open(log, "wb") as out:
        blocker.listen()
        proc = subprocess.Popen(
            _master(tmp_path, api), stdout=out, stderr=subprocess.STDOUT, env=dict(os.environ)
        )
        try:
            wait_for(
                lambda: (
                    "the Kubernetes API is off" in log.read_text(errors="replace")
                    or proc.poll() is not None
                ),
                40,
                "the master's warning",
            )
            assert proc.poll() is None, log.read_text()
            assert f"cannot listen on 127.0.0.1:{api + 1}" in log.read_text()
        finally:
            proc.kill()
            proc.wait(10)


def test_hakube_up_gives_an_older_data_dir_a_kubernetes_api_port_and_keeps_it(
    tmp_path: Path,
) -> None:
    import yaml

    from hakube.cli.up_cmd import STATE_FILE, load_or_create_state

    old = [
        {"name": f"m{i}", "api": f"127.0.0.1:{1000 + i}", "raft": f"127.0.0.1:{2000 + i}"}
        | {"metrics": f"127.0.0.1:{3000 + i}"}
        for i in (1, 2, 3)
    ]
    (tmp_path / STATE_FILE).write_text(yaml.safe_dump({"masters": old}))
    first = load_or_create_state(str(tmp_path), 3, 0)
    assert [m["api"] for m in first] == [m["api"] for m in old]
    assert len({m["k8s_api"] for m in first}) == 3
    assert load_or_create_state(str(tmp_path), 3, 0) == first
