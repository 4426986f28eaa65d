"""``hakube console`` and a headless Chromium for the console's tests and benchmark: the
console as a child process on a free loopback port (its printed URL carries the token), and
Debian's chromium driven through chromium-driver with Selenium. Only the processes started
here are stopped, by their handles."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

from hakube.local import procs
from hakube.local.procs import hakube_argv


class BrowserMissing(RuntimeError):
    """chromium, chromium-driver or selenium is not installed (scripts/install/chromium.sh,
    pip install -e .[dev])."""


class ConsoleProc:
    """``hakube console --client-config config [extra...]``; ``url`` opens it (token included),
    ``base`` is its origin."""

    def __init__(self, config: str, log: Path | str, *extra: str) -> None:
        self.log = open(log, "w")
        self.proc = subprocess.Popen(
            hakube_argv("console", "--listen", "127.0.0.1:0", "--client-config", config, *extra),
            stdout=subprocess.PIPE,
            stderr=self.log,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode()
        if "open http://" not in line:
            self.stop()
            raise RuntimeError(f"console did not start: {line!r} {Path(log).read_text()}")
        self.url = line.split("open ", 1)[1].strip()
        self.base = self.url.split("/login")[0]

    def stop(self) -> None:
        procs.stop([self.proc], timeout=10)
        self.log.close()


def chromium(user_dir: str, *, script_timeout: float = 30.0) -> Any:
    """A headless Chromium WebDriver with its own profile directory (``quit()`` it)."""
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver:
        raise BrowserMissing("chromium/chromedriver missing (scripts/install/chromium.sh)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        raise BrowserMissing("selenium is not installed (pip install -e .[dev])") from exc
    opts = webdriver.ChromeOptions()
    opts.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,900", f"--user-data-dir={user_dir}"):  # fmt: skip
        opts.add_argument(arg)
    browser = webdriver.Chrome(service=Service(driver), options=opts)
    browser.set_page_load_timeout(120)
    browser.set_script_timeout(script_timeout)
    return browser
