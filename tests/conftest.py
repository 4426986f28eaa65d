"""Fixtures shared by every test area."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from hakube.local.cluster import write_config
from hakube.testing import pki as testpki
from hakube.testing import reaper
from hakube.testing.cluster import LocalCluster
from tests.netshared import shared_netcluster  # noqa: F401  (a session fixture for every area)

_session: reaper.Session | None = None
_leaked: list[reaper.Proc] = []


def pytest_configure(config: pytest.Config) -> None:
    """Mark every process this run starts, with a watchdog that kills them all if the run dies
    without its teardown (SIGKILL, a second Ctrl-C): see hakube.testing.reaper."""
    global _session
    _session = reaper.start()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Every fixture is torn down by now: a process of this run that still runs leaked."""
    if _session is not None:
        _leaked[:] = _session.leftovers()
        reaper.kill(_leaked)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _leaked:
        terminalreporter.section(
            f"LEAKED PROCESSES: {len(_leaked)} still ran after teardown (killed now)",
            red=True,
            bold=True,
        )
        for p in _leaked:
            terminalreporter.line(f"pid {p.pid} (parent {p.ppid}): {p.cmd}", red=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _session is not None:
        _session.close()


@pytest.fixture(scope="session", autouse=True)
def test_credentials(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Every cluster a test starts uses this process's test CA (hakube.testing.pki), so one
    client config with the admin's credentials -- $HAKUBE_CONFIG, inherited by the processes
    tests start -- reaches any of them; each test names the servers itself."""
    path = str(tmp_path_factory.mktemp("client") / "config")
    pki = testpki.shared()
    write_config(path, pki, [])
    old = os.environ.get("HAKUBE_CONFIG")
    os.environ["HAKUBE_CONFIG"] = path
    yield path
    if old is None:
        os.environ.pop("HAKUBE_CONFIG", None)
    else:
        os.environ["HAKUBE_CONFIG"] = old


@pytest.fixture(scope="module")
def masters3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Three real masters for a whole test module, with the standard namespaces created."""
    with LocalCluster(str(tmp_path_factory.mktemp("masters")), 3) as c:
        yield c


def require(reason: str | None) -> None:
    """Skip for ``reason`` -- or fail, under CI=true, where a missing prerequisite is a broken
    install (scripts/test.sh), not a reason to report green. None: nothing is missing."""
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {reason}", pytrace=False)
    pytest.skip(reason)
