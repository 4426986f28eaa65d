"""Reading request bodies, and the small answers every REST handler shares."""

from __future__ import annotations

import json
from typing import Any

import yaml

from hakube.apiserver.rest import codec, k8sproto
from hakube.apiserver.rest.http import Request, Response
from hakube.apiserver.rest.status import BadRequest, UnsupportedMediaType

JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
PROTOBUF = "application/vnd.kubernetes.protobuf"
PATCH_RETRIES = 5
"""Attempts of a patch whose base the object changed under (without a resourceVersion of the
caller's; with one, the first conflict is the caller's)."""


def ok(doc: Any, status: int = 200) -> Response:
    return Response(status, codec.dumps(doc))


def dry_run(req: Request) -> bool:
    return "All" in req.query.get("dryRun", [])


class NoAliasLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing aliases (``*name``)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            raise yaml.YAMLError("YAML aliases are not accepted")
        return super().compose_node(parent, index)


def read_body(req: Request) -> Any:
    """A request's body as JSON data (YAML for server-side apply; protobuf for a create, as
    kubectl's generators send, and a SelfSubjectAccessReview); BadRequest or
    UnsupportedMediaType otherwise."""
    ctype = req.headers.get("content-type", JSON).split(";")[0].strip()
    if ctype == PROTOBUF:
        return _protobuf(req)
    try:
        if ctype == APPLY_PATCH:
            # Server-side apply bodies are YAML (or JSON); aliases are refused, as a small
            # body of nested aliases would expand without bound once copied.
            return yaml.load(req.body, Loader=NoAliasLoader)  # noqa: S506 - a SafeLoader
        return json.loads(req.body or b"null")
    except (ValueError, RecursionError, yaml.YAMLError) as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from exc


def _protobuf(req: Request) -> Any:
    """A protobuf body as the JSON data it stands for: only creates (what kubectl's generators
    send); an update or patch sent this way is refused rather than half read."""
    try:
        api_version, kind, raw = k8sproto.unwrap(req.body)
        if kind == "SelfSubjectAccessReview":
            return k8sproto.self_subject_access_review(raw)
        if req.method == "POST":
            return k8sproto.decode(kind, api_version, raw)
    except k8sproto.ProtoError as exc:
        raise BadRequest(f"the protobuf body does not decode: {exc}") from exc
    except k8sproto.Unmapped as exc:
        raise UnsupportedMediaType(
            f"{PROTOBUF} body: {exc}; send it as application/json (kubectl create -f)"
        ) from exc
    raise UnsupportedMediaType(
        f"{PROTOBUF} bodies are read for creates only: send application/json"
    )
