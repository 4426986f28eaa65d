"""One source per setting: a dataclass field gives the flag, the variable and the config key.

A daemon's settings are a dataclass whose every field has a default; its type, default and
help (the field's docstring, or ``setting(help=...)``) are written once, and from them come

- the flag ``--field-name`` (``setting(flag=...)`` keeps an older spelling; ``aliases``);
  a bool that defaults to true is ``--x/--no-x``, one that defaults to false is ``--x``
  (``negatable=True`` also gives ``--no-x``); a ``list[str]`` flag takes ``a,b`` and may be
  repeated;
- the environment variable ``HAKUBE_FIELD_NAME`` (the flag without its dashes, upper case,
  ``-`` as ``_``): one flat namespace, so ``--servers`` is ``HAKUBE_SERVERS`` for every daemon
  and a host runs each daemon with its own environment (systemd unit, container);
- the key ``field-name`` of the YAML file given by ``hakube --config FILE`` (or
  ``HAKUBE_CONFIG``), ``field_name`` also accepted; a list may be a YAML list.

A tool's operands (``hakube snapshot save FILE``) are fields too, marked
``setting(operand=True)``: positional arguments, never read from the environment or a file.
A tool with actions (``hakube certs init|renew|...``) has one settings dataclass per action.

Precedence, per setting: flag > environment > config file > default. A field whose type is
itself a settings dataclass is flattened into its parent (the scheduler's settings are its own
knobs, the leader-election ones and the metrics endpoint's), so flag names are unique per
daemon, and the daemon's code receives the typed, validated object -- never an
``argparse.Namespace``.

Validation is in one place: the conversion (a number that is not one), ``choices``,
``minimum``/``maximum``, a field's ``check`` and then each dataclass's ``validate()`` (rules
between fields) all raise :class:`SettingError`, whose text is one line naming the flag; the
CLI prints it and exits with status 2 (``hakube.cli.main``).

``python -m hakube.cli.settings_ref`` prints ``docs/settings.md``, the reference of every daemon's
settings (kept current by ``tests/cli/test_settings.py``).

This module is at the bottom of the import layers: it imports only the standard library and
PyYAML, so every daemon's settings may use it.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import functools
import inspect
import os
import textwrap
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

ENV_PREFIX = "HAKUBE_"


class SettingError(ValueError):
    """A setting that cannot be used; ``str(exc)`` is one line naming it."""


@dataclass(frozen=True)
class Spec:
    """How one field is spelled and checked (``setting()``'s arguments)."""

    help: str = ""
    flag: str = ""
    aliases: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    check: Callable[[Any], None] | None = None
    """Raises ValueError saying what is wrong with the value (the flag is prefixed)."""
    parse: Callable[[Any], Any] | None = None
    """Text (or a YAML value) -> the field's value, for types beyond str/int/float/bool/list."""
    negatable: bool = False
    valued: bool = False
    """A bool flag that takes a value (``--x=false``), as Kubernetes' components have them."""
    metavar: str = ""
    fallback: Callable[[], Any] | None = None
    """Computes the value when no flag, variable or file sets it (e.g. from the client
    config); document it with ``shown``."""
    shown: str = ""
    """The default as documented, when the value depends on the machine (e.g. its cores)."""
    required: bool = False
    """Must be set (flag, variable or file) to something non-empty; the missing ones are named
    together in one error."""
    repeatable: bool = False
    """The flag may be given again, its values joined with commas (a list's always may)."""
    operand: bool = False
    """Not a setting but an operand of the command line (a file, a name): a positional
    argument, with no variable or config key; a list takes any number (``required``: one or
    more). :func:`operands` lists them, :func:`leaves` does not."""


def setting(
    default: Any = dataclasses.MISSING,
    *,
    default_factory: Callable[[], Any] | None = None,
    **spec: Any,
) -> Any:
    """A settings field: ``setting(5.0, minimum=0)``; the keywords are :class:`Spec`'s.

    A list or dict default is copied per instance."""
    kw: dict[str, Any] = {"metadata": {"setting": Spec(**spec)}}
    if default_factory is not None:
        kw["default_factory"] = default_factory
    elif isinstance(default, list | dict | set):
        kw["default_factory"] = lambda: type(default)(default)
    elif default is not dataclasses.MISSING:
        kw["default"] = default
    return field(**kw)


def group(cls: Callable[[], Any]) -> Any:
    """A field holding a nested settings dataclass (flattened into the parent's flags)."""
    return field(default_factory=cls)


@dataclass(frozen=True)
class Leaf:
    """One setting of a daemon, after flattening: where it lives and how it is spelled."""

    path: tuple[str, ...]
    """Attribute names from the top dataclass down to the field."""
    kind: Any
    """The field's type (str, int, float, bool, list, or anything with ``spec.parse``)."""
    default: Any
    help: str
    spec: Spec

    @property
    def name(self) -> str:
        return (self.spec.flag or self.path[-1]).removeprefix("--").replace("_", "-")

    @property
    def flag(self) -> str:
        return "--" + self.name

    @property
    def usage(self) -> str:
        """How the usage line and errors name it: the flag, or an operand's metavar."""
        return (self.spec.metavar or self.name.upper()) if self.spec.operand else self.flag

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.replace("-", "_").upper()

    @property
    def key(self) -> str:
        return self.name

    @property
    def dest(self) -> str:
        return "s__" + "__".join(self.path)


@functools.cache
def leaves(cls: type) -> list[Leaf]:
    """Every setting of ``cls`` (nested settings dataclasses flattened), in field order; not
    its operands."""
    out = [leaf for leaf in _all(cls) if not leaf.spec.operand]
    seen: dict[str, Leaf] = {}
    for leaf in out:
        if leaf.name in seen:
            raise TypeError(f"{cls.__name__}: two settings named {leaf.flag}")
        seen[leaf.name] = leaf
    return out


@functools.cache
def operands(cls: type) -> list[Leaf]:
    """The operands of ``cls`` (``setting(operand=True)``), in field order."""
    return [leaf for leaf in _all(cls) if leaf.spec.operand]


@functools.cache
def _all(cls: type) -> list[Leaf]:
    out: list[Leaf] = []
    _walk(cls, cls(), (), out)
    return out


def _walk(cls: type, instance: Any, path: tuple[str, ...], out: list[Leaf]) -> None:
    hints = typing.get_type_hints(cls)
    docs = _field_docs(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal") or not f.init:
            continue
        spec = f.metadata.get("setting")
        value = getattr(instance, f.name)
        if spec is None and dataclasses.is_dataclass(value):
            _walk(type(value), value, (*path, f.name), out)
            continue
        if spec is None:
            spec = Spec()
        kind = _base_type(hints[f.name])
        help_text = spec.help or docs.get(f.name, "")
        out.append(Leaf((*path, f.name), kind, value, help_text, spec))


def internal(default: Any) -> Any:
    """A dataclass field that is not a setting (no flag, variable or key)."""
    return field(default=default, metadata={"internal": True})


def _base_type(hint: Any) -> Any:
    """``str | None`` -> str; ``list[str]`` / ``tuple[str, ...]`` -> list; others unchanged."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        hint = args[0] if len(args) == 1 else hint
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        return list  # a tuple default keeps the value a tuple (``_convert``)
    return origin or hint


@functools.cache
def _field_docs(cls: type) -> dict[str, str]:
    """The docstrings under a dataclass's fields (the string statement after each one), as
    one paragraph each; inherited fields' docstrings too."""
    docs: dict[str, str] = {}
    for klass in reversed(cls.__mro__[:-1]):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for stmt, nxt in zip(body, body[1:], strict=False):
            if (
                isinstance(stmt, ast.AnnAssign)
                and isinstance(stmt.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[stmt.target.id] = " ".join(inspect.cleandoc(nxt.value.value).split())
    return docs


# -- argparse ---------------------------------------------------------------------------------


def add_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """Add ``cls``'s flags (and operands) to ``parser``; ``hakube.cli.main`` builds the object
    with :func:`resolve` (the parser remembers ``cls``)."""
    for leaf in operands(cls):
        nargs = None if leaf.spec.required else "?"
        if leaf.kind is list:
            nargs = "+" if leaf.spec.required else "*"
        parser.add_argument(
            leaf.dest,
            nargs=nargs,
            default=argparse.SUPPRESS,
            metavar=leaf.usage,
            help=leaf.help.replace("%", "%%"),
        )
    for leaf in leaves(cls):
        names = [leaf.flag, *leaf.spec.aliases]
        kw: dict[str, Any] = {"dest": leaf.dest, "default": argparse.SUPPRESS}
        kw["help"] = _flag_help(leaf)
        if leaf.kind is bool and leaf.spec.valued:
            kw["metavar"] = "true|false"
        elif leaf.kind is bool:
            if leaf.default or leaf.spec.negatable:
                kw["action"] = argparse.BooleanOptionalAction
            else:
                kw["action"] = "store_const"
                kw["const"] = True
        else:
            kw["metavar"] = leaf.spec.metavar or (
                "{" + ",".join(leaf.spec.choices) + "}" if leaf.spec.choices else _metavar(leaf)
            )
            if leaf.kind is list or leaf.spec.repeatable:
                kw["action"] = "append"
        parser.add_argument(*names, **kw)
    parser.set_defaults(settings_class=cls)


def add_actions(
    sub: argparse._SubParsersAction,
    command: str,
    help_text: str,
    actions: Mapping[str, tuple[type, str]],
) -> None:
    """``hakube COMMAND ACTION``: a tool whose actions each have their own settings class;
    ``actions`` maps each action's name to (settings class, help)."""
    top = sub.add_parser(command, help=help_text)
    choices = top.add_subparsers(dest=f"{command}_command", required=True, metavar="ACTION")
    for name, (cls, text) in actions.items():
        add_flags(choices.add_parser(name, help=text), cls)


def _metavar(leaf: Leaf) -> str:
    if leaf.kind is int:
        return "N"
    if leaf.kind is float:
        return "SECONDS" if "second" in leaf.help.lower() else "NUMBER"
    last = leaf.name.split("-")[-1]
    named = {"listen": "HOST:PORT", "servers": "HOST:PORT,...", "dir": "DIR", "path": "FILE"}
    return named.get(last, "FILE" if last in ("file", "config") else last.upper())


def _flag_help(leaf: Leaf) -> str:
    shown = show_default(leaf)
    text = leaf.help.replace("%", "%%").replace("``", "")
    if shown and shown not in ("false", "true"):
        text = f"{text[:-1]}; default {shown}." if text.endswith(".") else f"{text} ({shown})"
    return f"{text} [{leaf.env}]"


def show_default(leaf: Leaf) -> str:
    """The default as it would be typed (``a,b`` for a list; empty when empty)."""
    if leaf.spec.shown:
        return leaf.spec.shown
    d = leaf.default
    if isinstance(d, bool):
        return str(d).lower()
    if d is None:
        return ""
    if isinstance(d, list | tuple):
        return ",".join(map(str, d))
    if isinstance(d, dict):
        return ",".join(f"{k}={v}" for k, v in d.items())
    return str(d)


# -- building the object ----------------------------------------------------------------------


def load_config_file(path: str) -> dict[str, Any]:
    """The YAML mapping of ``--config`` (keys with ``-`` or ``_``); SettingError if unusable."""
    try:
        with open(path) as f:
            data = yaml.safe_load(f) or {}
    except OSError as exc:
        raise SettingError(f"config file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "syntax error"
        raise SettingError(f"config file {path}: not valid YAML: {first}") from exc
    if not isinstance(data, dict):
        raise SettingError(f"config file {path}: must be a mapping of setting names to values")
    return {str(k).replace("_", "-"): v for k, v in data.items()}


def resolve(
    cls: type,
    flags: argparse.Namespace | Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    file_values: Mapping[str, Any] | None = None,
    file_name: str = "",
) -> Any:
    """The validated ``cls`` from flags (a parsed namespace, or {name: raw}), the environment
    and a config file's values; SettingError (one line naming the flag) if any is wrong.

    ``file_values`` keys that are not settings of ``cls`` are not checked here (the file may
    also hold the global ones); :func:`unknown_keys` finds them."""
    environ = os.environ if environ is None else environ
    file_values = file_values or {}
    given = vars(flags) if isinstance(flags, argparse.Namespace) else dict(flags or {})
    values: dict[tuple[str, ...], Any] = {}
    for leaf in operands(cls):
        raw = given.get(leaf.dest, given.get(leaf.name))
        if raw is not None:
            values[leaf.path] = _checked(leaf, _convert(leaf, raw, "op"), "op")
    for leaf in leaves(cls):
        if leaf.dest in given:
            raw, source = given[leaf.dest], "flag"
        elif leaf.name in given:
            raw, source = given[leaf.name], "flag"
        elif leaf.env in environ:
            raw, source = environ[leaf.env], leaf.env
        elif leaf.key in file_values:
            raw, source = file_values[leaf.key], f"config file {file_name}".strip()
        elif leaf.spec.fallback is not None:
            values[leaf.path] = leaf.spec.fallback()
            continue
        else:
            continue
        values[leaf.path] = _checked(leaf, _convert(leaf, raw, source), source)
    obj = _build(cls, cls(), (), values)
    missing = [leaf.usage for leaf in _all(cls) if leaf.spec.required and _empty(obj, leaf.path)]
    if missing:
        raise SettingError(f"missing required setting {', '.join(missing)}")
    _validate_all(obj)
    return obj


def _empty(obj: Any, path: tuple[str, ...]) -> bool:
    for name in path:
        obj = getattr(obj, name)
    return obj is None or (isinstance(obj, str | list | tuple | dict) and not obj)


def unknown_keys(file_values: Mapping[str, Any], *classes: type) -> list[str]:
    known = {leaf.key for cls in classes for leaf in leaves(cls)}
    return sorted(k for k in file_values if k not in known)


def _where(leaf: Leaf, source: str) -> str:
    if source == "op":
        return leaf.usage
    return leaf.flag if source == "flag" else f"{leaf.flag} (from {source})"


def _convert(leaf: Leaf, raw: Any, source: str) -> Any:
    try:
        if leaf.spec.parse is not None:
            if isinstance(raw, dict):  # a YAML mapping for a NAME=VALUE,... setting
                raw = ",".join(f"{k}={v}" for k, v in raw.items())
            if isinstance(raw, list):
                raw = ",".join(map(str, raw))
            return leaf.spec.parse(raw)
        if leaf.kind is bool:
            return _bool(raw)
        if leaf.kind is list:
            items = raw if isinstance(raw, list) else [raw]
            words = [w.strip() for item in items for w in str(item).split(",")]
            value = [w for w in words if w]
            return value if isinstance(leaf.default, list) else tuple(value)
        if leaf.kind is int:
            if isinstance(raw, bool) or not str(raw).strip().lstrip("-").isdigit():
                raise ValueError(f"{raw!r} is not a whole number")
            return int(raw)
        if leaf.kind is float:
            if isinstance(raw, bool):
                raise ValueError(f"{raw!r} is not a number")
            try:
                return float(raw)
            except ValueError:
                raise ValueError(f"{raw!r} is not a number") from None
        if isinstance(raw, dict | list):
            raise ValueError(f"expected text, not a YAML {type(raw).__name__}")
        return "" if raw is None else str(raw)
    except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:
        raise SettingError(f"{_where(leaf, source)}: {exc}") from None


def _bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    word = str(raw).strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"{raw!r} is not a boolean (true/false)")


def _checked(leaf: Leaf, value: Any, source: str) -> Any:
    spec = leaf.spec
    problem = ""
    if spec.choices and value not in spec.choices:
        problem = f"{value!r} is not one of {', '.join(spec.choices)}"
    elif spec.minimum is not None and value < spec.minimum:
        problem = f"{value} is below the minimum {spec.minimum:g}"
    elif spec.maximum is not None and value > spec.maximum:
        problem = f"{value} is above the maximum {spec.maximum:g}"
    elif spec.check is not None:
        try:
            spec.check(value)
        except ValueError as exc:
            problem = str(exc)
    if problem:
        raise SettingError(f"{_where(leaf, source)}: {problem}")
    return value


def _build(
    cls: type, instance: Any, path: tuple[str, ...], values: Mapping[tuple[str, ...], Any]
) -> Any:
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        here = (*path, f.name)
        current = getattr(instance, f.name)
        if f.metadata.get("internal") or not f.init:
            continue
        if "setting" not in f.metadata and dataclasses.is_dataclass(current):
            changes[f.name] = _build(type(current), current, here, values)
        elif here in values:
            changes[f.name] = values[here]
    return dataclasses.replace(instance, **changes)


def _validate_all(obj: Any) -> None:
    """Each nested settings object's ``validate()``, innermost first; a ValueError (whose
    message names the flags) becomes a SettingError."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if f.metadata.get("internal"):
            continue
        if "setting" not in f.metadata and dataclasses.is_dataclass(value):
            _validate_all(value)
    check = getattr(obj, "validate", None)
    if callable(check):
        try:
            check()
        except ValueError as exc:
            raise SettingError(" ".join(str(exc).split())) from None


# -- the reference ----------------------------------------------------------------------------


def reference(daemons: Iterable[tuple[str, type]]) -> str:
    """Markdown: per daemon, a table of every setting (flag, variable, key, default, help)."""
    lines = [
        "# Settings reference",
        "",
        "Generated by `python -m hakube.cli.settings_ref > docs/settings.md` from the settings "
        "dataclasses; do not edit by hand.",
        "",
        "Every setting is a flag, a `HAKUBE_*` environment variable and a key of the YAML file "
        "given by `hakube --config FILE` (or `HAKUBE_CONFIG`); a flag wins over the variable, "
        "the variable over the file, the file over the default. A bad value stops the command "
        "with one line naming the flag and exit status 2.",
    ]
    for command, cls in daemons:
        lines += [
            "",
            f"## hakube {command}",
            "",
        ]
        for leaf in operands(cls):
            lines.append(f"Operand `{leaf.usage}`: {leaf.help}")
            lines.append("")
        lines.append("| Flag | Variable | Config key | Default | Meaning |")
        lines.append("|---|---|---|---|---|")
        for leaf in leaves(cls):
            flag = f"`{leaf.flag}`" + "".join(f", `{a}`" for a in leaf.spec.aliases)
            cells = [
                flag,
                f"`{leaf.env}`",
                f"`{leaf.key}`",
                f"`{show_default(leaf)}`" if show_default(leaf) else "",
                leaf.help.replace("|", "\\|"),
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
