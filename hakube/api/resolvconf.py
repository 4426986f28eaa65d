"""Reading a resolv.conf (resolv.conf(5)): the node's resolvers, for cluster DNS' upstreams
and for pods with ``dnsPolicy: Default``."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ResolvConf:
    nameservers: list[str] = field(default_factory=list)
    searches: list[str] = field(default_factory=list)
    """The last ``search`` or ``domain`` line wins, as in the C library."""
    options: list[str] = field(default_factory=list)


def read(path: str) -> ResolvConf:
    """The resolv.conf at ``path``; a missing or unreadable file has nothing in it."""
    try:
        with open(path) as f:
            return parse(f.read())
    except OSError:
        return ResolvConf()


def parse(text: str) -> ResolvConf:
    out = ResolvConf()
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) < 2:
            continue
        if words[0] == "nameserver":
            out.nameservers.append(words[1])
        elif words[0] in ("search", "domain"):
            out.searches[:] = words[1:]
        elif words[0] == "options":
            out.options.extend(words[1:])
    return out
