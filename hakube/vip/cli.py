"""``hakube keepalived render``: write one master's keepalived.conf and readiness check.

Flags are read as plain strings and converted here, so that every mistake, a bad number as much
as a VIP outside the subnet, comes out as one line naming the flag, with exit status 2. Nothing
is written unless all settings pass.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from hakube.vip.configtest import ConfigTestError, config_test
from hakube.vip.render import write_files
from hakube.vip.scriptaccess import script_problem
from hakube.vip.settings import SettingsError, VipSettings

PROG = "hakube keepalived render"

# Settings field -> the flag that sets it, so errors speak the user's language.
_FLAGS = {
    "vip": "--vip",
    "vip_prefix": "--vip",
    "interface": "--interface",
    "interface_address": "--interface-address",
    "peers": "--peers",
    "virtual_router_id": "--router-id",
    "priority": "--priority",
    "readyz_url": "--readyz-url",
    "advert_int": "--advert-int",
    "vrrp_version": "--vrrp-version",
    "auth_pass": "--auth-pass",
    "script_user": "--script-user",
    "check_interval": "--check-interval",
    "check_timeout": "--check-timeout",
    "check_fall": "--check-fall",
    "check_rise": "--check-rise",
}
_REQUIRED = ("vip", "interface", "interface_address", "peers", "readyz_url")


class _FlagError(ValueError):
    pass


def add_parser(
    subparsers: argparse._SubParsersAction,
) -> dict[str, Callable[[argparse.Namespace], int]]:
    """Register ``keepalived render``; returns the runner table hakube's main CLI expects."""
    top = subparsers.add_parser("keepalived", help="configure keepalived for the master VIP")
    sub = top.add_subparsers(dest="keepalived_command", required=True, metavar="ACTION")
    p = sub.add_parser(
        "render",
        help="write keepalived.conf and its readiness check for this master",
        description=__doc__.split("\n")[0],
    )
    p.add_argument("--vip", help="virtual IPv4 address, optionally ADDRESS/PREFIX")
    p.add_argument("--interface", help="interface that carries the VIP, e.g. eth0")
    p.add_argument(
        "--interface-address",
        help="this master's ADDRESS/PREFIX on --interface; VRRP source and the VIP's subnet",
    )
    p.add_argument("--peers", help="the other masters' addresses, comma separated")
    p.add_argument("--router-id", default="51", help="VRRP virtual_router_id 1..255 (51)")
    p.add_argument("--priority", default="100", help="1..254; differ per master (100)")
    p.add_argument(
        "--readyz-url", help="the local master's readiness URL, http://127.0.0.1:PORT/readyz"
    )
    p.add_argument("--advert-int", default="0.5", help="seconds between VRRP adverts (0.5)")
    p.add_argument("--vrrp-version", default="3", help="2 or 3 (3)")
    p.add_argument("--auth-pass", help="VRRPv2 PASS authentication, up to 8 characters")
    p.add_argument("--script-user", default="nobody", help="user the check runs as (nobody)")
    p.add_argument("--check-interval", default="1", help="seconds between checks (1)")
    p.add_argument("--check-timeout", default="0.8", help="seconds a check may take (0.8)")
    p.add_argument("--check-fall", default="2", help="failures before giving up the VIP (2)")
    p.add_argument("--check-rise", default="2", help="passes before holding it again (2)")
    p.add_argument("--out-dir", default="/etc/keepalived", help="where to write (/etc/keepalived)")
    p.add_argument(
        "--config-test",
        action="store_true",
        help="after writing, ask keepalived --config-test whether it accepts the file",
    )
    return {"keepalived": run}


def run(args: argparse.Namespace) -> int:
    """Carry out ``hakube keepalived ACTION``; 0 on success, 2 on bad input, 1 if rejected."""
    if getattr(args, "keepalived_command", None) != "render":
        return _fail(f"unknown action {getattr(args, 'keepalived_command', None)!r}")
    try:
        settings = settings_from_args(args)
        settings.validate()
    except _FlagError as exc:
        return _fail(str(exc))
    except SettingsError as exc:
        flag = _FLAGS.get(exc.field, exc.field)
        return _fail(f"{flag}{str(exc)[len(exc.field) :]}")
    try:
        conf, script = write_files(settings, args.out_dir)
    except OSError as exc:
        return _fail(f"--out-dir: cannot write {exc.filename}: {exc.strerror}")
    problem = script_problem(script, settings.script_user)
    if problem is not None:
        print(
            f"{PROG}: --script-user: {problem}; keepalived would report the check as passed "
            f"without running it (render into a directory {settings.script_user} can reach, "
            "e.g. /etc/keepalived)",
            file=sys.stderr,
        )
        return 1
    if args.config_test:
        try:
            config_test(conf)
        except ConfigTestError as exc:
            print(f"{PROG}: {exc}", file=sys.stderr)
            return 1
    print(f"wrote {conf} and {script}")
    return 0


def settings_from_args(args: argparse.Namespace) -> VipSettings:
    """Build settings from the flags; raises _FlagError for a missing or unparsable one."""
    missing = [_FLAGS[name] for name in _REQUIRED if not getattr(args, name, None)]
    if missing:
        raise _FlagError(f"missing {', '.join(missing)}")
    vip, _, prefix = args.vip.partition("/")
    return VipSettings(
        vip=vip,
        vip_prefix=_int("--vip", prefix) if prefix else None,
        interface=args.interface,
        interface_address=args.interface_address,
        peers=tuple(p.strip() for p in args.peers.split(",") if p.strip()),
        readyz_url=args.readyz_url,
        virtual_router_id=_int("--router-id", args.router_id),
        priority=_int("--priority", args.priority),
        advert_int=_float("--advert-int", args.advert_int),
        vrrp_version=_int("--vrrp-version", args.vrrp_version),
        auth_pass=args.auth_pass or None,
        script_user=args.script_user,
        check_interval=_int("--check-interval", args.check_interval),
        check_timeout=_float("--check-timeout", args.check_timeout),
        check_fall=_int("--check-fall", args.check_fall),
        check_rise=_int("--check-rise", args.check_rise),
        notes=(f"{PROG} for {args.interface_address} on {args.interface}",),
    )


def _int(flag: str, text: str) -> int:
    try:
        return int(str(text).strip())
    except ValueError:
        raise _FlagError(f"{flag}: {text!r} is not a whole number") from None


def _float(flag: str, text: str) -> float:
    try:
        return float(str(text).strip())
    except ValueError:
        raise _FlagError(f"{flag}: {text!r} is not a number of seconds") from None


def _fail(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return 2
