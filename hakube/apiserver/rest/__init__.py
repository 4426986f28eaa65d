"""The Kubernetes REST API: a second door to the same object service, for real ``kubectl``
and Kubernetes client libraries.

Every request goes through the gRPC door's own machinery (``ApiServer.invoke`` / ``watch``:
authorization, validation, admission, store, watch hub, metrics, audit); this package only
translates HTTP paths, JSON and Kubernetes' conventions to hakube's requests and back.

* ``http``: HTTPS/1.1 on asyncio streams, client certificates required.
* ``routes``: URL paths to kinds, names and subresources; discovery documents.
* ``status``: ApiError -> Kubernetes ``Status`` with the HTTP code and reason.
* ``codec``: objects, lists, watch events and Tables as JSON.
* ``patch``: JSON merge patch, JSON patch, strategic merge patch.
* ``openapi``: OpenAPI v2/v3 generated from the protobuf descriptors.
* ``bodies``: request bodies (JSON, YAML for server-side apply, the one protobuf body read
  with ``k8sproto``).
* ``handlers``: the verbs; ``subresources``: scale, binding, log, exec (``websocket``), access
  reviews; ``server``: the whole door as one runnable piece.
"""
