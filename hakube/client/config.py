"""The client config file: where the masters are, for hakubectl and programs alike.

    # ~/.hakube/config (written by `hakube up`)
    apiVersion: hakube/v1
    kind: ClientConfig
    servers:                 # every master, or one VIP; HOST:PORT
    - 127.0.0.1:6443
    namespace: default       # used when a command names none
    timeout: 30              # seconds one call may take, retries included

Which file: an explicit path (``--config``), else ``$HAKUBE_CONFIG``, else ``~/.hakube/config``.
Servers given directly (``--server`` or ``$HAKUBE_SERVER``) win over the file's, and then the
file is optional. Credentials will be added as another key when the API gets authentication;
unknown keys are refused so a typo does not silently fall back to a default.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import yaml

from hakube.client.transport import parse_endpoints

DEFAULT_PATH = "~/.hakube/config"
ENV_CONFIG = "HAKUBE_CONFIG"
ENV_SERVER = "HAKUBE_SERVER"
KIND = "ClientConfig"
API_VERSION = "hakube/v1"
_KEYS = {"apiVersion", "kind", "servers", "namespace", "timeout"}


class ConfigError(ValueError):
    """A client config that cannot be used; the message names the file and the setting."""


@dataclass
class ClientConfig:
    servers: list[str]
    """Master endpoints, HOST:PORT."""
    namespace: str = "default"
    """Namespace for calls that name none."""
    timeout: float = 30.0
    """Seconds one call may take, retries across masters included."""
    path: str = field(default="", compare=False)
    """The file it came from ("" if none)."""


def config_path(path: str | None = None) -> str:
    """The config file to use: ``path``, else $HAKUBE_CONFIG, else ~/.hakube/config."""
    return os.path.expanduser(path or os.environ.get(ENV_CONFIG) or DEFAULT_PATH)


def read_config_file(path: str) -> ClientConfig:
    """Parse one config file; ConfigError names the file and what is wrong."""
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist") from exc
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: must be a mapping (servers: [...])")
    unknown = sorted(set(map(str, data)) - _KEYS)
    if unknown:
        raise ConfigError(f'config file {path}: unknown setting "{unknown[0]}" (known: '
                          f"{', '.join(sorted(_KEYS))})")
    if data.get("kind", KIND) != KIND:
        raise ConfigError(f'config file {path}: kind is "{data["kind"]}", expected {KIND}')
    raw = data.get("servers")
    if raw is None:
        raise ConfigError(f"config file {path}: no servers listed")
    if not isinstance(raw, (list, str)):
        raise ConfigError(f"config file {path}: servers must be a list of HOST:PORT")
    try:
        servers = parse_endpoints(raw)
    except ValueError as exc:
        raise ConfigError(f"config file {path}: servers: {exc}") from exc
    try:
        timeout = float(data.get("timeout", 30.0))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config file {path}: timeout must be a number of seconds") from exc
    if timeout <= 0:
        raise ConfigError(f"config file {path}: timeout must be > 0 seconds")
    return ClientConfig(servers=servers, namespace=str(data.get("namespace") or "default"),
                        timeout=timeout, path=path)


def load_client_config(path: str | None = None, *, server: str | None = None,
                       namespace: str | None = None,
                       timeout: float | None = None) -> ClientConfig:
    """The effective config: file (see the module docstring) overridden by arguments."""
    server = server or os.environ.get(ENV_SERVER) or None
    file = config_path(path)
    explicit = bool(path or os.environ.get(ENV_CONFIG))
    cfg: ClientConfig | None = None
    if explicit or os.path.exists(file):
        cfg = read_config_file(file)
    elif not server:
        raise ConfigError(f"no masters configured: pass --server HOST:PORT[,HOST:PORT...], set "
                          f"{ENV_SERVER}, or create {file} (hakube up writes it)")
    if server:
        try:
            servers = parse_endpoints(server)
        except ValueError as exc:
            raise ConfigError(f"--server: {exc}") from exc
        cfg = ClientConfig(servers=servers, namespace=cfg.namespace if cfg else "default",
                           timeout=cfg.timeout if cfg else 30.0, path=cfg.path if cfg else "")
    assert cfg is not None
    if namespace:
        cfg.namespace = namespace
    if timeout is not None:
        cfg.timeout = timeout
    return cfg


def render(cfg: ClientConfig, *, comment: str = "") -> str:
    lines = [f"# {line}" for line in comment.splitlines()]
    body = {"apiVersion": API_VERSION, "kind": KIND, "servers": list(cfg.servers),
            "namespace": cfg.namespace, "timeout": cfg.timeout}
    return "\n".join(lines + [yaml.safe_dump(body, sort_keys=False).rstrip()]) + "\n"


def write_client_config(path: str, cfg: ClientConfig, *, comment: str = "") -> None:
    """Write atomically (a reader never sees half a file), creating the directory."""
    path = os.path.expanduser(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(render(cfg, comment=comment))
    os.replace(tmp, path)
