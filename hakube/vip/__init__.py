"""The master VIP: keepalived configuration rendered from typed settings, and its checks.

Public names: :class:`VipSettings`, :class:`SettingsError`, :func:`render`, :func:`write_files`,
:func:`config_test` and :class:`ConfigTestError`. The ``hakube keepalived`` subcommand lives in
:mod:`hakube.vip.cli`.
"""

from hakube.vip.configtest import ConfigTestError, config_test
from hakube.vip.render import Rendered, render, write_files
from hakube.vip.settings import SettingsError, VipSettings

__all__ = [
    "ConfigTestError",
    "Rendered",
    "SettingsError",
    "VipSettings",
    "config_test",
    "render",
    "write_files",
]
