"""Reading manifests for ``-f``: files, directories and stdin, multi-document YAML or JSON.

Everything is read and converted before the first request, so a typo in the third document
fails the command without half of the documents applied. Each document keeps where it came
from (``app.yaml (document 3)``) so that every error can name it. A ``kind: List`` (what
``hakubectl get -o yaml`` prints for several objects) is unpacked into its items.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import IO, Any

import yaml
from google.protobuf.message import Message

from hakube.api import convert
from hakube.api.kinds import Kind

EXTENSIONS = (".yaml", ".yml", ".json")


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the file (and document)."""


@dataclass
class Manifest:
    source: str
    """Where it came from, for messages: ``web.yaml`` or ``web.yaml (document 2)``."""
    doc: dict[str, Any]
    kind: Kind
    message: Message
    """The document converted to its typed message (checked, not yet sent)."""

    @property
    def name(self) -> str:
        meta = self.doc.get("metadata") or {}
        return str(meta.get("name") or meta.get("generateName") or "")

    @property
    def namespace(self) -> str:
        meta = self.doc.get("metadata") or {}
        return str(meta.get("namespace") or "")


def _files(path: str, recursive: bool) -> list[str]:
    if path == "-":
        return ["-"]
    if not os.path.exists(path):
        raise ManifestError(f'the path "{path}" does not exist')
    if not os.path.isdir(path):
        return [path]
    found: list[str] = []
    for root, dirs, names in os.walk(path):
        dirs.sort()
        found += [os.path.join(root, n) for n in sorted(names) if n.endswith(EXTENSIONS)]
        if not recursive:
            break
    return found


def _yaml_error(source: str, exc: yaml.YAMLError) -> ManifestError:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).split("\n")[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return ManifestError(f"{source}: not valid YAML: {problem}{where}")


def _documents(source: str, text: str) -> list[tuple[str, Any]]:
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise _yaml_error(source, exc) from exc
    if len(docs) == 1:
        return [(source, docs[0])]
    return [(f"{source} (document {i})", d) for i, d in enumerate(docs, 1)]


def _unpack(source: str, doc: Any) -> list[tuple[str, dict[str, Any]]]:
    if not isinstance(doc, dict):
        raise ManifestError(
            f"{source}: a manifest must be a mapping with apiVersion, kind and "
            f"metadata, not a {type(doc).__name__}"
        )
    kind = str(doc.get("kind", ""))
    if kind == "List" or (kind.endswith("List") and isinstance(doc.get("items"), list)):
        out = []
        for i, item in enumerate(doc.get("items") or [], 1):
            out += _unpack(f"{source} (item {i})", item)
        return out
    return [(source, doc)]


def load(
    paths: list[str], *, recursive: bool = False, stdin: IO[str] | None = None
) -> list[Manifest]:
    """All documents of all ``paths`` converted, or ManifestError for the first bad one."""
    manifests: list[Manifest] = []
    for path in paths:
        for f in _files(path, recursive):
            if f == "-":
                source, text = "stdin", (stdin or sys.stdin).read()
            else:
                source = f
                try:
                    with open(f, encoding="utf-8") as fh:
                        text = fh.read()
                except (OSError, UnicodeDecodeError) as exc:
                    reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
                    raise ManifestError(f"{f}: {reason}") from exc
            for where, doc in _documents(source, text):
                for src, d in _unpack(where, doc):
                    try:
                        kind = convert.kind_of(d)
                        if not d.get("apiVersion"):
                            raise convert.ManifestError(
                                f"{kind.name} {convert.name_of(d)}: apiVersion not set "
                                f'(use "{kind.api_version}")'
                            )
                        msg = convert.from_dict(d)
                    except convert.ManifestError as exc:
                        raise ManifestError(f"{src}: {exc}") from exc
                    manifests.append(Manifest(src, d, kind, msg))
    if not manifests:
        raise ManifestError(f"no objects found in {', '.join(paths)}")
    return manifests
