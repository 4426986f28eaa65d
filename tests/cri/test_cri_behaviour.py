"""What the node agent relies on from a CRI runtime, checked against real containerd and against
the simulated runtime alike (the ``node`` fixture runs each test on both)."""

from __future__ import annotations

import pytest

from hakube.cri import logs
from hakube.cri.errors import CallTimeout, ImagePullFailed, NotFound
from hakube.cri.v1 import api_pb2 as pb
from hakube.testing.wait import wait_for

pytestmark = pytest.mark.timeout(90)


def test_version_names_the_runtime_and_speaks_cri_v1(node):
    v = node.cri.version()
    assert v.runtime_name in ("containerd", "hakube-simulated")
    assert v.runtime_api_version == "v1"
    assert v.runtime_version


def test_runtime_reports_itself_ready(node):
    assert node.cri.conditions()["RuntimeReady"] is True


def test_a_sandbox_is_ready_and_keeps_its_metadata_and_labels(node):
    sid, cfg = node.run_pod(labels={"app": "web"})
    resp = node.cri.pod_sandbox_status(sid)
    assert resp.status.state == pb.SANDBOX_READY
    assert resp.status.metadata == cfg.metadata
    assert resp.status.labels["app"] == "web"
    assert resp.status.linux.namespaces.options.network == pb.NODE
    assert resp.status.created_at > 0


def test_a_container_runs_its_command_with_env_and_its_output_lands_in_its_log(node):
    pod = node.run_pod()
    cid = node.start_container(
        pod,
        command=["sh", "-c"],
        args=["echo hello $GREETEE; echo oops >&2; exit 0"],
        env={"GREETEE": "world"},
    )
    st = node.wait_state(cid, pb.CONTAINER_EXITED)
    assert (st.exit_code, st.reason) == (0, "Completed")
    assert st.log_path.endswith("/c/0.log")
    lines = sorted((x.stream, x.text) for x in logs.read(st.log_path))
    assert lines == [("stderr", "oops"), ("stdout", "hello world")]


def test_exit_code_reason_and_timestamps_are_reported_after_exit(node):
    pod = node.run_pod()
    cid = node.start_container(pod, command=["sh", "-c", "sleep 0.2; exit 3"])
    st = node.wait_state(cid, pb.CONTAINER_EXITED)
    assert st.exit_code == 3
    assert st.reason == "Error"
    assert 0 < st.created_at <= st.started_at < st.finished_at
    assert st.finished_at - st.started_at >= 150_000_000  # it did run for its 0.2 s


def test_a_created_container_waits_to_be_started(node):
    pod = node.run_pod()
    cid = node.start_container(pod, command=["true"], start=False)
    assert node.cri.container_status(cid).state == pb.CONTAINER_CREATED
    node.cri.start_container(cid)
    node.wait_state(cid, pb.CONTAINER_EXITED)


def test_exec_sync_returns_stdout_stderr_and_exit_code(node):
    pod = node.run_pod()
    cid = node.start_container(pod, command=["sleep", "300"], env={"WHO": "exec"})
    node.wait_state(cid, pb.CONTAINER_RUNNING)
    r = node.cri.exec_sync(cid, ["sh", "-c", "echo out $WHO; echo err >&2; exit 4"])
    assert (r.stdout, r.stderr, r.exit_code) == (b"out exec\n", b"err\n", 4)


def test_exec_sync_past_its_timeout_gives_call_timeout(node):
    pod = node.run_pod()
    cid = node.start_container(pod, command=["sleep", "300"])
    node.wait_state(cid, pb.CONTAINER_RUNNING)
    with pytest.raises(CallTimeout):
        node.cri.exec_sync(cid, ["sleep", "30"], timeout_seconds=1)


def test_exec_in_an_exited_container_fails(node):
    pod = node.run_pod()
    cid = node.start_container(pod, command=["true"])
    node.wait_state(cid, pb.CONTAINER_EXITED)
    with pytest.raises(Exception, match="CONTAINER_EXITED"):
        node.cri.exec_sync(cid, ["true"])


def test_stopping_a_container_ends_it_and_remove_is_idempotent(node):
    pod = node.run_pod()
    cid = node.start_container(pod, command=["sleep", "300"])
    node.wait_state(cid, pb.CONTAINER_RUNNING)
    node.cri.stop_container(cid, grace_seconds=0)
    st = node.cri.container_status(cid)
    assert st.state == pb.CONTAINER_EXITED
    assert st.exit_code != 0 and st.reason == "Error"
    node.cri.stop_container(cid, grace_seconds=0)  # again: no error
    node.cri.remove_container(cid)
    node.cri.remove_container(cid)  # again: no error
    with pytest.raises(NotFound):
        node.cri.container_status(cid)


def test_stopping_a_sandbox_kills_its_containers(node):
    pod = node.run_pod()
    cid = node.start_container(pod, command=["sleep", "300"])
    node.wait_state(cid, pb.CONTAINER_RUNNING)
    node.cri.stop_pod_sandbox(pod[0])
    assert node.cri.pod_sandbox_status(pod[0]).status.state == pb.SANDBOX_NOTREADY
    st = node.cri.container_status(cid)
    assert (st.state, st.exit_code, st.reason) == (pb.CONTAINER_EXITED, 137, "Error")
    node.cri.remove_pod_sandbox(pod[0])
    with pytest.raises(NotFound):
        node.cri.container_status(cid)
    node.cri.remove_pod_sandbox(pod[0])  # again: no error


