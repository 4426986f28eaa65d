"""Encryption at rest: object values are sealed before they are proposed to Raft.

What is encrypted, and why there: the API server encrypts the *whole serialized object* (the
bytes the store keeps as a record's value) of every kind the config names, normally only
Secrets. The store never parses values, so nothing below the API server (the Raft log and its
wire messages, the journal, compaction dumps, snapshots) ever holds a plain Secret. What stays in
clear is what the store indexes beside the value: kind, namespace, name, labels and the
selectable fields (for Secrets: ``type``), so lists, selectors and watches keep working.

Config file: Kubernetes' EncryptionConfiguration (``apiserver.config.k8s.io/v1``), with the
providers ``aesgcm`` and ``identity``. Per resource the first provider encrypts new writes and
every listed provider may decrypt. A stored value names what sealed it with a prefix, as in
Kubernetes: ``k8s:enc:aesgcm:v1:<key name>:`` then a random 12-byte nonce and the AES-GCM
ciphertext with its tag. ``identity`` values carry no prefix. The authenticated data is the
object's key (``kind/namespace/name``), so a sealed value copied onto another object's key does
not decrypt.

Everything here is synchronous and cheap (AES-GCM runs in C); it is called on the API server's
event loop for every write and read of an encrypted kind, never on the Raft thread.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable
from dataclasses import dataclass

import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hakube.api import kinds as kinds_mod
from hakube.apiserver.errors import Internal
from hakube.store.datadir import private_mode_problem
from hakube.store.fsm import StoreFSM

PREFIX = b"k8s:enc:"
"""Every value sealed by a non-identity provider starts with this."""
_NONCE = 12
API_VERSION = "apiserver.config.k8s.io/v1"
ENCRYPTABLE = ("Secret", "ConfigMap")
"""Kinds that may be encrypted: other kinds' stored values are read directly by parts of the
master (pods and nodes by the node proxy, namespaces by admission)."""


class EncryptionConfigError(Exception):
    """The encryption config cannot be used; the message names the file and the field."""


class DecryptError(Exception):
    """A stored value cannot be decrypted with this master's config; the message says why."""


@dataclass(frozen=True)
class Provider:
    """One entry of a resource's ``providers`` list."""

    type: str
    """``aesgcm`` or ``identity``."""
    key_name: str = ""
    aead: AESGCM | None = None

    @property
    def prefix(self) -> bytes:
        """What values this provider writes start with (empty for identity)."""
        if self.type == "identity":
            return b""
        return PREFIX + f"{self.type}:v1:{self.key_name}:".encode()

    @property
    def label(self) -> str:
        return "identity" if self.type == "identity" else f'{self.type} key "{self.key_name}"'


IDENTITY = Provider("identity")


def _aad(kind: str, ns: str, name: str) -> bytes:
    return f"{kind}/{ns}/{name}".encode()


def stored_label(value: bytes) -> str:
    """Which provider (and key) sealed a stored value, e.g. ``aesgcm key "key1"``."""
    if not value.startswith(PREFIX):
        return "identity"
    parts = value[len(PREFIX) :].split(b":", 3)
    if len(parts) < 4:
        return "an unknown provider"
    return f'{parts[0].decode(errors="replace")} key "{parts[2].decode(errors="replace")}"'


