"""What the web console costs a browser with many pods: time to first render of the pods page,
and how long a pod's change takes to reach its row.

Run: ``python -m bench.bench_console`` (``--help`` for knobs) on a quiet machine; a smoke:
``python -m bench.bench_console --pods 500 --changes 20 --rounds 1``. Needs Debian's chromium
and chromium-driver (scripts/install/chromium.sh) and selenium.

One cluster of this checkout (objects only: no scheduler, no nodes); ``--pods`` Pending pods
created through the gRPC client; one ``hakube console`` process as the admin; one headless
Chromium. Both figures are measured by the browser:

* **first render**: a new document for ``#/pods``; from navigation start (the Performance
  API's time origin) to the moment the table holds the first page of rows and the count says
  ``--pods`` (a MutationObserver on the page) -- the list, its JSON over the event stream,
  parsing and drawing included. Median of ``--rounds`` loads.
* **update latency**: ``--changes`` times, a pod on the first page gets a new ``status.phase``
  through the API (wall clock before the call) until its row shows it (the browser's wall
  clock, ``performance.timeOrigin + performance.now()``, same machine); p50 and p99.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import sys
import tempfile
import time
from typing import Any

from bench import machine
from bench.bench_kubeapi import _seed_pods
from bench.machine import CpuMeter
from bench.store_scenarios import log
from hakube.testing.cluster import LocalCluster
from hakube.testing.console import BrowserMissing, ConsoleProc, chromium

PAGE_ROWS = 200
"""Rows the pods page draws at a time (``PAGE_ROWS`` in hakube/console/static/app.js)."""

RENDERED_JS = """
const [want, rows, done] = arguments;
const ok = () => document.getElementById("pods-count")?.textContent === String(want) &&
  document.querySelectorAll("#pods tbody tr[data-name]").length === rows;
if (ok()) { done(performance.now()); return; }
new MutationObserver((_, obs) => {
  if (ok()) { obs.disconnect(); done(performance.now()); }
}).observe(document.getElementById("main"), {childList: true, subtree: true});
"""

WATCH_JS = """
const [sel, text] = arguments;
window.__seen = null;
const check = (obs) => {
  if (document.querySelector(sel)?.textContent === text) {
    window.__seen = performance.timeOrigin + performance.now();
    obs.disconnect();
  }
};
const obs = new MutationObserver(() => check(obs));
obs.observe(document.getElementById("main"), {childList: true, subtree: true,
                                               characterData: true});
"""


def first_render_ms(browser: Any, console: ConsoleProc, pods: int) -> float:
    browser.get("about:blank")
    browser.get(f"{console.base}/#/pods")
    return float(browser.execute_async_script(RENDERED_JS, pods, min(pods, PAGE_ROWS)))


def update_latencies_ms(browser: Any, local: LocalCluster, pods: int, changes: int) -> list[float]:
    """Latency of each of ``changes`` phase changes of pods on the first page (named as
    ``_seed_pods`` names them, sorted as the page sorts them)."""
    keys = sorted(f"load-{i % 10}/p-{i}" for i in range(pods))[: min(PAGE_ROWS, 100)]
    out = []
    with local.client(timeout=30) as c:
        for i in range(changes):
            ns, name = keys[i % len(keys)].split("/")
            pod = c.pods.get(name, namespace=ns)
            phase = "Running" if pod.status.phase != "Running" else "Succeeded"
            browser.execute_script(
                WATCH_JS, f'#pods tr[data-name="{name}"][data-namespace="{ns}"] .status', phase
            )
            pod.status.phase = phase
            t0 = time.time() * 1000
            c.pods.update_status(pod)
            deadline = time.monotonic() + 30
            while (seen := browser.execute_script("return window.__seen")) is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"pod {ns}/{name} not shown {phase} within 30 s")
                time.sleep(0.005)
            out.append(float(seen) - t0)
    return out


def run(args: argparse.Namespace) -> str:
    if args.pods < 1 or args.changes < 1 or args.rounds < 1:
        raise SystemExit("bench_console: --pods, --changes and --rounds must be at least 1")
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        with LocalCluster(os.path.join(tmp, "c"), args.masters) as local:
            log(f"seeding {args.pods} pods")
            _seed_pods(local, args.pods)
            console = ConsoleProc(local.admin_config, os.path.join(tmp, "console.log"))
            try:
                browser = chromium(os.path.join(tmp, "chromium"), script_timeout=300)
            except BrowserMissing as exc:
                console.stop()
                raise SystemExit(f"bench_console: {exc}") from exc
            try:
                browser.get(console.url)  # the token cookie
                meter = CpuMeter()
                meter.start()
                renders = []
                for r in range(args.rounds):
                    renders.append(first_render_ms(browser, console, args.pods))
                    log(f"round {r + 1}: first render {renders[-1]:.0f} ms")
                lat = update_latencies_ms(browser, local, args.pods, args.changes)
                cpu = meter.stop()
            finally:
                browser.quit()
                console.stop()
    lat.sort()
    p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))]
    return "\n".join([
        f"machine: {machine.describe()}",
        f"foreign CPU during the run: {cpu.foreign:.2f} cores",
        f"pods page, {args.pods} pods, first render: median {statistics.median(renders):.0f} ms "
        f"(min {min(renders):.0f}, max {max(renders):.0f}, {args.rounds} loads)",
        f"pod change -> row, {len(lat)} changes: p50 {statistics.median(lat):.0f} ms, "
        f"p99 {p99:.0f} ms, max {lat[-1]:.0f} ms",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--masters", type=int, default=3)
    p.add_argument("--pods", type=int, default=10000, help="pods in the cluster")
    p.add_argument("--changes", type=int, default=100, help="pod status changes timed")
    p.add_argument("--rounds", type=int, default=3, help="loads of the pods page timed")
    args = p.parse_args(argv)
    # A SIGTERM (timeout(1), a CI limit) unwinds like Ctrl-C: the cluster's masters run in
    # sessions of their own and are stopped only by LocalCluster's exit.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    print(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
