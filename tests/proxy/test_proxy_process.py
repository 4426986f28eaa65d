"""``hakube proxy`` as ``hakube up`` runs it, and its command line."""

from __future__ import annotations

import pytest

from hakube.cli.main import main
from hakube.local.cluster import free_ports
from hakube.local.components import UpComponents
from hakube.local.supervisor import RestartPolicy, Supervisor
from hakube.testing import nsthread
from hakube.testing import pki as testpki
from hakube.testing.cluster import LocalCluster
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(120)


def test_up_components_run_the_proxy_as_its_own_identity(
    cluster: LocalCluster, tmp_path: object
) -> None:
    """The proxy `hakube up --runtime containerd` starts reaches the API as system:kube-proxy
    (it lists and watches, then syncs). ``--nft`` points nowhere, so this test leaves the
    machine's own ruleset alone: the sync fails and says so in its metrics."""
    (port,) = free_ports(1)
    comps = UpComponents(
        str(tmp_path),
        cluster.endpoints(),
        Supervisor(RestartPolicy(restart=False)),
        pki=testpki.shared(),
        proxy_args=["--nft", "/nonexistent/nft", "--metrics-listen", f"127.0.0.1:{port}"],
    )
    comps.start()
    try:
        assert any("proxy" in line for line in comps.report())

        def failed_sync() -> bool:
            try:
                text = nsthread.http_get("127.0.0.1", port, path="/metrics")
            except OSError:
                return False
            return "hakube_proxy_sync_errors_total 0.0" not in text and (
                "hakube_proxy_sync_errors_total" in text
            )

        wait_for(failed_sync, 60, "the proxy's first (failed) sync", interval=0.2)
        log = open(comps.log_path("proxy")).read()
        assert "/nonexistent/nft" in log and "PermissionDenied" not in log
    finally:
        comps.stop()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--table", "no spaces"], "--table 'no spaces'"),
        (["--min-sync-interval", "-1"], "--min-sync-interval must be >= 0"),
        (["--cluster-cidr", "10.244.0.0/33"], "--cluster-cidr '10.244.0.0/33'"),
        (["--cluster-cidr", "fd00::/64"], "IPv4 only"),
        (["--fast-path-device", "eth0"], "--fast-path-device needs --cluster-cidr"),
    ],
)
def test_bad_flags_are_one_line_and_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["proxy", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_metrics_on_a_non_loopback_address_need_an_explicit_flag(
    cluster: LocalCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    """Plain HTTP /metrics on every address is refused unless asked for by name."""
    (port,) = free_ports(1)
    argv = ["proxy", "--servers", cluster.endpoints()[0], "--nft", "/nonexistent/nft"]
    assert main([*argv, "--metrics-listen", f"0.0.0.0:{port}"]) == 1
    err = capsys.readouterr().err.strip()
    assert "--allow-unauthenticated-metrics" in err and len(err.splitlines()) == 1


def test_a_fast_path_that_cannot_attach_stops_the_start_with_the_flag_named(
    cluster: LocalCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["proxy", "--servers", cluster.endpoints()[0], "--nft", "/nonexistent/nft"]
    flags = ["--cluster-cidr", "10.244.0.0/16", "--fast-path-device", "hknosuchdev0"]
    assert main([*argv, *flags]) == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]  # after the start-up log line
    assert last.startswith("--fast-path-device hknosuchdev0: ") and "hknosuchdev0" in last[20:]
