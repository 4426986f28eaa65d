"""The service proxy: programs each node's kernel (nftables) so Services route.

Modules: ``rules`` (Services + Endpoints -> the chains, sets and map elements of the proxy's
table; pure), ``nft`` (a ruleset as one ``nft -f`` transaction, whole or as a difference, and
running it), ``proxier`` (informers, the batched sync loop, metrics). ``hakube proxy``
(``hakube/cli/proxy_cmd.py``) runs it as its own process on every node.
"""

from hakube.proxy.proxier import Proxier, ProxyConfig

__all__ = ["Proxier", "ProxyConfig"]
