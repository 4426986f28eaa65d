"""Fixtures for the hakubectl tests: a real three-master cluster shared by all of them, and a
runner that executes the real command line in a subprocess with a private HOME (so no test
reads or writes the user's ~/.hakube)."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO

import pytest

from hakube.testing.cluster import LocalCluster

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLES = os.path.join(REPO, "examples")


@dataclass
class Result:
    rc: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


Ctl = Callable[..., Result]


def ctl_env(home: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAKUBE_")}
    env.update(HOME=home, PYTHONPATH=REPO + os.pathsep + env.get("PYTHONPATH", ""), **extra)
    return env


def pump(stream: IO[str] | None, into: queue.Queue[str]) -> threading.Thread:
    """Copy ``stream``'s lines into a queue on a daemon thread (readable with a timeout)."""
    assert stream is not None

    def run() -> None:
        for line in stream:
            into.put(line.rstrip("\n"))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def ctl_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "hakube.cli.ctl", *args]


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(str(tmp_path_factory.mktemp("masters")), 3) as c:
        yield c


@pytest.fixture(scope="session")
def home(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("home"))


@pytest.fixture
def ctl(cluster: LocalCluster, home: str) -> Ctl:
    """``ctl("get", "pods", stdin=..., env={...})`` runs hakubectl against the cluster."""

    def run(
        *args: str, stdin: str | None = None, env: dict[str, str] | None = None, timeout: float = 30
    ) -> Result:
        e = ctl_env(
            home, HAKUBE_SERVER=",".join(cluster.endpoints()), HAKUBE_CONFIG=cluster.admin_config
        )
        e.update(env or {})
        p = subprocess.run(
            ctl_command(*args),
            input=stdin,
            capture_output=True,
            text=True,
            env=e,
            timeout=timeout,
            cwd=REPO,
        )
        return Result(p.returncode, p.stdout, p.stderr)

    return run
