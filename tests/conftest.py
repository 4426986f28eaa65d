"""Fixtures shared by every test area."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hakube.local.cluster import write_config
from hakube.testing import mounts, reaper
from hakube.testing import pki as testpki
from hakube.testing.cluster import LocalCluster
from tests.netshared import shared_netcluster  # noqa: F401  (a session fixture for every area)

_session: reaper.Session | None = None
_leaked: list[reaper.Proc] = []
_mounts = mounts.MountWatch()
_leaked_mounts: list[tuple[Path, str]] = []


def pytest_configure(config: pytest.Config) -> None:
    """Mark every process this run starts, with a watchdog that kills them all if the run dies
    without its teardown (SIGKILL, a second Ctrl-C): see hakube.testing.reaper."""
    global _session
    _session = reaper.start()


def pytest_sessionstart(session: pytest.Session) -> None:
    """The run's base temporary directory: a mount below it at the end is this run's leak."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is not None:
        _mounts.basetemp = factory.getbasetemp()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Iterator[None]:
    """After each test's teardown, note the mounts it made (to name it if one is left)."""
    yield
    _mounts.after(item.nodeid)


@pytest.hookimpl(trylast=True)  # after pytest's own, which tears down what -x left set up
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Every fixture is torn down by now: a process of this run that still runs leaked, and so
    did a mount below the run's directories (which also fails the run: see
    hakube.testing.mounts)."""
    if _session is not None:
        _leaked[:] = _session.leftovers()
        reaper.kill(_leaked)
    _leaked_mounts[:] = _mounts.leftovers()
    if _leaked_mounts:
        mounts.detach([m for m, _ in _leaked_mounts])
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _leaked_mounts:
        terminalreporter.section(
            f"LEAKED MOUNTS: {len(_leaked_mounts)} outlived teardown (unmounted now; the run "
            "fails)",
            red=True,
            bold=True,
        )
        for m, nodeid in _leaked_mounts:
            terminalreporter.line(f"{m} (appeared during {nodeid or 'session teardown'})", red=True)
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
