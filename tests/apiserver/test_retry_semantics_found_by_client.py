"""API-server behaviours the client work ran into, pinned down in-process.

The ObjectAPI runs on a real StoreFSM with a proposer that applies each operation at once and
can be told to "lose the answer" of one proposal (apply it, then report OutcomeUnknown), which is
what a client sees when its master dies right after committing. Each test pins a behaviour the
client once had to work around: a retried write with the same request id answers as the first
attempt would have.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
from typing import Any

import pytest

from hakube.api import convert, kinds
from hakube.api.v1 import api_pb2, pod_pb2
from hakube.apiserver.errors import ApiError, Conflict, NotFound
from hakube.apiserver.metrics import MasterMetrics
from hakube.apiserver.objects import ObjectAPI
from hakube.apiserver.watch import WatchHub
from hakube.store import fsm as store
from hakube.store import ops
from hakube.store.errors import OutcomeUnknown
from hakube.store.fsm import StoreFSM

pytestmark = pytest.mark.timeout(30)


class LossyProposer:
    """Applies operations synchronously; ``lose_next`` applies the next write but fails it."""

    def __init__(self, fsm: StoreFSM) -> None:
        self.fsm = fsm
        self.lose_next = False

    def submit(self, op: store.Op) -> concurrent.futures.Future[store.Result]:
        fut: concurrent.futures.Future[store.Result] = concurrent.futures.Future()
        [result] = self.fsm.apply_batch([op], _doApply=True)
        if self.lose_next and op[0] != "b":
            self.lose_next = False
            fut.set_exception(OutcomeUnknown("answer lost"))
        else:
            fut.set_result(result)
        return fut


def make_api() -> tuple[ObjectAPI, LossyProposer]:
    fsm = StoreFSM()
    proposer = LossyProposer(fsm)
    uids = (f"uid-{i}" for i in itertools.count())
    api = ObjectAPI(
        fsm,
        proposer,
        clock=lambda: 1_700_000_000.0,  # type: ignore[arg-type]
        new_uid=lambda: next(uids),
    )
    run(
        api.create(
            api_pb2.CreateRequest(
                object=kinds.wrap(kinds.BY_NAME["Namespace"].message(metadata={"name": "default"}))
            )
        )
    )
    return api, proposer


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def pod(name: str = "web", **meta: Any) -> pod_pb2.Pod:
    return pod_pb2.Pod(
        metadata={"name": name, "namespace": "default", **meta},
        spec={"containers": [{"name": "c", "image": "busybox"}]},
    )


def parse(data: bytes) -> Any:
    obj = api_pb2.Object()
    obj.ParseFromString(data)
    return kinds.unwrap(obj)[1]


def test_an_update_that_only_omits_defaults_changes_nothing() -> None:
    api, _ = make_api()
    created = parse(
        run(api.create(api_pb2.CreateRequest(object=kinds.wrap(pod()), request_id="c1")))
    )
    same = pod()  # as in the manifest: no defaults spelled out
    out = parse(run(api.update(api_pb2.UpdateRequest(object=kinds.wrap(same)), status=False)))
    assert out.metadata.resource_version == created.metadata.resource_version
    assert out.metadata.generation == 1


def test_an_unchanged_update_of_an_object_without_status_changes_nothing() -> None:
    api, _ = make_api()
    dep = convert.from_dict(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "selector": {"matchLabels": {"a": "b"}},
                "template": {
                    "metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "i"}]},
                },
            },
        }
    )
    created = parse(run(api.create(api_pb2.CreateRequest(object=kinds.wrap(dep)))))
    out = parse(run(api.update(api_pb2.UpdateRequest(object=kinds.wrap(created)), status=False)))
    assert out.metadata.resource_version == created.metadata.resource_version


def test_a_create_retried_after_a_lost_answer_returns_the_first_result() -> None:
    api, proposer = make_api()
    proposer.lose_next = True
    req = api_pb2.CreateRequest(object=kinds.wrap(pod()), request_id="same-id")
    with pytest.raises(ApiError):
        run(api.create(req))
    out = parse(run(api.create(req)))
    assert out.metadata.name == "web" and out.metadata.uid == "uid-1"


def test_a_generate_name_create_retried_after_a_lost_answer_names_the_stored_object() -> None:
    api, proposer = make_api()
    proposer.lose_next = True
    req = api_pb2.CreateRequest(
        object=kinds.wrap(pod("", generate_name="web-")), request_id="gen-id"
    )
    with pytest.raises(ApiError):
        run(api.create(req))
    out = parse(run(api.create(req)))
    stored = [k[1] for k in api.fsm.objects["Pod"]]
    assert stored == [out.metadata.name]


def test_a_cas_update_retried_after_a_lost_answer_succeeds() -> None:
    api, proposer = make_api()
    created = parse(run(api.create(api_pb2.CreateRequest(object=kinds.wrap(pod())))))
    new = pod(labels={"v": "2"}, resource_version=created.metadata.resource_version)
    req = api_pb2.UpdateRequest(object=kinds.wrap(new), request_id="upd-id")
    proposer.lose_next = True
    with pytest.raises(ApiError):
        run(api.update(req, status=False))
    try:
        run(api.update(req, status=False))
    except Conflict as exc:
        pytest.fail(f"retry of an applied update failed: {exc}")


def test_a_delete_retried_after_a_lost_answer_reports_the_deletion() -> None:
    api, proposer = make_api()
    run(api.create(api_pb2.CreateRequest(object=kinds.wrap(pod()))))
    req = api_pb2.DeleteRequest(kind="Pod", namespace="default", name="web", request_id="del")
    proposer.lose_next = True
    with pytest.raises(ApiError):
        run(api.delete(req))
    try:
        run(api.delete(req))
    except NotFound as exc:
        pytest.fail(f"retry of an applied delete failed: {exc}")


def test_a_watch_from_a_revision_ahead_of_this_replica_skips_what_the_client_saw() -> None:
    async def scenario() -> list[int]:
        fsm = StoreFSM()
        hub = WatchHub(fsm, MasterMetrics())
        hub.attach(asyncio.get_running_loop())
        kind = kinds.BY_NAME["ConfigMap"]
        value = kind.message(metadata={"name": "a", "namespace": "default"}).SerializeToString()

        def write(name: str) -> None:
            fsm.apply_batch(
                [ops.wire(ops.Create("", "ConfigMap", "default", name, value, {}, {}, 0))],
                _doApply=True,
            )

        write("a")  # this replica is at revision 1; the client has seen up to revision 3
        w = hub.subscribe(kind, None, None, None, 3)
        for name in ("b", "c", "d"):  # revisions 2, 3 (already seen) and 4 (new)
            write(name)
        await asyncio.sleep(0.05)
        got = []
        while not w.queue.empty():
            data = w.queue.get_nowait()
            assert data is not None
            ev = api_pb2.WatchEvent()
            ev.ParseFromString(data)
            got.append(int(ev.resource_version))
        return got

    assert run(scenario()) == [4]
