"""hakubectl's failures: one line naming the object (or file) and the problem, exit status 1
(2 for a command line that does not parse), nothing half-applied."""

from __future__ import annotations

import os
import time

import pytest

from hakube.local.cluster import free_ports
from hakube.testing.cluster import LocalCluster
from tests.cli.conftest import Ctl

pytestmark = pytest.mark.timeout(60)

GOOD = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: err-good}\ndata: {a: b}\n"


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_bad_yaml_names_file_and_line_and_applies_nothing(ctl: Ctl, tmp_path: object) -> None:
    path = os.path.join(str(tmp_path), "bad.yaml")
    with open(path, "w") as f:
        f.write(GOOD + "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n spec: [\n")
    r = ctl("apply", "-f", path)
    assert r.rc == 1 and r.out == ""
    assert one_line(r.err).startswith(f"error: {path}: not valid YAML: ")
    assert "at line 10, column 2" in r.err  # the " spec:" line
    assert ctl("get", "cm", "err-good").rc == 1  # the good document was not applied either


def test_unknown_kind_in_a_manifest_and_on_the_command_line(ctl: Ctl) -> None:
    r = ctl("apply", "-f", "-", stdin="apiVersion: v1\nkind: Gizmo\nmetadata: {name: g}\n")
    assert (r.rc, one_line(r.err)) == (1, 'error: stdin: unknown kind "Gizmo"')
    r = ctl("get", "gizmos")
    assert r.rc == 1
    assert one_line(r.err).startswith('error: the server doesn\'t have a resource type "gizmos"')


def test_unknown_field_is_named_with_its_path(ctl: Ctl) -> None:
    doc = (
        "apiVersion: v1\nkind: Pod\nmetadata: {name: uf}\nspec:\n  containers:\n"
        "  - {name: c, image: i, imagePolicy: Always}\n"
    )
    r = ctl("apply", "-f", "-", stdin=doc)
    assert (r.rc, one_line(r.err)) == (
        1,
        'error: stdin: Pod uf: unknown field "spec.containers[0].imagePolicy"',
    )


def test_an_object_the_server_refuses_is_named_with_the_field(ctl: Ctl) -> None:
    doc = "apiVersion: v1\nkind: Pod\nmetadata: {name: inv}\nspec:\n  containers: [{name: c}]\n"
    r = ctl("apply", "-f", "-", stdin=doc)
    assert r.rc == 1
    assert one_line(r.err) == (
        'Error from server (Invalid): pod/inv from stdin: Pod "inv" is '
        "invalid: spec.containers[0].image: required value"
    )


def test_one_failing_document_does_not_stop_the_others(ctl: Ctl) -> None:
    docs = (
        GOOD.replace("err-good", "err-first")
        + "---\n"
        + "apiVersion: v1\nkind: Pod\nmetadata: {name: inv2}\nspec: {containers: [{name: c}]}"
        "\n---\n" + GOOD.replace("err-good", "err-last")
    )
    r = ctl("apply", "-f", "-", stdin=docs)
    assert r.rc == 1
    assert r.lines == ["configmap/err-first created", "configmap/err-last created"]
    assert "pod/inv2 from stdin (document 2)" in one_line(r.err)


def test_missing_file(ctl: Ctl) -> None:
    r = ctl("apply", "-f", "no/such/file.yaml")
    assert (r.rc, one_line(r.err)) == (1, 'error: the path "no/such/file.yaml" does not exist')


def test_not_found_and_usage_errors(ctl: Ctl) -> None:
    r = ctl("delete", "pod", "nobody")
    assert (r.rc, one_line(r.err)) == (1, 'Error from server (NotFound): pods "nobody" not found')
    assert ctl("delete", "pod", "nobody", "--ignore-not-found").rc == 0
    r = ctl("get")
    assert r.rc == 2 and "name a resource type" in r.err
    r = ctl("get", "pods", "--output", "xml")
    assert r.rc == 2 and "invalid choice" in r.err


def test_unreachable_endpoints_are_named(ctl: Ctl) -> None:
    dead = [f"127.0.0.1:{p}" for p in free_ports(2)]
    t0 = time.monotonic()
    r = ctl("get", "pods", "--server", ",".join(dead), "--timeout", "3s")
    assert r.rc == 1 and time.monotonic() - t0 < 15
    line = one_line(r.err)
    assert line.startswith("error: list pods: no master answered (tried ")
    assert all(ep in line for ep in dead) and "connection refused" in line


def test_config_file_default_path_flag_and_environment(
    ctl: Ctl, cluster: LocalCluster, tmp_path: object
) -> None:
    home = str(tmp_path)
    env = {"HOME": home, "HAKUBE_SERVER": "", "HAKUBE_CONFIG": ""}
    r = ctl("get", "ns", env=env)
    assert r.rc == 1 and "no masters configured" in r.err and "--server" in r.err
    os.makedirs(os.path.join(home, ".hakube"))
    with open(os.path.join(home, ".hakube", "config"), "w") as f:
        f.write(
            "servers:\n"
            + "".join(f"- {ep}\n" for ep in cluster.endpoints())
            + "namespace: kube-system\n"
        )
    r = ctl("get", "ns", env=env)
    assert (
        r.rc == 1
        and one_line(r.err).startswith("error: config file ")
        and "no certificate-authority" in r.err
    )
    pki = cluster.pki
    creds = (
        f"certificate-authority: {pki.ca_cert}\nclient-certificate: "
        f"{pki.user_cert('admin')}\nclient-key: {pki.user_key('admin')}\n"
    )
    with open(os.path.join(home, ".hakube", "config"), "a") as f:
        f.write(creds)
    assert ctl("get", "ns", "default", "-o", "name", env=env).lines == ["namespace/default"]
    assert ctl("apply", "-f", "-", stdin=GOOD.replace("err-good", "in-ks"), env=env).rc == 0
    assert ctl("get", "cm", "in-ks", "-n", "kube-system", env=env).rc == 0  # config's namespace
    other = os.path.join(home, "other")
    with open(other, "w") as f:
        f.write("servers: [127.0.0.1:1]\n" + creds)
    r = ctl("get", "ns", "--config", other, "--timeout", "1s", env=env)
    assert r.rc == 1 and "127.0.0.1:1" in r.err
    r = ctl("get", "ns", "--timeout", "1s", env={**env, "HAKUBE_CONFIG": other})
    assert r.rc == 1 and "127.0.0.1:1" in r.err
    ok = ctl("get", "ns", "default", "--config", other, "--server", cluster.endpoints()[0], env=env)
    assert ok.rc == 0, ok.err
    r = ctl("get", "ns", "--config", os.path.join(home, "nope"), env=env)
    assert r.rc == 1 and "does not exist" in one_line(r.err)


def test_calling_hakubectl_as_a_function_leaves_the_callers_signals_alone() -> None:
    """Only the hakubectl program dies quietly of SIGPIPE; a process that calls ``main`` (a
    test run, an embedding program) keeps Python's SIGPIPE handling, or its next write to a
    closed socket would kill it."""
    import io
    import signal

    from hakube.cli import ctl

    before = signal.getsignal(signal.SIGPIPE), signal.getsignal(signal.SIGTERM)
    err = io.StringIO()
    assert ctl.main(["-s", "127.0.0.1:1", "get", "pods", "--timeout", "0.2s"], err=err) == 1
    assert (signal.getsignal(signal.SIGPIPE), signal.getsignal(signal.SIGTERM)) == before
