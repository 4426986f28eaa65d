"""Authorization: who may do what, decided for every API request after authentication.

* ``attributes``: what a request asks to do (verb, API group, resource/subresource, namespace,
  name), read from each API method's request message.
* ``rules``: RBAC rule matching (Kubernetes semantics) and the in-memory index of roles and
  bindings, kept current from the store's event history.
* ``node``: the node authorizer and node restriction (what ``system:node:NAME`` may touch).
* ``authorizer``: the chain (system:masters, node, RBAC) and the one-line denial.
* ``defaults``: the default roles and bindings the masters create and keep reconciled.
* ``validation``: checks of the RBAC kinds.
* ``review``: AuthorizationService (access reviews, whoami).
"""
