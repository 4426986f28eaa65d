"""Settings validation: each bad input is refused with one line that names the field."""

from __future__ import annotations

from dataclasses import replace

import pytest

from hakube.vip import SettingsError, VipSettings


def test_settings_for_a_three_master_cluster_are_valid(settings: VipSettings) -> None:
    settings.validate()
    assert settings.vip_with_prefix() == "192.0.2.100/24"


BAD = [
    # (field, changes, words the message must contain)
    ("interface", {"interface": ""}, "missing"),
    ("interface", {"interface": "eth0 eth1"}, "not a Linux interface name"),
    ("interface", {"interface": "a-very-long-interface-name"}, "not a Linux interface name"),
    ("vip", {"vip": "192.0.3.100"}, "not inside 192.0.2.0/24"),
    ("vip", {"vip": "192.0.2.300"}, "not an IP address"),
    ("vip", {"vip": "2001:db8::1"}, "IPv6"),
    ("vip", {"vip": "192.0.2.11"}, "own address"),
    ("vip", {"vip": "192.0.2.255"}, "broadcast"),
    ("vip", {"interface_address": "192.0.2.11/28"}, "not inside 192.0.2.0/28"),
    ("vip_prefix", {"vip_prefix": 33}, "1..32"),
    ("interface_address", {"interface_address": "192.0.2.11"}, "needs a prefix"),
    ("interface_address", {"interface_address": "192.0.2.11/99"}, "not an address/prefix"),
    ("peers", {"peers": ()}, "none given"),
    ("peers", {"peers": ("192.0.2.12", "192.0.2.12")}, "listed twice"),
    ("peers", {"peers": ("192.0.2.12", "192.0.2.11")}, "own address"),
    ("peers", {"peers": ("192.0.2.12", "192.0.2.100")}, "is the VIP"),
    ("peers", {"peers": ("192.0.2.12", "master3")}, "not an IP address"),
    ("virtual_router_id", {"virtual_router_id": 0}, "1..255"),
    ("virtual_router_id", {"virtual_router_id": 256}, "1..255"),
    ("priority", {"priority": 255}, "1..254"),
    ("vrrp_version", {"vrrp_version": 4}, "2 or 3"),
    ("advert_int", {"advert_int": 0}, "positive"),
    ("advert_int", {"advert_int": float("nan")}, "positive"),
    ("advert_int", {"advert_int": 0.333}, "steps of 0.01"),
    ("advert_int", {"advert_int": 41.0}, "0.01..40.95"),
    ("advert_int", {"vrrp_version": 2, "advert_int": 0.5}, "whole seconds"),
    ("advert_int", {"vrrp_version": 2, "advert_int": 256}, "whole seconds"),
    ("auth_pass", {"auth_pass": "secret"}, "VRRPv3 has no authentication"),
    ("auth_pass", {"vrrp_version": 2, "advert_int": 1, "auth_pass": "much-too-long"}, "1..8"),
    ("auth_pass", {"vrrp_version": 2, "advert_int": 1, "auth_pass": "a#b"}, "1..8"),
    ("readyz_url", {"readyz_url": "127.0.0.1:9100/readyz"}, "not an http(s) URL"),
    ("check_interval", {"check_interval": 0}, "whole seconds"),
    ("check_timeout", {"check_timeout": 2.0}, "at most the check interval"),
    ("check_fall", {"check_fall": 0}, "1..100"),
    ("script_user", {"script_user": "Robert'); DROP"}, "not a user name"),
    ("python", {"python": "python3"}, "absolute path"),
    ("instance_name", {"instance_name": "has space"}, "1..32"),
]


@pytest.mark.parametrize(("field", "changes", "words"), BAD, ids=[f"{b[0]}-{b[2]}" for b in BAD])
def test_bad_settings_are_refused_with_one_line_naming_the_field(
    settings: VipSettings, field: str, changes: dict[str, object], words: str
) -> None:
    with pytest.raises(SettingsError) as err:
        replace(settings, **changes).validate()  # type: ignore[arg-type]
    message = str(err.value)
    assert err.value.field == field
    assert message.startswith(f"{field}: ")
    assert words in message
    assert "\n" not in message


def test_vrrp2_accepts_a_password(settings: VipSettings) -> None:
    replace(settings, vrrp_version=2, advert_int=1, auth_pass="hakube1").validate()


def test_vrrp3_accepts_sub_second_adverts(settings: VipSettings) -> None:
    replace(settings, advert_int=0.25).validate()