def test_lists_filter_by_labels_state_and_sandbox(node):
    a = node.run_pod(labels={"hakube.io/test": "lists", "pod": "a"})
    b = node.run_pod(labels={"hakube.io/test": "lists", "pod": "b"})
    ca = node.start_container(a, command=["sleep", "300"], labels={"pod": "a", "role": "x"})
    cb = node.start_container(b, command=["true"], labels={"pod": "b", "role": "x"})
    node.wait_state(cb, pb.CONTAINER_EXITED)

    pods = node.cri.list_pod_sandboxes(labels={"hakube.io/test": "lists"})
    assert {p.id for p in pods} == {a[0], b[0]}
    assert [p.id for p in node.cri.list_pod_sandboxes(labels={"pod": "b"})] == [b[0]]
    assert {c.id for c in node.cri.list_containers(labels={"role": "x"})} == {ca, cb}
    running = node.cri.list_containers(labels={"role": "x"}, state=pb.CONTAINER_RUNNING)
    assert [c.id for c in running] == [ca]
    assert [c.id for c in node.cri.list_containers(sandbox_id=b[0])] == [cb]
    listed = node.cri.list_containers(container_id=ca)[0]
    assert (listed.pod_sandbox_id, listed.metadata.name, listed.labels["pod"]) == (a[0], "c", "a")


def test_a_host_network_sandbox_must_not_set_a_hostname(node):
    with pytest.raises(Exception, match="hostname"):
        node.run_pod(hostname="not-allowed")


def test_unknown_ids_give_not_found(node):
    for call in (
        lambda: node.cri.container_status("no-such-container"),
        lambda: node.cri.pod_sandbox_status("no-such-sandbox"),
        lambda: node.cri.stop_container("no-such-container"),
        lambda: node.cri.container_stats("no-such-container"),
        lambda: node.cri.exec_sync("no-such-container", ["true"]),
    ):
        with pytest.raises(NotFound) as info:
            call()
        assert info.value.code is not None and info.value.__cause__ is not None


def test_creating_a_container_from_an_absent_image_gives_not_found(node):
    pod = node.run_pod()
    node.image = node.missing_image
    with pytest.raises(NotFound, match="never-pushed"):
        node.start_container(pod, command=["true"])


def test_image_status_shows_present_images_and_none_for_absent_ones(node):
    img = node.cri.image_status(node.image)
    assert img is not None and img.id.startswith("sha256:") and img.size > 0
    assert node.image in img.repo_tags
    assert node.cri.image_status(node.missing_image) is None
    assert any(i.id == img.id for i in node.cri.list_images())
    # containerd samples image filesystem usage periodically (every second in the harness)
    wait_for(
        lambda: node.cri.image_fs_info()[0].used_bytes.value > 0,
        10,
        "image filesystem usage to be sampled",
    )
    assert node.cri.image_fs_info()[0].fs_id.mountpoint


def test_pulling_an_image_the_registry_lacks_fails_clearly(node):
    with pytest.raises(ImagePullFailed) as info:
        node.cri.pull_image(node.missing_image, timeout=30)
    assert info.value.image == node.missing_image
    assert "never-pushed" in str(info.value)


def test_pulling_an_image_makes_it_present_and_remove_image_drops_it(node):
    ref = node.pullable()
    node.cri.remove_image(ref)
    assert node.cri.image_status(ref) is None
    image_ref = node.cri.pull_image(ref)
    img = node.cri.image_status(ref)
    assert img is not None and img.id == image_ref
    node.cri.remove_image(ref)
    assert node.cri.image_status(ref) is None
    node.cri.remove_image(ref)  # again: no error


def test_stats_report_cpu_and_memory_of_running_containers(node):
    pod = node.run_pod(labels={"stats": "yes"})
    cid = node.start_container(
        pod, command=["sh", "-c", "while true; do :; done"], labels={"stats": "yes"}
    )
    node.wait_state(cid, pb.CONTAINER_RUNNING)
    wait_for(
        lambda: node.cri.container_stats(cid).cpu.usage_core_nano_seconds.value > 0,
        10,
        "CPU usage to show up",
    )
    s = node.cri.container_stats(cid)
    assert s.attributes.id == cid and s.attributes.labels["stats"] == "yes"
    assert s.memory.working_set_bytes.value > 0
    listed = node.cri.list_container_stats(labels={"stats": "yes"})
    assert [x.attributes.id for x in listed] == [cid]
    ps = node.cri.pod_sandbox_stats(pod[0])
    assert ps.attributes.id == pod[0]
    assert ps.linux.cpu.usage_core_nano_seconds.value > 0
    assert cid in [c.attributes.id for c in ps.linux.containers]
    listed_pods = node.cri.list_pod_sandbox_stats(labels={"stats": "yes"})
    assert [x.attributes.id for x in listed_pods] == [pod[0]]
