"""The web console in a real headless Chromium against a real three-master cluster with the
scheduler and controllers inside the masters and a node agent on the simulated runtime: the
overview names the leader, pages follow changes made elsewhere without a reload, a pod's log
is followed, actions ask first and act as the console's user (refused for a view-only one),
and nothing answers without the console's token."""

from __future__ import annotations

import concurrent.futures
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hakube.api.convert import from_dict
from hakube.client import Client
from hakube.client.cluster import cluster_report
from hakube.client.edit import modify
from hakube.local.cluster import write_config
from hakube.local.monitoring import JOBS, Target, prometheus_config
from hakube.testing.cluster import LocalCluster
from hakube.testing.console import BrowserMissing, ConsoleProc, chromium
from hakube.testing.prometheus import Prometheus
from hakube.testing.wait import wait_for
from tests.agent.conftest import running_sim_agent
from tests.conftest import require
from tests.observability.conftest import RULES, need
from tests.rbac.test_rbac_cluster import user_config

pytestmark = pytest.mark.timeout(240)
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
    try:
        driver = chromium(str(tmp_path_factory.mktemp("chromium")))
    except BrowserMissing as exc:
        require(str(exc))
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

    def leader_marked() -> bool:  # asked each time: a loaded machine may elect a new one
        leader = cluster_report(client)["leader"]
        return (
            bool(leader)
            and text_of(browser, f'#masters tr[data-name="{leader}"] .role') == "leader"
        )

    wait_for(leader_marked, 30, "the leader marked on the overview")

    def masters() -> list[str]:
        rows = browser.find_elements("css selector", "#masters tbody tr")
        return sorted(r.get_attribute("data-name") for r in rows)

    # the rows arrive with the page's live updates, not all in one paint
    wait_for(lambda: masters() == ["m1", "m2", "m3"], 30, "all three masters listed")
    wait_for(lambda: "healthy" in text_of(browser, "#health"), 30, "health line")
    wait_for(lambda: "No Prometheus configured" in text_of(browser, "#alerts-status"), 30,
             "how to configure alerts")  # fmt: skip
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


def test_a_bad_prometheus_url_is_refused_at_start(cluster: LocalCluster) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "hakube", "console", "--listen", "127.0.0.1:0", "-s",
         ",".join(cluster.endpoints()), "--prometheus-url", "prometheus:9090"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert r.returncode == 1
    assert "--prometheus-url 'prometheus:9090'" in r.stderr.strip().splitlines()[-1]


def test_a_long_pod_list_is_drawn_a_page_at_a_time(
    browser: Any, admin_console: ConsoleProc, client: Client
) -> None:
    """205 pods bound to a node that does not exist (nothing runs them): the page draws 200
    rows, says how many there are, and Next shows the rest."""
    ns = "many"
    client.create(from_dict({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))

    def create(i: int) -> None:
        client.create(from_dict({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"p-{i:03}", "namespace": ns},
            "spec": {"nodeName": "nowhere", "containers": [{"name": "c", "image": "busybox:1"}]},
        }))  # fmt: skip

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(create, range(205)))
    total = len(client.pods.list().items)
    open_page(browser, admin_console, "pods")
    wait_for(lambda: text_of(browser, "#pods-count") == str(total), 30, f"{total} pods counted")
    rows = "#pods tbody tr[data-name]"
    assert len(browser.find_elements("css selector", rows)) == 200
    assert text_of(browser, "#pods-range") == f"1–200 of {total}"
    click(browser, 'button[data-action="page"]:not([disabled])[data-to="1"]')
    wait_for(lambda: len(browser.find_elements("css selector", rows)) == total - 200, 10,
             "the second page")  # fmt: skip


def test_alerts_from_a_real_prometheus_come_and_go_on_the_overview(
    browser: Any, cluster: LocalCluster, client: Client, tmp_path: Path
) -> None:
    """A real Prometheus scrapes the masters and evaluates the shipped HakubeTargetDown rule
    (its ``for`` shortened from 5m to 1s, so the test need not wait 5 minutes): before
    Prometheus runs the overview says it is unreachable; a killed follower's alert appears
    without a reload, and goes once the follower is back. A second rule firing with it carries
    markup in its summary and a javascript: runbook: shown as text, never run or linked. Runs
    last: it kills a master."""
    need("prometheus")
    with open(RULES) as f:
        shipped = yaml.safe_load(f)
    rule = next(r for g in shipped["groups"] for r in g["rules"]
                if r.get("alert") == "HakubeTargetDown")  # fmt: skip
    rules = tmp_path / "rules.yml"
    short = dict(rule, **{"for": "1s"})
    markup = {"alert": "ConsoleMarkup", "expr": rule["expr"], "annotations": {
        "summary": "<img id=xss src=x onerror=window.__xss=1>",
        "runbook_url": "javascript:window.__xss=2"}}  # fmt: skip
    rules.write_text(yaml.safe_dump({"groups": [{"name": "t", "rules": [short, markup]}]}))
    targets = [Target(JOBS["master"], m.name, m.metrics) for m in cluster.masters]
    prom = Prometheus(str(tmp_path / "prometheus"), prometheus_config(targets),
                      rule_files=[str(rules)])  # fmt: skip
    config = write_config(str(tmp_path / "admin.conf"), cluster.prepare_pki(), cluster.endpoints())
    console = ConsoleProc(config, tmp_path / "console.log", "--prometheus-url",
                          f"http://{prom.address}", "--prometheus-interval", "0.5")  # fmt: skip
    follower = next(m for m in cluster.masters if m.name != cluster_report(client)["leader"])
    status = "#alerts-status"
    row = '#alerts tr[data-alert="HakubeTargetDown"][data-state="firing"]'
    try:
        open_page(browser, console, "overview")
        wait_for(lambda: "unreachable" in text_of(browser, status), 20, "Prometheus unreachable")
        assert len(text_of(browser, status).splitlines()) == 1
        browser.execute_script("window.__marker = 1")  # gone if the page reloads
        prom.start()
        wait_for(lambda: all(t["health"] == "up" for t in prom.targets()) and prom.targets(),
                 30, "every master scraped")  # fmt: skip
        wait_for(lambda: text_of(browser, status) == "No alerts firing or pending.", 30,
                 "no alerts while every master is up")  # fmt: skip
        cluster.kill(follower)
        wait_for(lambda: follower.name in text_of(browser, row), 60, "the alert on the page")
        assert "cannot be scraped" in text_of(browser, row)
        bad = '#alerts tr[data-alert="ConsoleMarkup"]'
        wait_for(lambda: "<img id=xss" in text_of(browser, bad), 10, "markup shown as text")
        assert not browser.find_elements("css selector", f"#xss, {bad} a")
        assert browser.execute_script("return window.__xss") is None
        shoot(browser, "overview-alerts", tmp_path)
        cluster.start(follower)
        cluster.wait_ready([follower], timeout=60)
        wait_for(lambda: text_of(browser, status) == "No alerts firing or pending.", 60,
                 "the alert gone once the follower is back")  # fmt: skip
        assert browser.execute_script("return window.__marker") == 1
    finally:
        console.stop()
        prom.stop()
        if not follower.alive:
            cluster.start(follower)
