"""Configs: dataclasses, filled from a YAML file and `key=value` overrides (OmegaConf).

Unknown keys and wrong types raise ConfigError naming the key (and the closest valid one).
`describe` turns the dataclasses' docstrings into the `--help` text, so every option is explained
in exactly one place.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from eventseq.errors import ConfigError, did_you_mean

T = TypeVar("T")


def _all_keys(schema: type, prefix: str = "") -> list[str]:
    keys = []
    for item in dataclasses.fields(schema):
        name = f"{prefix}{item.name}"
        keys.append(name)
        default = item.default_factory() if item.default_factory is not dataclasses.MISSING else item.default
        if dataclasses.is_dataclass(default):
            keys.extend(_all_keys(type(default), f"{name}."))
    return keys


def _key_error(error: OmegaConfBaseException, schema: type, source: str, fallback_key: str = "") -> ConfigError:
    key = getattr(error, "full_key", None) or fallback_key
    message = str(error).splitlines()[0]
    if isinstance(error, ConfigKeyError) or "not in" in message:
        hint = did_you_mean(key, _all_keys(schema)) if key else ""
        return ConfigError(f"unknown config key '{key}' in {source}{hint}; see --help for the options")
    return ConfigError(f"bad value for config key '{key}' in {source}: {message}")


def _shell_mapping(value: str) -> str:
    """`{a:b,c:d}` as typed in a shell means {a: b, c: d}; YAML reads `a:b` as one key without the space."""
    if not (value.startswith("{") and value.endswith("}")):
        return value
    return re.sub(r"(?<=[{,])(\s*[\w.-]+):(?=\S)", r"\1: ", value)


def load_config(schema: type[T], path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> T:
    """Build a `schema` dataclass from defaults ← YAML file ← `key=value` overrides.

    Raises:
        ConfigError: unknown key (with a suggestion), bad value type, unreadable YAML, bad override.
    """
    config = OmegaConf.structured(schema)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            loaded = OmegaConf.load(path)
        except Exception as error:  # yaml.YAMLError and friends
            raise ConfigError(f"cannot parse config file {path}: {error}") from None
        try:
            config = OmegaConf.merge(config, loaded)
        except OmegaConfBaseException as error:
            raise _key_error(error, schema, str(path)) from None
    for override in overrides or []:
        if "=" not in override:
            raise ConfigError(f"override {override!r} must look like key=value")
        key, value = override.split("=", 1)
        if key not in _all_keys(schema) and not any(key.startswith(k + ".") for k in _all_keys(schema)):
            raise ConfigError(f"unknown config key '{key}'{did_you_mean(key, _all_keys(schema))}; see --help")
        try:
            config = OmegaConf.merge(config, OmegaConf.from_dotlist([f"{key}={_shell_mapping(value)}"]))
        except OmegaConfBaseException as error:
            raise _key_error(error, schema, f"override {override!r}", key) from None
    try:
        return OmegaConf.to_object(config)  # type: ignore[return-value]
    except OmegaConfBaseException as error:
        raise _key_error(error, schema, "config") from None


def _attribute_docs(schema: type) -> dict[str, str]:
    """Parse the 'Attributes:' section of a dataclass docstring into {name: text}."""
    docs: dict[str, str] = {}
    for klass in reversed(schema.__mro__):  # subclasses add to (and override) their bases' docs
        doc = klass.__doc__ or ""
        if "Attributes:" not in doc:
            continue
        current = None
        for line in doc.split("Attributes:", 1)[1].splitlines():
            match = re.match(r"^\s{4,8}(\w+):\s*(.*)$", line)
            if match:
                current = match.group(1)
                docs[current] = match.group(2).strip()
            elif current and line.strip():
                docs[current] += " " + line.strip()
    return docs


def describe(schema: type, prefix: str = "", instance: Any = None) -> list[str]:
    """One line per option: `key (default): explanation`, nested sections included.

    `instance` gives the defaults of a nested section built by its parent's default factory
    (which may differ from the section class's own defaults).
    """
    lines = []
    docs = _attribute_docs(schema)
    for item in dataclasses.fields(schema):
        name = f"{prefix}{item.name}"
        if instance is not None:
            default = getattr(instance, item.name)
        else:
            default = item.default_factory() if item.default_factory is not dataclasses.MISSING else item.default
        if dataclasses.is_dataclass(default):
            lines.append(f"  [{name}] {(type(default).__doc__ or '').strip().splitlines()[0]}")
            lines.extend(describe(type(default), f"{name}.", default))
            continue
        shown = "required" if default in ("", dataclasses.MISSING) else repr(default)
        lines.append(f"  {name} ({shown}): {docs.get(item.name, '')}".rstrip(": "))
    return lines
