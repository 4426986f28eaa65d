"""What one master's keepalived needs to know, and the rules that keep a VIP setup sane.

Every master renders its own keepalived.conf from a :class:`VipSettings`. The settings are
checked here, before anything is written, because keepalived itself is lenient: it logs a bad
value, ignores it and starts anyway, and an operator finds out only when the VIP does not move.
Each rule fails with one line that names the field and says what would be accepted.

Invariants the rendered configuration relies on:

- IPv4 only, unicast only: the VIP lives in the subnet of ``interface_address`` and every master
  lists the others explicitly (clouds and many switches drop VRRP multicast).
- Every instance starts as BACKUP with ``nopreempt``: a master that comes back does not take the
  VIP from a healthy one, which would cut every client connection for nothing.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

# Linux interface names: at most 15 bytes, no slash, colon or blank.
_IFNAME = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")
# Unix user names as Debian's adduser accepts them by default.
_USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
# keepalived's config tokenizer splits on blanks and treats ! and # as comment starts.
_AUTH_PASS = re.compile(r"^[\x21-\x7e]{1,8}$")
_INSTANCE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class SettingsError(ValueError):
    """A setting that cannot be rendered; ``str()`` is one line naming the field."""

    def __init__(self, field_name: str, problem: str) -> None:
        super().__init__(f"{field_name}: {problem}")
        self.field = field_name


@dataclass(frozen=True)
class VipSettings:
    """One master's view of the VIP. Field defaults are what a three-master cluster wants."""

    vip: str
    """The virtual IPv4 address clients use, e.g. ``192.0.2.100``."""

    interface: str
    """The interface that carries the VIP and the VRRP adverts, e.g. ``eth0``."""

    interface_address: str
    """This master's own address on ``interface`` with its prefix, e.g. ``192.0.2.11/24``. It is
    the VRRP source address (``unicast_src_ip``) and defines the subnet the VIP must sit in."""

    peers: tuple[str, ...]
    """The other masters' addresses on the same VRRP segment; adverts go to each of them."""

    readyz_url: str
    """The local master's readiness endpoint, ``http://127.0.0.1:PORT/readyz`` with the port of
    its ``--metrics-listen``. It answers 200 only while the master is part of a quorum with a
    leader, so a master cut off from the majority gives the VIP away. No default: the master
    serves no metrics port unless told to, and a guessed port would fail every check."""

    virtual_router_id: int = 51
    """VRRP router id, 1..255. Must be equal on all masters and unique on the segment, because it
    also picks the VIP's virtual MAC; two clusters on one LAN need two ids."""

    priority: int = 100
    """1..254. With ``nopreempt`` it only decides who wins when several start at once; give the
    masters different values so that start-up is deterministic. 255 is reserved by VRRP for the
    owner of the address, which a floating VIP never is."""

    vip_prefix: int | None = None
    """Prefix length the VIP is added with; None means the prefix of ``interface_address``, so the
    VIP becomes a secondary address of the existing subnet and adds no route."""

    vrrp_version: int = 3
    """2 or 3. Version 3 (RFC 5798) allows sub-second adverts but has no authentication."""

    advert_int: float = 0.5
    """Seconds between adverts. A dead holder is replaced after 3 x ``advert_int`` plus a skew
    below one ``advert_int``: ~1.8 s at 0.5 s, measured here, which leaves room in the 3.5 s
    budget for writes through the VIP after a master dies; at 1 s it is ~3.6 s, over budget.
    Two adverts a second cost nothing, and ``max_auto_priority`` keeps a busy master from
    missing them. Whole seconds 1..255 for VRRPv2; 0.01..40.95 in steps of 0.01 for VRRPv3."""

    auth_pass: str | None = None
    """VRRPv2 PASS authentication, 1..8 printable characters. It only guards against mistakes
    (another cluster with the same router id), not attackers: it is sent in clear."""

    check_interval: int = 1
    """Seconds between two runs of the readiness check; keepalived takes whole seconds only."""

    check_timeout: float = 0.8
    """Seconds the check waits for ``/readyz`` before it counts as failed."""

    check_fall: int = 2
    """Failed checks in a row before this master gives up the VIP. 2 rides out one slow answer."""

    check_rise: int = 2
    """Passed checks in a row before this master may hold the VIP again."""

    script_user: str = "nobody"
    """Unix user keepalived runs the check as; the check needs no privileges at all."""

    python: str = "/usr/bin/python3"
    """Interpreter of the check script. Debian's own, so that a virtualenv that hakube may be
    installed into is not on the path keepalived vets for script security."""

    instance_name: str = "hakube_vip"
    """Name of the vrrp_instance, seen in keepalived's logs."""

    notes: tuple[str, ...] = field(default=(), compare=False)
    """Free text put as comments at the top of the rendered file (who rendered it, from what)."""

    def validate(self) -> None:
        """Raise :class:`SettingsError` for the first rule the settings break."""
        self._check_interface()
        self._check_addresses()
        self._check_vrrp()
        self._check_health_check()

    # -- the rules, grouped by what they protect --------------------------------------------------

    def _check_interface(self) -> None:
        if not self.interface:
            raise SettingsError("interface", "missing; name the interface that carries the VIP")
        if not _IFNAME.match(self.interface):
            raise SettingsError("interface", f"{self.interface!r} is not a Linux interface name")

    def _check_addresses(self) -> None:
        iface = self.own_interface()
        vip = _ipv4("vip", self.vip)
        if self.vip_prefix is not None and not 1 <= self.vip_prefix <= 32:
            raise SettingsError("vip_prefix", f"{self.vip_prefix} is not within 1..32")
        if vip not in iface.network:
            raise SettingsError(
                "vip",
                f"{vip} is not inside {iface.network}, the subnet of this master's address {iface}",
            )
        if vip in (iface.network.network_address, iface.network.broadcast_address):
            raise SettingsError(
                "vip", f"{vip} is the network or broadcast address of {iface.network}"
            )
        if vip == iface.ip:
            raise SettingsError(
                "vip",
                f"{vip} is this master's own address; the VIP must be an address no host owns",
            )
        if not self.peers:
            raise SettingsError(
                "peers",
                "none given; list the other masters' addresses (a single master needs no VIP)",
            )
        seen: set[ipaddress.IPv4Address] = set()
        for text in self.peers:
            peer = _ipv4("peers", text)
            if peer in seen:
                raise SettingsError("peers", f"{peer} is listed twice")
            if peer == iface.ip:
                raise SettingsError(
                    "peers",
                    f"{peer} is this master's own address; list only the other masters",
                )
            if peer == vip:
                raise SettingsError("peers", f"{peer} is the VIP, not a master")
            seen.add(peer)

    def _check_vrrp(self) -> None:
        if not 1 <= self.virtual_router_id <= 255:
            raise SettingsError(
                "virtual_router_id", f"{self.virtual_router_id} is not within 1..255"
            )
        if not 1 <= self.priority <= 254:
            raise SettingsError("priority", f"{self.priority} is not within 1..254")
        if self.vrrp_version not in (2, 3):
            raise SettingsError("vrrp_version", f"{self.vrrp_version} is not 2 or 3")
        adv = self.advert_int
        if not math.isfinite(adv) or adv <= 0:
            raise SettingsError("advert_int", f"{adv} is not a positive number of seconds")
        if self.vrrp_version == 2:
            if adv != int(adv) or not 1 <= adv <= 255:
                raise SettingsError(
                    "advert_int",
                    f"{adv} is not whole seconds 1..255, which VRRPv2 requires; "
                    "use VRRP version 3 for sub-second adverts",
                )
        elif abs(adv * 100 - round(adv * 100)) > 1e-6 or not 0.01 <= adv <= 40.95:
            raise SettingsError(
                "advert_int",
                f"{adv} is not 0.01..40.95 s in steps of 0.01 (VRRPv3 counts centiseconds)",
            )
        if self.auth_pass is not None:
            if self.vrrp_version == 3:
                raise SettingsError(
                    "auth_pass",
                    "VRRPv3 has no authentication (RFC 5798 dropped it) and keepalived would "
                    "silently ignore the password; drop it or use VRRP version 2",
                )
            if not _AUTH_PASS.match(self.auth_pass) or set(self.auth_pass) & set("!#\"'"):
                raise SettingsError(
                    "auth_pass",
                    "must be 1..8 printable characters without "
                    "blanks, quotes, ! or # (keepalived would cut "
                    "it short)",
                )
        if not _INSTANCE.match(self.instance_name):
            raise SettingsError(
                "instance_name", f"{self.instance_name!r} must be 1..32 of A-Z a-z 0-9 _ -"
            )

    def _check_health_check(self) -> None:
        url = urlsplit(self.readyz_url)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise SettingsError("readyz_url", f"{self.readyz_url!r} is not an http(s) URL")
        if not 1 <= self.check_interval <= 3600:
            raise SettingsError(
                "check_interval", f"{self.check_interval} is not whole seconds 1..3600"
            )
        if not 0 < self.check_timeout <= self.check_interval:
            raise SettingsError(
                "check_timeout",
                f"{self.check_timeout} must be > 0 and at "
                f"most the check interval ({self.check_interval} s) so checks do not pile up",
            )
        for name in ("check_fall", "check_rise"):
            if not 1 <= getattr(self, name) <= 100:
                raise SettingsError(name, f"{getattr(self, name)} is not within 1..100")
        if not _USER.match(self.script_user):
            raise SettingsError("script_user", f"{self.script_user!r} is not a user name")
        if not self.python.startswith("/") or any(c.isspace() for c in self.python):
            raise SettingsError(
                "python", f"{self.python!r} must be an absolute path without blanks"
            )

    # -- derived values the template uses --------------------------------------------------------

    def own_interface(self) -> ipaddress.IPv4Interface:
        """``interface_address`` parsed; it must carry a prefix, or the subnet is unknown."""
        if "/" not in self.interface_address:
            raise SettingsError(
                "interface_address",
                f"{self.interface_address!r} needs a prefix, e.g. 192.0.2.11/24",
            )
        try:
            iface = ipaddress.ip_interface(self.interface_address)
        except ValueError as exc:
            raise SettingsError(
                "interface_address", f"{self.interface_address!r} is not an address/prefix"
            ) from exc
        if not isinstance(iface, ipaddress.IPv4Interface):
            raise SettingsError("interface_address", "IPv6 is not supported yet; use IPv4")
        return iface

    def vip_with_prefix(self) -> str:
        """The VIP as keepalived adds it: ``address/prefix``."""
        prefix = self.vip_prefix or self.own_interface().network.prefixlen
        return f"{self.vip}/{prefix}"


def _ipv4(field_name: str, text: str) -> ipaddress.IPv4Address:
    try:
        addr = ipaddress.ip_address(text.strip())
    except ValueError as exc:
        raise SettingsError(field_name, f"{text!r} is not an IP address") from exc
    if not isinstance(addr, ipaddress.IPv4Address):
        raise SettingsError(field_name, f"{addr} is IPv6, which is not supported yet; use IPv4")
    return addr
