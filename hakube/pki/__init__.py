"""The cluster's public-key infrastructure: one CA, the certificates it issues, bootstrap tokens.

Identities follow Kubernetes: a certificate's subject CN is the user name and its O entries are
the groups. The names hakube issues are in ``names``; the on-disk layout (modes, atomic writes)
in ``files``; issuing and reading certificates in ``certs``; TLS contexts for Raft and gRPC in
``tls``; node bootstrap tokens in ``bootstrap``.
"""
