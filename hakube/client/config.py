"""The client config file: where the masters are, for hakubectl and programs alike.

    # ~/.hakube/config (written by `hakube up`)
    apiVersion: hakube/v1
    kind: ClientConfig
    servers:                 # every master, or one VIP; HOST:PORT
    - 127.0.0.1:6443
    namespace: default       # used when a command names none
    timeout: 30              # seconds one call may take, retries included
    certificate-authority: pki/ca.crt        # the cluster CA: masters are verified against it
    client-certificate: pki/users/admin.crt  # who we are (subject CN = user, O = groups)
    client-key: pki/users/admin.key

Credentials are required: masters accept only callers with a certificate from the cluster CA, and
the client always verifies the master. Each of the three may instead be given inline as
``certificate-authority-data`` (and so on): the PEM text, or its base64, as in a kubeconfig.
Relative paths are relative to the config file's directory.

Which file: an explicit path (``--config``), else ``$HAKUBE_CONFIG``, else ``~/.hakube/config``.
Servers given directly (``--server`` or ``$HAKUBE_SERVER``) win over the file's, and then the
file is optional for the servers (the credentials still come from it). Unknown keys are refused
so a typo does not silently fall back to a default.
"""

from __future__ import annotations

import base64
import binascii
import os
from dataclasses import dataclass, field

import yaml

from hakube.client.transport import parse_endpoints
from hakube.pki import files
from hakube.pki.tls import Credentials, TlsFiles

DEFAULT_PATH = "~/.hakube/config"
ENV_CONFIG = "HAKUBE_CONFIG"
ENV_SERVER = "HAKUBE_SERVER"
KIND = "ClientConfig"
API_VERSION = "hakube/v1"
_CRED_KEYS = ("certificate-authority", "client-certificate", "client-key")
_KEYS = {
    "apiVersion",
    "kind",
    "servers",
    "namespace",
    "timeout",
    *_CRED_KEYS,
    *(f"{k}-data" for k in _CRED_KEYS),
}


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
    tls: dict[str, str] = field(default_factory=dict)
    """The credential settings as written (see the module docstring): file paths (absolute)
    or ``*-data`` values."""

    def credentials(self) -> Credentials:
        """The CA, certificate and key this config names; ConfigError says what is missing."""
        where = f"config file {self.path}" if self.path else "client config"
        out = []
        for key in _CRED_KEYS:
            data, path = self.tls.get(f"{key}-data"), self.tls.get(key)
            if data:
                out.append(_inline_pem(where, f"{key}-data", data))
            elif path:
                try:
                    with open(path, "rb") as f:
                        out.append(f.read())
                except OSError as exc:
                    raise ConfigError(f"{where}: {key}: {path}: {exc.strerror}") from exc
            else:
                raise ConfigError(
                    f"{where}: no {key} (the API requires TLS credentials; "
                    "hakube up writes them to ~/.hakube/config)"
                )
        return Credentials(ca=out[0], cert=out[1], key=out[2])


def tls_settings(files: TlsFiles) -> dict[str, str]:
    """The credential settings of a config that names ``files``."""
    return {
        "certificate-authority": files.ca,
        "client-certificate": files.cert,
        "client-key": files.key,
    }


def _inline_pem(where: str, key: str, value: str) -> bytes:
    if "-----BEGIN" in value:
        return value.encode()
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"{where}: {key} is neither PEM nor base64") from exc


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
        raise ConfigError(
            f'config file {path}: unknown setting "{unknown[0]}" (known: '
            f"{', '.join(sorted(_KEYS))})"
        )
    if data.get("kind", KIND) != KIND:
        raise ConfigError(f'config file {path}: kind is "{data["kind"]}", expected {KIND}')
    raw = data.get("servers")
    if raw is not None and not isinstance(raw, (list, str)):
        raise ConfigError(f"config file {path}: servers must be a list of HOST:PORT")
    try:
        servers = parse_endpoints(raw) if raw else []
    except ValueError as exc:
        raise ConfigError(f"config file {path}: servers: {exc}") from exc
    try:
        timeout = float(data.get("timeout", 30.0))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"config file {path}: timeout must be a number of seconds") from exc
    if timeout <= 0:
        raise ConfigError(f"config file {path}: timeout must be > 0 seconds")
    base = os.path.dirname(os.path.abspath(path))
    tls = {}
    for key in _CRED_KEYS:
        if data.get(key):
            tls[key] = os.path.join(base, os.path.expanduser(str(data[key])))
        if data.get(f"{key}-data"):
            tls[f"{key}-data"] = str(data[f"{key}-data"])
    return ClientConfig(
        servers=servers,
        namespace=str(data.get("namespace") or "default"),
        timeout=timeout,
        path=path,
        tls=tls,
    )


def load_client_config(
    path: str | None = None,
    *,
    server: str | None = None,
    namespace: str | None = None,
    timeout: float | None = None,
) -> ClientConfig:
    """The effective config: file (see the module docstring) overridden by arguments."""
    server = server or os.environ.get(ENV_SERVER) or None
    file = config_path(path)
    explicit = bool(path or os.environ.get(ENV_CONFIG))
    cfg: ClientConfig | None = None
    if explicit or os.path.exists(file):
        cfg = read_config_file(file)
    elif not server:
        raise ConfigError(
            f"no masters configured: pass --server HOST:PORT[,HOST:PORT...], set "
            f"{ENV_SERVER}, or create {file} (hakube up writes it)"
        )
    if server:
        try:
            servers = parse_endpoints(server)
        except ValueError as exc:
            raise ConfigError(f"--server: {exc}") from exc
        cfg = ClientConfig(
            servers=servers,
            namespace=cfg.namespace if cfg else "default",
            timeout=cfg.timeout if cfg else 30.0,
            path=cfg.path if cfg else "",
            tls=cfg.tls if cfg else {},
        )
    assert cfg is not None
    if not cfg.servers:
        raise ConfigError(
            f"config file {cfg.path}: no servers listed (or pass --server HOST:PORT[,HOST:PORT...])"
        )
    if namespace:
        cfg.namespace = namespace
    if timeout is not None:
        cfg.timeout = timeout
    return cfg


def render(cfg: ClientConfig, *, comment: str = "") -> str:
    lines = [f"# {line}" for line in comment.splitlines()]
    body: dict[str, object] = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "servers": list(cfg.servers),
        "namespace": cfg.namespace,
        "timeout": cfg.timeout,
    }
    body.update(cfg.tls)
    return "\n".join(lines + [yaml.safe_dump(body, sort_keys=False).rstrip()]) + "\n"


def write_client_config(path: str, cfg: ClientConfig, *, comment: str = "") -> None:
    """Write atomically (a reader never sees half a file), creating the directory."""
    path = os.path.expanduser(path)
    files.write_atomic(path, render(cfg, comment=comment).encode())
