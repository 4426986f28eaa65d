"""The web console: the cluster at a glance, nodes, workloads, pods with their logs, Services,
live from watches, with a few confirmed actions -- served on loopback by ``hakube console``.

The console acts with the credentials of the client config it runs with (as ``kubectl proxy``
does), so what a user can see and do in it is what RBAC grants that user. It listens on
loopback only, and the browser must present the token ``hakube console`` prints (turned into
an HttpOnly, SameSite=Strict cookie) before any page or API answers.
"""
