"""What ``hakube.vip`` offers is listed on purpose; this keeps it from drifting unnoticed."""

from __future__ import annotations

import hakube.vip
from hakube.vip import cli


def test_the_vip_package_exports_exactly_its_public_names() -> None:
    assert sorted(hakube.vip.__all__) == [
        "ConfigTestError",
        "Rendered",
        "SettingsError",
        "VipSettings",
        "config_test",
        "render",
        "write_files",
    ]
    for name in hakube.vip.__all__:
        assert getattr(hakube.vip, name).__doc__, f"{name} has no docstring"


def test_the_cli_module_offers_add_parser_and_run_for_the_main_cli() -> None:
    assert callable(cli.add_parser)
    assert callable(cli.run)