class Transformer:
    """Seals and opens values per kind. Kinds the config does not name pass through."""

    def __init__(
        self, providers: dict[str, list[Provider]] | None = None, source: str = ""
    ) -> None:
        self.providers = dict(providers or {})
        """Kind name -> providers, the first one writes."""
        self.source = source
        """The config file (for messages); empty when encryption is off."""

    def replace(self, other: Transformer) -> None:
        """Take ``other``'s providers (a config reload). Every user holds this one object, and
        the providers dict is swapped in one assignment, so a request sees the old or the new
        config, never a mix."""
        self.source = other.source
        self.providers = other.providers

    def describe(self) -> str:
        """What writes use, for logs: e.g. ``Secret: aesgcm key "key2"``."""
        if not self.providers:
            return "no encryption"
        return ", ".join(f"{k}: {p[0].label}" for k, p in sorted(self.providers.items()))

    @property
    def enabled(self) -> bool:
        return any(p[0].type != "identity" for p in self.providers.values())

    def kinds(self) -> list[str]:
        return sorted(self.providers)

    def write(self, kind: str, ns: str, name: str, plain: bytes) -> bytes:
        """The value to store for ``plain``, sealed by the kind's first provider."""
        providers = self.providers.get(kind)
        if not providers or providers[0].aead is None:
            return plain
        first = providers[0]
        assert first.aead is not None
        nonce = os.urandom(_NONCE)
        return first.prefix + nonce + first.aead.encrypt(nonce, plain, _aad(kind, ns, name))

    def read(self, kind: str, ns: str, name: str, stored: bytes) -> bytes:
        """The plain value of a stored one; DecryptError when no provider can open it."""
        if kind not in ENCRYPTABLE:
            return stored  # never sealed: the config cannot name it
        providers = self.providers.get(kind)
        if providers is None:
            if stored.startswith(PREFIX):
                raise DecryptError(self._cannot(kind, ns, name, stored))
            return stored
        if not stored.startswith(PREFIX):
            if any(p.type == "identity" for p in providers):
                return stored
            raise DecryptError(self._cannot(kind, ns, name, stored))
        for p in providers:
            if p.aead is not None and stored.startswith(p.prefix):
                body = stored[len(p.prefix) :]
                try:
                    return p.aead.decrypt(body[:_NONCE], body[_NONCE:], _aad(kind, ns, name))
                except InvalidTag as exc:
                    raise DecryptError(
                        f"{kind} {ns}/{name} does not decrypt with {p.label} of "
                        f"{self.source}: the key's secret differs from the one that sealed it"
                    ) from exc
        raise DecryptError(self._cannot(kind, ns, name, stored))

    def open(self, kind: str, ns: str, name: str, stored: bytes) -> bytes:
        """``read`` for request paths: a value this master cannot open is an Internal error
        (INTERNAL to the client, with the reason)."""
        try:
            return self.read(kind, ns, name, stored)
        except DecryptError as exc:
            raise Internal(str(exc)) from exc

    def current(self, kind: str, stored: bytes) -> bool:
        """Whether a stored value is sealed the way a write would seal it now (re-encryption
        rewrites the others)."""
        providers = self.providers.get(kind)
        if not providers:
            return not stored.startswith(PREFIX)
        first = providers[0]
        if first.aead is None:
            return not stored.startswith(PREFIX)
        return stored.startswith(first.prefix)

    def _cannot(self, kind: str, ns: str, name: str, stored: bytes) -> str:
        where = (
            f"--encryption-provider-config {self.source}"
            if self.source
            else "this master (it has no --encryption-provider-config)"
        )
        return (
            f"{kind} {ns}/{name} is stored with {stored_label(stored)}, which "
            f"{where} does not list; add that key (or identity) to the providers"
        )


def _field_error(path: str, field: str, msg: str) -> EncryptionConfigError:
    return EncryptionConfigError(f"encryption config {path}: {field}: {msg}")


