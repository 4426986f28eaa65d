"""Turn :class:`VipSettings` into keepalived.conf and the readiness check it runs.

Rendering is a pure function of the settings and the path the check script will have, so tests
compare text and ``hakube keepalived render`` on each master gives reproducible files. Writing
is separate: :func:`write_files` puts both files in one directory, script first, so that a
keepalived reloading half way never sees a config naming a script that does not exist yet.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import jinja2

from hakube.vip.settings import VipSettings

CONF_NAME = "keepalived.conf"
SCRIPT_NAME = "hakube-readyz-check"

_env = jinja2.Environment(
    loader=jinja2.PackageLoader("hakube.vip", "templates"),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
    autoescape=False,  # the output is a keepalived config, not HTML
)


@dataclass(frozen=True)
class Rendered:
    """The two files one master needs; ``script_path`` is where the config expects the script."""

    conf: str
    check_script: str
    script_path: str


def render(settings: VipSettings, *, script_path: str) -> Rendered:
    """Validate ``settings`` and render both files. Raises SettingsError naming the field."""
    settings.validate()
    if not os.path.isabs(script_path):
        raise ValueError(
            f"script_path {script_path!r} must be absolute: keepalived runs it "
            "from / and vets every directory on its path"
        )
    context = {
        "s": settings,
        "script_path": script_path,
        # keepalived kills a check after `timeout` whole seconds; the HTTP timeout inside the
        # script is shorter, so the script reports its own failure rather than being killed.
        "script_timeout": int(settings.check_timeout) + 1,
        "advert_int": _format_seconds(settings.advert_int),
        "src_ip": str(settings.own_interface().ip),
        "vip_cidr": settings.vip_with_prefix(),
        "url_literal": repr(settings.readyz_url),
    }
    return Rendered(
        conf=_env.get_template("keepalived.conf.j2").render(context),
        check_script=_env.get_template("readyz_check.py.j2").render(context),
        script_path=script_path,
    )


def write_files(settings: VipSettings, out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Render into ``out_dir`` (created if missing); returns (config path, script path).

    The script is root-owned mode 0755 and the config 0640 (it may hold ``auth_pass``); each is
    written to a temporary name and renamed, so readers see the old file or the new one.
    """
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    script = out / SCRIPT_NAME
    rendered = render(settings, script_path=str(script))
    _atomic_write(script, rendered.check_script, 0o755)
    conf = out / CONF_NAME
    _atomic_write(conf, rendered.conf, 0o640)
    return conf, script


def _atomic_write(path: Path, text: str, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _format_seconds(value: float) -> str:
    """1.0 -> "1", 0.25 -> "0.25": keepalived's VRRPv2 parser wants an integer."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text or "0"
