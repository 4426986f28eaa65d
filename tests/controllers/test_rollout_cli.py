"""hakubectl rollout: what it refuses before talking to a cluster."""

from __future__ import annotations

import io

from hakube.cli import ctl


def run(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = ctl.main(["-s", "127.0.0.1:1", *argv], out=out, err=err)
    return code, out.getvalue() + err.getvalue()


def test_rollout_only_works_on_deployments() -> None:
    code, out = run("rollout", "status", "pod/web")
    assert code == 1 and 'rollout works on deployments; "pods" are not supported' in out


def test_rollout_needs_exactly_one_deployment() -> None:
    code, out = run("rollout", "undo", "deploy/a", "deploy/b")
    assert code == 2 and "name one deployment" in out
    code, out = run("rollout", "history", "nosuchkind/x")
    assert code == 1 and 'resource type "nosuchkind"' in out