def _provider(path: str, where: str, raw: object, seen: set[str]) -> list[Provider]:
    if not isinstance(raw, dict) or len(raw) != 1:
        raise _field_error(path, where, "must name exactly one provider (aesgcm or identity)")
    ((ptype, body),) = raw.items()
    if ptype == "identity":
        return [IDENTITY]
    if ptype != "aesgcm":
        raise _field_error(path, where, f'provider "{ptype}" is not supported (aesgcm, identity)')
    keys = body.get("keys") if isinstance(body, dict) else None
    if not isinstance(keys, list) or not keys:
        raise _field_error(path, f"{where}.aesgcm.keys", "required: a list of {name, secret}")
    out = []
    for j, key in enumerate(keys):
        kwhere = f"{where}.aesgcm.keys[{j}]"
        if not isinstance(key, dict):
            raise _field_error(path, kwhere, "must be {name, secret}")
        name, secret = key.get("name"), key.get("secret")
        if not isinstance(name, str) or not name or ":" in name:
            raise _field_error(path, f"{kwhere}.name", "required, without ':'")
        if name in seen:
            raise _field_error(path, f"{kwhere}.name", f'"{name}" is used twice')
        seen.add(name)
        try:
            raw_key = base64.b64decode(str(secret), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise _field_error(path, f"{kwhere}.secret", "is not base64") from exc
        if len(raw_key) not in (16, 24, 32):
            raise _field_error(
                path, f"{kwhere}.secret", f"must decode to 16, 24 or 32 bytes, not {len(raw_key)}"
            )
        out.append(Provider("aesgcm", name, AESGCM(raw_key)))
    return out


def parse_config(text: str, path: str) -> Transformer:
    """Build a Transformer from EncryptionConfiguration YAML (``path`` is for messages)."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EncryptionConfigError(f"encryption config {path}: not YAML: {exc}") from exc
    if not isinstance(doc, dict):
        raise EncryptionConfigError(f"encryption config {path}: not a mapping")
    if doc.get("kind") != "EncryptionConfiguration":
        raise _field_error(path, "kind", "must be EncryptionConfiguration")
    if doc.get("apiVersion") != API_VERSION:
        raise _field_error(path, "apiVersion", f"must be {API_VERSION}")
    resources = doc.get("resources")
    if not isinstance(resources, list) or not resources:
        raise _field_error(path, "resources", "required: a list")
    by_kind: dict[str, list[Provider]] = {}
    for i, entry in enumerate(resources):
        where = f"resources[{i}]"
        names = entry.get("resources") if isinstance(entry, dict) else None
        providers = entry.get("providers") if isinstance(entry, dict) else None
        if not isinstance(names, list) or not names:
            raise _field_error(path, f"{where}.resources", "required: a list such as [secrets]")
        if not isinstance(providers, list) or not providers:
            raise _field_error(path, f"{where}.providers", "required: a list")
        seen: set[str] = set()
        plist: list[Provider] = []
        for j, raw in enumerate(providers):
            plist.extend(_provider(path, f"{where}.providers[{j}]", raw, seen))
        for k, word in enumerate(names):
            kind = kinds_mod.lookup(str(word))
            if kind is None:
                raise _field_error(
                    path, f"{where}.resources[{k}]", f'"{word}" is not a resource this server knows'
                )
            if kind.name not in ENCRYPTABLE:
                raise _field_error(
                    path,
                    f"{where}.resources[{k}]",
                    f'"{word}" cannot be encrypted here (supported: secrets, configmaps)',
                )
            if kind.name in by_kind:
                raise _field_error(path, f"{where}.resources[{k}]", f'"{word}" is configured twice')
            by_kind[kind.name] = plist
    return Transformer(by_kind, source=path)


def load_config(path: str) -> Transformer:
    """Read and check an encryption config file (it holds keys: it must be 0600)."""
    try:
        problem = private_mode_problem(path, "encryption config")
        if problem is not None:
            raise EncryptionConfigError(problem)
        with open(path) as f:
            text = f.read()
    except FileNotFoundError as exc:
        raise EncryptionConfigError(
            f"encryption config {path} does not exist; copy the cluster's key file there "
            "(every master needs the same one)"
        ) from exc
    except OSError as exc:
        raise EncryptionConfigError(f"encryption config {path}: {exc.strerror}") from exc
    return parse_config(text, path)


def new_config(key_name: str = "key1", kinds: Iterable[str] = ("secrets",)) -> str:
    """A fresh EncryptionConfiguration with one random 32-byte AES-GCM key, identity after it
    (so values written before encryption was turned on stay readable)."""
    doc = {
        "apiVersion": API_VERSION,
        "kind": "EncryptionConfiguration",
        "resources": [
            {
                "resources": list(kinds),
                "providers": [
                    {
                        "aesgcm": {
                            "keys": [
                                {
                                    "name": key_name,
                                    "secret": base64.b64encode(os.urandom(32)).decode(),
                                }
                            ]
                        }
                    },
                    {"identity": {}},
                ],
            }
        ],
    }
    return yaml.safe_dump(doc, sort_keys=False)


def check_stored(fsm: StoreFSM, transformer: Transformer) -> str | None:
    """The start-up key check: try to open one stored value per kind and sealing key (Secrets
    and every configured kind); the first failure's message, or None. Run once the replica has
    applied everything committed (after a read barrier)."""
    tried: set[tuple[str, str]] = set()
    for kind in sorted({"Secret", *transformer.kinds()}):
        _, items = fsm.snapshot(kind, None)
        for (ns, name), rec in items:
            head = stored_label(rec.value)
            if (kind, head) in tried:
                continue
            tried.add((kind, head))
            try:
                transformer.read(kind, ns, name, rec.value)
            except DecryptError as exc:
                return str(exc)
    return None
