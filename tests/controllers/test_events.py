"""The event recorder writes Kubernetes Events and folds repeats into one with a count."""

from __future__ import annotations

import pytest

from hakube.api.v1 import core_pb2
from hakube.client import Client
from hakube.client.events import EventRecorder

pytestmark = pytest.mark.timeout(60)


def test_repeats_of_one_event_are_counted_not_duplicated(client: Client) -> None:
    cm = client.configmaps.create(core_pb2.ConfigMap(metadata={"name": "evented"}))
    rec = EventRecorder(client, "test-component", host="h1")
    try:
        for _ in range(3):
            rec.warning(cm, "BackOff", "restarting failed container")
        rec.normal(cm, "Synced", "all good")
        rec.flush()
    finally:
        rec.close()
    events = client.events.list(
        namespace="default", field_selector="involvedObject.name=evented"
    ).items
    by_reason = {e.reason: e for e in events}
    assert sorted(by_reason) == ["BackOff", "Synced"]
    backoff = by_reason["BackOff"]
    assert backoff.count == 3 and backoff.type == "Warning"
    assert backoff.involved_object.kind == "ConfigMap"
    assert backoff.involved_object.uid == cm.metadata.uid
    assert backoff.source.component == "test-component"
    assert backoff.last_timestamp >= backoff.first_timestamp
