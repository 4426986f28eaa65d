"""A test run leaves no mount behind (hakube.testing.mounts).

The leak these guard against: tests/ansible's node agent mounted its ServiceAccount token
volume (a tmpfs) below the Network's work directory in the runner's mount namespace; the
fixture killed the agent, and Network.close() deleted the directory without unmounting, so
rmtree emptied the tmpfs but left it mounted. Here a real process does the same -- it enters the
runner's mount namespace from a host's network namespace, mounts a tmpfs below the work
directory, writes a file and keeps running -- and the Network must end it and leave no mount.
The suite's own check is tried by a nested test run whose test leaks a mount: the run fails,
names the test, and unmounts it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from hakube.agent import tmpfs
from hakube.testing import mounts, netns
from hakube.testing.wait import wait_for
from tests.conftest import require

pytestmark = [pytest.mark.netns, pytest.mark.timeout(120)]

MOUNTER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from hakube.agent import tmpfs
    d = Path(sys.argv[1])
    d.mkdir(parents=True)
    tmpfs.mount(d)
    (d / "token").write_text("secret")
    time.sleep(600)
    """
)


def root_reason() -> str | None:
    return None if os.geteuid() == 0 else "mounting a tmpfs needs root"


def test_a_network_unmounts_what_its_hosts_mounted_below_its_workdir() -> None:
    require(root_reason() or netns.unavailable_reason())
    with netns.Network() as net:
        host = net.add_host("n1", "192.0.2.21/24")
        volume = net.workdir / "n1/data/agent/pods/uid/volumes/kube-api-access-x"
        # As the ansible test's agent: in the host's network namespace, in our mount namespace.
        proc = host.spawn(
            [
                "nsenter",
                f"--mount=/proc/{os.getpid()}/ns/mnt",
                "--",
                sys.executable,
                "-c",
                MOUNTER,
                str(volume),
            ]
        )
        try:
            wait_for(lambda: (volume / "token").exists(), 30, "the tmpfs mounted and written")
            assert tmpfs.is_tmpfs(volume)
            workdir = net.workdir
        except BaseException:
            proc.kill()
            raise
    assert proc.poll() is not None
    assert not tmpfs.mounts_under(workdir)
    assert not workdir.exists()


def test_unmount_under_takes_stacked_mounts_deepest_first(tmp_path: Path) -> None:
    require(root_reason())
    outer, inner = tmp_path / "a", tmp_path / "a/b"
    outer.mkdir()
    try:
        tmpfs.mount(outer)
        tmpfs.mount(outer)  # stacked on the same point
        watch = mounts.MountWatch(basetemp=tmp_path)
        watch.after("tests/x.py::test_mounts")
        inner.mkdir()
        tmpfs.mount(inner)  # after that test: during the session's teardown

        def here() -> list[tuple[Path, str]]:
            # This run's harness directories may hold live mounts of a shared cluster.
            return [(m, t) for m, t in watch.leftovers() if m.is_relative_to(tmp_path)]

        assert here() == [(outer, "tests/x.py::test_mounts"), (inner, "")]
        done = mounts.unmount_under(tmp_path)
        assert len(done) == 3 and done[0] == inner, done
        assert not tmpfs.mounts_under(tmp_path) and not here()
    finally:
        mounts.unmount_under(tmp_path)


LEAKY_TEST = textwrap.dedent(
    """
    from hakube.agent import tmpfs

    def test_leaves_a_mount(tmp_path):
        (tmp_path / "vol").mkdir()
        tmpfs.mount(tmp_path / "vol")
    """
)


def test_a_run_that_leaves_a_mount_fails_and_names_the_test(tmp_path: Path) -> None:
    require(root_reason())
    (tmp_path / "test_leaky.py").write_text(LEAKY_TEST)
    basetemp = tmp_path / "base"
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "tests.conftest",
            f"--basetemp={basetemp}",
            f"--rootdir={tmp_path}",
            "-c",
            os.devnull,
            str(tmp_path / "test_leaky.py"),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        assert res.returncode == pytest.ExitCode.TESTS_FAILED, res.stdout + res.stderr
        assert "LEAKED MOUNTS: 1" in res.stdout, res.stdout
        assert "appeared during test_leaky.py::test_leaves_a_mount" in res.stdout, res.stdout
        assert "1 passed" in res.stdout
        assert not tmpfs.mounts_under(basetemp)  # unmounted by the check
    finally:
        mounts.unmount_under(tmp_path)


def test_a_new_network_unmounts_what_a_dead_run_left_and_spares_a_live_one() -> None:
    require(root_reason() or netns.unavailable_reason())
    gone = subprocess.Popen(["true"])
    gone.wait()
    dead = Path(tempfile.mkdtemp(prefix=f"hk{gone.pid}x0000-"))
    live = Path(tempfile.mkdtemp(prefix=f"hk{os.getpid()}x0000-"))
    try:
        for d in (dead, live):
            (d / "vol").mkdir()
            tmpfs.mount(d / "vol")
        with netns.Network():
            assert not tmpfs.mounts_under(dead) and dead.is_dir()  # kept: maybe for debugging
            assert tmpfs.is_tmpfs(live / "vol")
    finally:
        for d in (dead, live):
            mounts.unmount_under(d)
            shutil.rmtree(d, ignore_errors=True)
