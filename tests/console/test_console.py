"""The web console in a real headless Chromium against a real three-master cluster with the
scheduler and controllers inside the masters and a node agent on the simulated runtime: the
overview names the leader, pages follow changes made elsewhere without a reload, a pod's log
is followed, actions ask first and act as the console's user (refused for a view-only one),
and nothing answers without the console's token."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hakube.api.convert import from_dict
from hakube.client import Client
from hakube.client.cluster import cluster_report
from hakube.client.edit import modify
from hakube.local.cluster import write_config
from hakube.testing.cluster import LocalCluster
from hakube.testing.wait import wait_for
from tests.agent.conftest import running_sim_agent
from tests.conftest import require
from tests.rbac.test_rbac_cluster import user_config

pytestmark = pytest.mark.timeout(240)
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
TALK = "echo one; sleep 2; echo two; sleep 2; echo three; sleep 3600"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    d = str(tmp_path_factory.mktemp("masters"))
    with LocalCluster(d, 3, extra_args=["--with-controllers"]) as c:
        yield c


@pytest.fixture(scope="module")
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster.endpoints(), timeout=20) as c:
        yield c


@pytest.fixture(scope="module")
def node(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with running_sim_agent(cluster.endpoints(), tmp_path_factory.mktemp("node"), cluster) as a:
        yield a.s.node_name


class ConsoleProc:
    def __init__(self, config: str, log: Path) -> None:
        self.log = open(log, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hakube", "console", "--listen", "127.0.0.1:0",
             "--client-config", config],
            stdout=subprocess.PIPE, stderr=self.log, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert "open http://" in line, f"console did not start: {line!r} {log.read_text()}"
        self.url = line.split("open ", 1)[1].strip()
        self.base = self.url.split("/login")[0]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


@pytest.fixture(scope="module")
def admin_console(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ConsoleProc]:
    d = tmp_path_factory.mktemp("console")
    config = write_config(str(d / "admin.conf"), cluster.prepare_pki(), cluster.endpoints())
    c = ConsoleProc(config, d / "console.log")
    yield c
    c.stop()


@pytest.fixture(scope="module")
def viewer_console(
    cluster: LocalCluster, client: Client, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ConsoleProc]:
    d = tmp_path_factory.mktemp("viewer")
    client.create(from_dict({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "viewer-view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "viewer"}],
    }))  # fmt: skip
    c = ConsoleProc(user_config(cluster, str(d), "viewer"), d / "console.log")
    yield c
    c.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    require(
        None
        if CHROMIUM and DRIVER
        else "chromium/chromedriver missing (scripts/install/chromium.sh)"
    )
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        require("selenium is not installed (pip install -e .[dev])")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1400,900",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):  # fmt: skip
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def text_of(browser: Any, css: str) -> str:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    try:
        return str(browser.find_element("css selector", css).text)
    except (NoSuchElementException, StaleElementReferenceException):
        return ""


def type_into(browser: Any, css: str, text: str) -> None:
    """Type into a field of a page that re-renders live (the field may be replaced while the
    test types; the page keeps what a user typed, a stale reference here is retried)."""
    from selenium.common.exceptions import StaleElementReferenceException

    def typed() -> bool:
        try:
            box = browser.find_element("css selector", css)
            box.clear()
            box.send_keys(text)
        except StaleElementReferenceException:
            return False
        value = browser.execute_script(f"return document.querySelector({css!r}).value")
        return bool(value == text)

    wait_for(typed, 10, f"{text!r} typed into {css}", interval=0.1)


def click(browser: Any, css: str) -> None:
    from selenium.common.exceptions import StaleElementReferenceException

    def clicked() -> bool:
        try:
            browser.find_element("css selector", css).click()
        except StaleElementReferenceException:
            return False
        return True

    wait_for(clicked, 10, f"a click on {css}", interval=0.1)


def shoot(browser: Any, name: str, tmp: Path) -> None:
    out = Path(os.environ.get("HAKUBE_CONSOLE_SCREENSHOTS") or tmp)
    out.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(out / f"console-{name}.png"))


def open_page(browser: Any, console: ConsoleProc, page: str) -> None:
    browser.get(console.url)  # sets the cookie, lands on the overview
    browser.get(f"{console.base}/#/{page}")


def deployment(name: str, replicas: int) -> Any:
    labels = {"app": name}
    return from_dict({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"replicas": replicas, "selector": {"matchLabels": labels},
                 "template": {"metadata": {"labels": labels},
                              "spec": {"containers": [{"name": "c", "image": "busybox:1",
                                                       "command": ["sleep", "3600"]}]}}},
    })  # fmt: skip


def test_the_overview_names_the_masters_and_the_leader(
    browser: Any, admin_console: ConsoleProc, client: Client, node: str, tmp_path: Path
) -> None:
    open_page(browser, admin_console, "overview")
    leader = cluster_report(client)["leader"]
    assert leader
    wait_for(lambda: text_of(browser, f'#masters tr[data-name="{leader}"] .role') == "leader",
             30, "the leader marked on the overview")  # fmt: skip

    def masters() -> list[str]:
        rows = browser.find_elements("css selector", "#masters tbody tr")
        return sorted(r.get_attribute("data-name") for r in rows)

    # the rows arrive with the page's live updates, not all in one paint
    wait_for(lambda: masters() == ["m1", "m2", "m3"], 30, "all three masters listed")
    wait_for(lambda: "healthy" in text_of(browser, "#health"), 10, "health line")
    shoot(browser, "overview", tmp_path)


def test_a_scale_made_elsewhere_shows_without_a_reload_and_the_ui_scales_too(
    browser: Any, admin_console: ConsoleProc, client: Client, node: str, tmp_path: Path
) -> None:
    client.create(deployment("web", 2))
    open_page(browser, admin_console, "workloads")
    cell = '#deployments tr[data-name="web"] .replicas'
    wait_for(lambda: text_of(browser, cell) == "2/2", 60, "web 2/2 on the page")
    browser.execute_script("window.__marker = 1")  # gone if the page reloads
    modify(client, "Deployment", "web", lambda d: setattr(d.spec, "replicas", 3) or True,
           namespace="default")  # fmt: skip
    wait_for(lambda: text_of(browser, cell) == "3/3", 60, "3/3 without a reload")
    assert browser.execute_script("return window.__marker") == 1
    shoot(browser, "workloads", tmp_path)
    type_into(browser, 'input[data-scale="default/web"]', "1")
    click(browser, 'button[data-action="scale"][data-key="default/web"]')
    alert = browser.switch_to.alert
    assert "Scale deployment default/web to 1" in alert.text
    alert.accept()
    try:
        wait_for(lambda: client.deployments.get("web").spec.replicas == 1, 20, "UI scale")
    except TimeoutError as e:
        logs = browser.get_log("browser")
        raise TimeoutError(f"{e}; the page says: {text_of(browser, '#notice')!r} {logs}") from None
    wait_for(lambda: text_of(browser, cell) == "1/1", 60, "1/1 on the page")
    wait_for(lambda: "scaled to 1" in text_of(browser, "#notice"), 10, "the confirmation")


def test_a_pods_log_is_followed(
    browser: Any, admin_console: ConsoleProc, client: Client, node: str, tmp_path: Path
) -> None:
    client.create(from_dict({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "talker", "namespace": "default"},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox:1",
                 "command": ["sh", "-c", TALK]}]},
    }))  # fmt: skip
    open_page(browser, admin_console, "pod/default/talker")
    wait_for(lambda: "one" in text_of(browser, "#log"), 30, "the first line")
    wait_for(lambda: text_of(browser, "#log").split() == ["one", "two", "three"], 30,
             "later lines followed")  # fmt: skip
    shoot(browser, "pod-log", tmp_path)
    open_page(browser, admin_console, "pods")
    wait_for(lambda: text_of(browser, '#pods tr[data-name="talker"] .status') == "Running", 30,
             "the pod listed as running")  # fmt: skip
    shoot(browser, "pods", tmp_path)


def test_a_view_only_user_sees_but_cannot_scale(
    browser: Any, viewer_console: ConsoleProc, client: Client, node: str
) -> None:
    if not client.deployments.list(namespace="default").items:
        client.create(deployment("web", 1))
    want = client.deployments.get("web").spec.replicas
    open_page(browser, viewer_console, "workloads")
    cell = '#deployments tr[data-name="web"] .replicas'
    wait_for(lambda: text_of(browser, cell).endswith(f"/{want}"), 60, "the viewer sees web")
    type_into(browser, 'input[data-scale="default/web"]', str(want + 4))
    click(browser, 'button[data-action="scale"][data-key="default/web"]')
    browser.switch_to.alert.accept()
    wait_for(lambda: "refused (403)" in text_of(browser, "#notice"), 20, "the refusal shown")
    assert 'user "viewer" cannot update deployments' in text_of(browser, "#notice")
    assert client.deployments.get("web").spec.replicas == want


def test_nothing_answers_without_the_token(admin_console: ConsoleProc) -> None:
    for path, status in (("/", 401), ("/console/api/cluster", 401), ("/login?token=nope", 403)):
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(admin_console.base + path, timeout=10)
        assert err.value.code == status, path
    req = urllib.request.Request(admin_console.base + "/console/api/action/scale", data=b"{}",
                                 method="POST")  # fmt: skip
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 401


def test_the_console_refuses_to_listen_beyond_loopback(
    admin_console: ConsoleProc, cluster: LocalCluster
) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "hakube", "console", "--listen", "0.0.0.0:0", "-s",
         ",".join(cluster.endpoints())],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 1
    assert "serves loopback only" in r.stderr.strip().splitlines()[-1]
