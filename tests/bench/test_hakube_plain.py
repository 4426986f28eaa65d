"""hakube-plain, the release without TLS: its masters' command line and environment, and the
temporary worktree it checks the release out into (on a throwaway repository)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.hakube_system import HakubePlainSystem, PlainLocalCluster


def test_plain_masters_run_the_release_with_its_own_flags(tmp_path: Path) -> None:
    tree = str(tmp_path / "tree")
    cluster = PlainLocalCluster(str(tmp_path / "data"), tree, extra_args=["--fsync"])
    m = cluster.masters[0]
    cmd = cluster.command(m)

    assert cmd[:4] == [sys.executable, "-m", "hakube", "master"]
    assert "--pki-dir" not in cmd
    assert cmd[cmd.index("--api-listen") + 1] == m.api
    peers = cmd[cmd.index("--peers") + 1].split(",")
    assert sorted(peers) == sorted(f"{o.name}={o.raft}" for o in cluster.masters[1:])
    assert cmd[-1] == "--fsync"
    assert cluster.env["PYTHONPATH"] == tree  # replaced: this checkout must not leak in
    assert not os.path.exists(cluster.pki.root)
    cluster.prepare_pki()
    assert not os.path.exists(cluster.pki.root)


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def release_repo(tmp_path: Path) -> Path:
    """A repository whose one commit is a 'hakube' package of version 9.9."""
    repo = tmp_path / "repo"
    (repo / "hakube").mkdir(parents=True)
    (repo / "hakube" / "__init__.py").write_text('__version__ = "9.9"\n')
    _git(repo, "init", "-q")
    _git(repo, "add", "-A")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "release")
    return repo


def test_the_release_is_checked_out_in_a_worktree_and_removed(release_repo: Path) -> None:
    system = HakubePlainSystem(repo=str(release_repo), rev="HEAD")
    commit = _git(release_repo, "rev-parse", "--short", "HEAD")
    assert system.version == f"9.9 at {commit}, without TLS"

    tree = system.prepare()
    try:
        assert (Path(tree) / "hakube" / "__init__.py").exists()
        assert system.prepare() == tree  # once per run
        assert tree in _git(release_repo, "worktree", "list")
    finally:
        system.close()
    assert not os.path.exists(tree)
    assert tree not in _git(release_repo, "worktree", "list")
    system.close()  # idempotent


def test_a_given_tree_is_used_as_is_and_kept(release_repo: Path) -> None:
    system = HakubePlainSystem(tree=str(release_repo))
    assert system.version.startswith("9.9 at ")
    assert system.prepare() == str(release_repo)
    system.close()
    assert (release_repo / "hakube" / "__init__.py").exists()


def test_a_tree_whose_hakube_does_not_import_is_refused(release_repo: Path) -> None:
    (release_repo / "hakube" / "__init__.py").write_text('raise ImportError("broken")\n')
    with pytest.raises(RuntimeError, match="broken"):
        HakubePlainSystem(tree=str(release_repo)).prepare()
