"""Library code that cannot start raises StartupError (catchable in-process); only the CLI turns
it into a message and an exit status."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from prometheus_client import CollectorRegistry

from hakube.httpendpoint import serve_http
from hakube.lifecycle import StartupError


def test_a_taken_metrics_address_is_a_startup_error_not_an_exit() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(StartupError, match=f"cannot listen on 127.0.0.1:{port}") as exc:
            serve_http(f"127.0.0.1:{port}", CollectorRegistry(), "hakube test")
        assert exc.value.exit_code == 1


@pytest.mark.timeout(60)
def test_the_cli_prints_one_line_and_exits_1(tmp_path: object) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "hakube",
                "scheduler",
                "--servers",
                "127.0.0.1:1",
                "--metrics-listen",
                f"127.0.0.1:{port}",
            ],
            capture_output=True,
            text=True,
            timeout=50,
        )
    assert r.returncode == 1, r.stderr
    assert f"cannot listen on 127.0.0.1:{port} for metrics" in r.stderr.strip().splitlines()[-1]
    assert "Traceback" not in r.stderr
