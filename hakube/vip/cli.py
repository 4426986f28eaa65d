"""``hakube keepalived render``: write one master's keepalived.conf and readiness check.

The flags are a settings dataclass (``hakube.settings``: each also a ``HAKUBE_*`` variable and
a config key); its ``validate()`` builds the :class:`VipSettings` and checks them, so every
mistake, a bad number as much as a VIP outside the subnet, comes out as one line naming the
flag, with exit status 2. Nothing is written unless all settings pass.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass

from hakube.settings import add_flags, setting
from hakube.vip.configtest import ConfigTestError, config_test
from hakube.vip.render import write_files
from hakube.vip.scriptaccess import script_problem
from hakube.vip.settings import SettingsError, VipSettings

PROG = "hakube keepalived render"

# VipSettings field -> the flag that sets it, so its errors speak the user's language.
_FLAGS = {
    "vip_prefix": "--vip",
    "virtual_router_id": "--router-id",
}


@dataclass(frozen=True)
class RenderSettings:
    """``hakube keepalived render``: the VIP (hakube.vip.settings.VipSettings) and where to
    write its files."""

    vip: str = setting("", required=True, metavar="ADDRESS[/PREFIX]")
    """Virtual IPv4 address, optionally with the prefix it is added with."""
    interface: str = setting("", required=True, metavar="NAME")
    """Interface that carries the VIP, e.g. eth0."""
    interface_address: str = setting("", required=True, metavar="ADDRESS/PREFIX")
    """This master's ADDRESS/PREFIX on --interface; VRRP source and the VIP's subnet."""
    peers: tuple[str, ...] = setting((), required=True, metavar="ADDRESS,...")
    """The other masters' addresses, comma separated."""
    router_id: int = 51
    """VRRP virtual_router_id 1..255, equal on every master and unique on the segment."""
    priority: int = 100
    """1..254; differ per master."""
    readyz_url: str = setting("", required=True, metavar="URL")
    """The local master's readiness URL, http://127.0.0.1:PORT/readyz."""
    advert_int: float = 0.5
    """Seconds between VRRP adverts."""
    vrrp_version: int = 3
    """2 or 3."""
    auth_pass: str = setting("", metavar="PASS")
    """VRRPv2 PASS authentication, up to 8 characters."""
    script_user: str = setting("nobody", metavar="USER")
    """User the check runs as."""
    check_interval: int = 1
    """Seconds between checks."""
    check_timeout: float = 0.8
    """Seconds a check may take."""
    check_fall: int = 2
    """Failures before giving up the VIP."""
    check_rise: int = 2
    """Passes before holding it again."""
    out_dir: str = setting("/etc/keepalived", metavar="DIR")
    """Where to write."""
    config_test: bool = False
    """After writing, ask keepalived --config-test whether it accepts the file."""

    def vip_settings(self) -> VipSettings:
        """The VIP these flags describe (not yet checked: :meth:`validate`)."""
        vip, _, prefix = self.vip.partition("/")
        if prefix and not prefix.strip().isdigit():
            raise ValueError(f"--vip: {prefix!r} is not a whole number")
        return VipSettings(
            vip=vip,
            vip_prefix=int(prefix) if prefix else None,
            interface=self.interface,
            interface_address=self.interface_address,
            peers=self.peers,
            readyz_url=self.readyz_url,
            virtual_router_id=self.router_id,
            priority=self.priority,
            advert_int=self.advert_int,
            vrrp_version=self.vrrp_version,
            auth_pass=self.auth_pass or None,
            script_user=self.script_user,
            check_interval=self.check_interval,
            check_timeout=self.check_timeout,
            check_fall=self.check_fall,
            check_rise=self.check_rise,
            notes=(f"{PROG} for {self.interface_address} on {self.interface}",),
        )

    def validate(self) -> None:
        try:
            self.vip_settings().validate()
        except SettingsError as exc:
            flag = _FLAGS.get(exc.field, "--" + exc.field.replace("_", "-"))
            raise ValueError(f"{flag}{str(exc)[len(exc.field) :]}") from None


def add_parser(
    subparsers: argparse._SubParsersAction,
) -> dict[str, Callable[[RenderSettings], int]]:
    """Register ``keepalived render``; returns the runner table hakube's main CLI expects."""
    top = subparsers.add_parser("keepalived", help="configure keepalived for the master VIP")
    sub = top.add_subparsers(dest="keepalived_command", required=True, metavar="ACTION")
    p = sub.add_parser(
        "render",
        help="write keepalived.conf and its readiness check for this master",
        description=__doc__.split("\n")[0],
    )
    add_flags(p, RenderSettings)
    return {"keepalived": run}


def run(s: RenderSettings) -> int:
    """Carry out ``hakube keepalived render`` with valid settings; 0 on success, 2 if the
    files cannot be written, 1 if the check's user cannot run it or keepalived rejects them."""
    settings = s.vip_settings()
    try:
        conf, script = write_files(settings, s.out_dir)
    except OSError as exc:
        print(f"{PROG}: --out-dir: cannot write {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    problem = script_problem(script, settings.script_user)
    if problem is not None:
        print(
            f"{PROG}: --script-user: {problem}; keepalived would report the check as passed "
            f"without running it (render into a directory {settings.script_user} can reach, "
            "e.g. /etc/keepalived)",
            file=sys.stderr,
        )
        return 1
    if s.config_test:
        try:
            config_test(conf)
        except ConfigTestError as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 1
    print(f"wrote {conf} and {script}")
    return 0
