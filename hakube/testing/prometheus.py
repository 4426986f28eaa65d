"""A real Prometheus (Debian's ``prometheus``) for tests: started on loopback with a private
storage dir, a short scrape and evaluation interval, and the alert rules under test; asked
through its HTTP API. Only the process started here is stopped, by its pid."""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
import subprocess
import time
import urllib.parse
import urllib.request
from typing import Any

import yaml

from hakube.local.cluster import free_ports


class PrometheusMissing(RuntimeError):
    """Debian's prometheus is not installed (scripts/install/prometheus.sh installs it)."""


def binary(name: str = "prometheus") -> str:
    path = shutil.which(name)
    if path is None:
        raise PrometheusMissing(f"{name} not found; run scripts/install/prometheus.sh")
    return path


class Prometheus:
    """``Prometheus(dir, config)``: ``config`` is a scrape config (as ``hakube up`` writes it);
    its intervals are replaced by ``interval`` and ``rule_files`` are added."""

    def __init__(
        self,
        work_dir: str,
        config: dict[str, Any],
        *,
        rule_files: list[str] | None = None,
        interval: str = "1s",
        web_config: dict[str, Any] | None = None,
        ready_context: ssl.SSLContext | None = None,
    ) -> None:
        """``web_config``: Prometheus' ``--web.config.file`` (e.g. ``tls_server_config``);
        then ``ready_context`` is how this harness reaches it over https."""
        self.work_dir = work_dir
        os.makedirs(work_dir, exist_ok=True)
        config = dict(config)
        config["global"] = {"scrape_interval": interval, "evaluation_interval": interval}
        if rule_files:
            config["rule_files"] = list(rule_files)
        self.config_path = os.path.join(work_dir, "prometheus.yml")
        with open(self.config_path, "w") as f:
            yaml.safe_dump(config, f, sort_keys=False)
        self.address = f"127.0.0.1:{free_ports(1)[0]}"
        self.web_config_path = ""
        if web_config is not None:
            self.web_config_path = os.path.join(work_dir, "web.yml")
            with open(self.web_config_path, "w") as f:
                yaml.safe_dump(web_config, f)
        self.ready_context = ready_context
        self.url = f"{'https' if web_config else 'http'}://{self.address}"
        self.log_path = os.path.join(work_dir, "prometheus.log")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> Prometheus:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    binary(),
                    f"--config.file={self.config_path}",
                    f"--storage.tsdb.path={os.path.join(self.work_dir, 'data')}",
                    f"--web.listen-address={self.address}",
                    "--log.level=warn",
                    *(
                        [f"--web.config.file={self.web_config_path}"]
                        if self.web_config_path
                        else []
                    ),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.tail()}")
            try:
                with urllib.request.urlopen(
                    f"{self.url}/-/ready", timeout=1, context=self.ready_context
                ) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"prometheus not ready within {timeout}s: {self.tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def __enter__(self) -> Prometheus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def tail(self, lines: int = 20) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError:
            return ""

    # -- the HTTP API ---------------------------------------------------------------------------

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; the ``data`` of a successful answer."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        with urllib.request.urlopen(
            f"{self.url}/api/v1/{path}{query}", timeout=5, context=self.ready_context
        ) as r:
            body = json.loads(r.read())
        if body.get("status") != "success":
            raise RuntimeError(f"prometheus {path}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant vector: [{"metric": {...}, "value": [ts, "v"]}, ...]."""
        return list(self.api("query", query=expr)["result"])

    def scalar(self, expr: str) -> float | None:
        """The single value of ``expr``, None when it has no result."""
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def targets(self) -> list[dict[str, Any]]:
        return list(self.api("targets")["activeTargets"])

    def alerts(self) -> list[dict[str, Any]]:
        """Pending and firing alerts."""
        return list(self.api("alerts")["alerts"])

    def rule_groups(self) -> list[dict[str, Any]]:
        return list(self.api("rules")["groups"])
