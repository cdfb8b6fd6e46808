"""Configs: dataclasses, composed from config groups, a YAML file and `key=value` overrides (OmegaConf).

Composition, later wins: the dataclass defaults ← the chosen option of each config group ← the
`--config` file ← `key=value` overrides. A config group is a folder of YAML presets
(`configs/<group>/<option>.yaml`, chosen with `group=option`); a config class lists its groups in
its `config_groups` class attribute (see TRAIN_GROUPS, PRETRAIN_GROUPS, REC_GROUPS below). Options
are looked up in each `--config-dir`, then `./configs` in the working directory, then the package's
own `eventseq/configs`; the first file found wins, so a user file can shadow a shipped one.

Unknown keys and wrong types raise ConfigError naming the key (and the closest valid one).
`describe` turns the dataclasses' docstrings into the `--help` text, so every option is explained
in exactly one place.

Why not hydra-core's compose API (tried: hydra-core 1.3.8 over TrainConfig in the ConfigStore):
it requires omegaconf<2.4, older than ours; its override grammar rejects command lines we accept
(`data.path=/data/a=b` is a parse error, and `model.event_encoder.embedding_dims.mcc=4` must be
spelt `+model...` since the key is new); a misspelt key (`trainr.max_epochs=3`) gets "to append to
your config use +trainr.max_epochs=3" instead of the closest valid key; it keeps a process-wide
singleton; and its groups belong to a search path while ours depend on the command (`data` is a
group of `train` but a plain path of `rec pretrain`). The composition itself is the short code below.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import re
import types
import typing
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from eventseq.errors import ConfigError, did_you_mean

T = TypeVar("T")

PACKAGE_CONFIG_DIR = Path(__file__).resolve().parent / "configs"
USER_CONFIG_DIR = Path("configs")  # relative to the working directory
SELF = "_self_"  # a defaults-list entry: where the config file's own keys are merged
CHOICES_ATTRIBUTE = "_config_group_choices"  # set on the object load_config returns; read by group_choices
_OPTION_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


# ----------------------------------------------------------------------------- declared option ranges

RULES = "eventseq.rules"  # dataclass field metadata key: the option's valid range or choices
_RULE_TEXT = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}


def option(
    default: Any = dataclasses.MISSING,
    *,
    default_factory: Any = dataclasses.MISSING,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: Sequence[Any] | None = None,
) -> Any:
    """A config dataclass field with its valid range (ge/gt/le/lt) or `choices` declared beside it.

    `check_options` checks them (for a list or mapping: each of its values) with the field's type.
    Example: `max_len: int = option(512, ge=1)`.
    """
    rules = {name: value for name, value in (("ge", ge), ("gt", gt), ("le", le), ("lt", lt), ("choices", choices))
             if value is not None}
    return dataclasses.field(default=default, default_factory=default_factory, metadata={RULES: rules})


def with_overrides(config: T, overrides: dict[str, Any], command: str, arguments: Sequence[str] = ()) -> T:
    """A copy of `config` with keyword `overrides` set (the caller's object is never changed).

    Raises:
        ConfigError: an override that is not a field, with the closest field (or other `arguments` of
            the function) named: "unknown prepare option 'categorcal' (did you mean 'categorical'?)".
    """
    config = dataclasses.replace(config)
    names = [item.name for item in dataclasses.fields(config)]
    for key, value in overrides.items():
        if key not in names:
            raise ConfigError(f"unknown {command} option '{key}'{did_you_mean(key, [*names, *arguments])}")
        setattr(config, key, value)
    return config


def check_value(key: str, value: Any, whole: bool = False, **rules: Any) -> None:
    """Raise ConfigError naming `key`, `value` and what is allowed if `value` breaks `rules` (see `option`).

    A list or mapping is checked value by value; None passes (an optional option left unset).
    `whole`: the option takes whole numbers (said so in the message).
    """
    if value is None:
        return
    if isinstance(value, (list, tuple)):
        for item in value:
            check_value(key, item, whole, **rules)
        return
    if isinstance(value, dict):
        for name, item in value.items():
            check_value(f"{key}.{name}", item, whole, **rules)
        return
    if "choices" in rules and value not in rules["choices"]:
        hint = did_you_mean(str(value), map(str, rules["choices"]))
        raise ConfigError(f"{key}={value!r}: expected one of {list(rules['choices'])}{hint}")
    bounds = {name: bound for name, bound in rules.items() if name in _RULE_TEXT}
    if not bounds:
        return
    allowed = ("a whole number " if whole else "a number ") + " and ".join(
        f"{_RULE_TEXT[name]} {bound}" for name, bound in bounds.items())
    if isinstance(value, bool) or not isinstance(value, numbers.Integral if whole else numbers.Real):
        raise ConfigError(f"{key}={value!r}: expected {allowed}")
    broken = (math.isnan(value)
              or ("ge" in bounds and not value >= bounds["ge"]) or ("gt" in bounds and not value > bounds["gt"])
              or ("le" in bounds and not value <= bounds["le"]) or ("lt" in bounds and not value < bounds["lt"]))
    if broken:
        raise ConfigError(f"{key}={value!r}: expected {allowed}")


def check_options(config: Any, prefix: str = "") -> None:
    """Check every field of a config dataclass (nested sections too) against its type and declared rules.

    The one check of option values, for the CLI (`load_config` calls it) and the API (train,
    pretrain, prepare ... call it on the config they are given) alike, before any data is read.

    Raises:
        ConfigError: naming the key, the value and what is allowed.
    """
    hints = typing.get_type_hints(type(config))
    for item in dataclasses.fields(config):
        key, value = f"{prefix}{item.name}", getattr(config, item.name)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            check_options(value, f"{key}.")
            continue
        hint = hints.get(item.name, Any)
        if not _has_type(value, hint):
            raise ConfigError(f"{key}={value!r}: expected {_type_name(hint)}, got {type(value).__name__}")
        if isinstance(value, float) and math.isnan(value):
            raise ConfigError(f"{key}=nan: expected a number")
        whole = "float" not in str(hint) and re.search(r"\bint\b", str(hint)) is not None
        check_value(key, value, whole, **item.metadata.get(RULES, {}))


def _has_type(value: Any, hint: Any) -> bool:
    """Whether `value` is of the annotated type (ints are floats; bools are not numbers)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any or isinstance(hint, TypeVar):
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_has_type(value, arg) for arg in args)
    if hint is type(None):
        return value is None
    if origin in (list, tuple, Sequence, typing.Sequence):
        return isinstance(value, (list, tuple)) and (not args or all(_has_type(item, args[0]) for item in value))
    if origin is dict:
        key_type, value_type = args or (Any, Any)
        return isinstance(value, dict) and all(_has_type(k, key_type) and _has_type(v, value_type)
                                               for k, v in value.items())
    if hint is float:  # NumPy's scalars count: they register as numbers.Real / numbers.Integral
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _type_name(hint: Any) -> str:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in args)
    if hint is type(None):
        return "null"
    if origin in (list, tuple):
        return f"a list of {_type_name(args[0]).removeprefix('a ')}s" if args else "a list"
    if origin is dict:
        return f"a mapping of {_type_name(args[0]).removeprefix('a ')}s to {_type_name(args[1]).removeprefix('a ')}s" \
            if args else "a mapping"
    names = {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def saved_config(schema: type[T], values: Any) -> T:
    """A config dataclass rebuilt from a saved model's JSON, typed by OmegaConf like a user's config.

    Strings are taken literally: an OmegaConf interpolation such as `${oc.env:HOME}` in a hand-edited
    config.json stays that text, it is never resolved (a model file must not read the environment).
    """
    def literal(value: Any) -> Any:
        if isinstance(value, str):
            return value.replace("${", "\\${")
        if isinstance(value, dict):
            return {key: literal(item) for key, item in value.items()}
        if isinstance(value, list):
            return [literal(item) for item in value]
        return value

    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), literal(values)))  # type: ignore[return-value]


def _field_hint(schema: type, key: str) -> Any:
    """The type annotation of the dotted `key` of a config dataclass (Any if it is not a field)."""
    owner: Any = schema
    *sections, name = key.split(".")
    for section in sections:
        item = next((f for f in dataclasses.fields(owner) if f.name == section), None)
        default = None if item is None else (item.default_factory() if item.default_factory is not dataclasses.MISSING
                                             else item.default)
        if not dataclasses.is_dataclass(default):
            return Any
        owner = type(default)
    return typing.get_type_hints(owner).get(name, Any)


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
    if "is not a subclass of" in message or "Cannot assign" in message and "to a DictConfig" in message:
        keys = _all_keys(schema)
        leaves = [k for k in keys if k.startswith(f"{key}.") and not any(o.startswith(f"{k}.") for o in keys)]
        example = leaves[0] if leaves else f"{key}.<option>"
        return ConfigError(f"config key '{key}' in {source} is a section of options, not a value: set its "
                           f"keys ({example.removeprefix(key + '.')}: ... under '{key}:', or {example}=... "
                           f"on the command line); see --help")
    return ConfigError(f"bad value for config key '{key}' in {source}: {message}")


def _shell_mapping(value: str) -> str:
    """`{a:b,c:d}` as typed in a shell means {a: b, c: d}; YAML reads `a:b` as one key without the space."""
    if not (value.startswith("{") and value.endswith("}")):
        return value
    return re.sub(r"(?<=[{,])(\s*[\w.-]+):(?=\S)", r"\1: ", value)


@dataclasses.dataclass(frozen=True)
class ConfigGroup:
    """A config group: a folder of YAML presets `configs/<name>/<option>.yaml`, chosen with `name=option`.

    Attributes:
        name: the group as typed on the command line (`encoder=transformer`).
        package: the config section an option's keys are merged into ("" = the top level).
        summary: one line for --help.
        default: the option applied when nothing chooses one (None = none).
        sets_field: a top-level field that the choice sets: to the option's own value for it (its
            `<sets_field>:` key, else the option's name). A `<sets_field>:` key in a config file
            chooses the option, so `method` is one thing whether it is read as a field or a group.
    """

    name: str
    package: str
    summary: str
    default: str | None = None
    sets_field: str | None = None


@dataclasses.dataclass(frozen=True)
class GroupChoice:
    """The option a run took from a config group, and the file it was read from."""

    group: str
    option: str
    path: Path


METHOD_GROUP = ConfigGroup("method", "", "the self-supervised objective and the settings it needs (sets `method`)",
                           default="coles", sets_field="method")
ENCODER_GROUP = ConfigGroup("encoder", "model", "the sequence encoder (model.*)")
DATA_GROUP = ConfigGroup("data", "data", "a prepared data set and how to batch it (data.*)")
TRAINER_GROUP = ConfigGroup("trainer", "trainer", "Trainer presets (trainer.*)")
# The groups of each command's config class (its `config_groups`), in the order they are merged.
TRAIN_GROUPS = (ENCODER_GROUP, DATA_GROUP, TRAINER_GROUP)
PRETRAIN_GROUPS = (METHOD_GROUP, ENCODER_GROUP, DATA_GROUP, TRAINER_GROUP)
REC_GROUPS = (TRAINER_GROUP,)  # rec's `data` is a path and its `model` a RecModelConfig: no such groups


def config_groups(schema: type) -> tuple[ConfigGroup, ...]:
    """The config groups of a config class (its `config_groups` class attribute; none by default)."""
    return tuple(getattr(schema, "config_groups", ()))


def config_search_path(config_dirs: Sequence[str | os.PathLike] = ()) -> list[Path]:
    """Where group options are looked up, first match first: each of `config_dirs`, ./configs, the package's.

    Raises:
        ConfigError: a directory of `config_dirs` does not exist.
    """
    paths = []
    for directory in config_dirs:
        if not Path(directory).is_dir():
            raise ConfigError(f"--config-dir {directory}: not a directory")
        paths.append(Path(directory))
    if USER_CONFIG_DIR.is_dir():
        paths.append(USER_CONFIG_DIR)
    paths.append(PACKAGE_CONFIG_DIR)
    unique: list[Path] = []
    for path in paths:
        if path.resolve() not in [known.resolve() for known in unique]:
            unique.append(path)
    return unique


def group_options(group: str, search_path: Sequence[Path]) -> dict[str, Path]:
    """Option name → its YAML file (`<dir>/<group>/<option>.yaml`), the first found along `search_path`."""
    options: dict[str, Path] = {}
    for directory in search_path:
        for path in sorted((directory / group).glob("*.yaml")):
            options.setdefault(path.stem, path)
    return dict(sorted(options.items()))


def _where(path: Path) -> str:
    """'eventseq' for a shipped option, else the search directory it came from."""
    root = path.parent.parent
    return "eventseq" if root.resolve() == PACKAGE_CONFIG_DIR else str(root)


def _find_option(group: ConfigGroup, option: str, search_path: Sequence[Path], source: str) -> Path:
    options = group_options(group.name, search_path)
    if _OPTION_NAME.match(option) and option in options:
        return options[option]
    places: dict[str, list[str]] = {}
    for name, path in options.items():
        places.setdefault(_where(path), []).append(name)
    listed = "; ".join(f"{', '.join(names)} ({place})" for place, names in places.items()) or "none"
    searched = ", ".join(str(directory / group.name) for directory in search_path)
    raise ConfigError(
        f"{group.name}={option!r} ({source}): no such option of config group '{group.name}'"
        f"{did_you_mean(option, options)}; available {group.name} options: {listed} "
        f"(searched {searched}; add your own as <dir>/{group.name}/<option>.yaml)"
    )


def _read_yaml(path: Path, what: str) -> DictConfig:
    if not path.is_file():
        raise ConfigError(f"{what} not found: {path}")
    try:
        loaded = OmegaConf.load(path)
    except Exception as error:  # yaml.YAMLError and friends
        raise ConfigError(f"cannot parse {what} {path}: {error}") from None
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"{what} {path} must hold a mapping of keys to values, not a {type(loaded).__name__}")
    return loaded


def _read_option(group: ConfigGroup, path: Path) -> DictConfig:
    """An option's keys, placed under the group's package."""
    content = _read_yaml(path, f"{group.name} option")
    if "defaults" in content:
        raise ConfigError(f"{path}: a defaults list is read only in the --config file, not in a group option")
    for part in reversed(group.package.split(".") if group.package else []):
        content = OmegaConf.create({part: content})
    return content


def _defaults_list(entries: Any, path: Path, groups: dict[str, ConfigGroup]) -> list[tuple[str, str | None]]:
    """A config file's `defaults:` as (group, option) pairs in order, with (SELF, None) where its own keys go."""
    example = "defaults: [{encoder: transformer}, {trainer: quick}, _self_]"
    entries = OmegaConf.to_container(entries) if isinstance(entries, ListConfig) else entries
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: 'defaults' must be a list, e.g. {example}")
    if not groups:
        raise ConfigError(f"{path}: a defaults list chooses config group options, and this command has no groups")
    pairs: list[tuple[str, str | None]] = []
    for entry in entries:
        if entry == SELF:
            pairs.append((SELF, None))
            continue
        if not (isinstance(entry, dict) and len(entry) == 1):
            raise ConfigError(f"{path}: defaults entry {entry!r} must be `group: option` or {SELF}, e.g. {example}")
        ((group, option),) = entry.items()
        if group not in groups:
            raise ConfigError(f"{path}: defaults list names config group '{group}'{did_you_mean(group, groups)}; "
                              f"this command's groups: {', '.join(groups)}")
        if option is not None and not isinstance(option, str):
            raise ConfigError(f"{path}: defaults entry {group}: {option!r} must name an option")
        if group in (name for name, _ in pairs):
            raise ConfigError(f"{path}: defaults list names config group '{group}' twice")
        pairs.append((group, option))
    if (SELF, None) not in pairs:
        pairs.append((SELF, None))  # the file's own keys win over its groups, as in Hydra
    return pairs


def _merge(config: DictConfig, other: DictConfig, schema: type, source: str) -> DictConfig:
    try:
        return OmegaConf.merge(config, other)
    except OmegaConfBaseException as error:
        raise _key_error(error, schema, source, _offending_key(config, other)) from None


def _offending_key(config: DictConfig, other: DictConfig, prefix: str = "") -> str:
    """The (dotted) key of `other` whose merge into `config` fails: OmegaConf does not always name it."""
    for key in other:
        try:
            OmegaConf.merge(config, OmegaConf.create({key: other[key]}))
        except OmegaConfBaseException:
            value, section = other[key], config.get(key)
            if isinstance(value, DictConfig) and isinstance(section, DictConfig):
                return _offending_key(section, value, f"{prefix}{key}.") or f"{prefix}{key}"
            return f"{prefix}{key}"
    return ""


def _read_config_file(
    path: Path, groups: dict[str, ConfigGroup]
) -> tuple[DictConfig, list[tuple[str, str | None]], dict[str, Any]]:
    """A --config file as (its own keys, its defaults list, {group: value} of the `sets_field` keys it sets).

    The `sets_field` keys (`method:`) are taken out of the keys: the group's option sets that field.
    """
    body = _read_yaml(path, "config file")
    listed: list[tuple[str, str | None]] = [(SELF, None)]
    if "defaults" in body:
        listed = _defaults_list(body.pop("defaults"), path, groups)
    field_values: dict[str, Any] = {}
    for name, group in groups.items():
        if group.sets_field and group.sets_field in body:
            field_values[name] = body.pop(group.sets_field)
        elif group.package and isinstance(body.get(name), str):
            raise ConfigError(
                f"{path}: '{name}: {body[name]}' — choose a {name} option in the defaults list "
                f"(defaults: [{{{name}: {body[name]}}}]); a '{name}:' key holds the {group.package} section itself"
            )
    return body, listed, field_values


def load_config(
    schema: type[T],
    path: str | os.PathLike | None = None,
    overrides: list[str] | None = None,
    config_dirs: Sequence[str | os.PathLike] = (),
) -> T:
    """Build a `schema` dataclass from defaults ← group options ← YAML file ← `key=value` overrides.

    `group=option` among `overrides` (or `group: option` in the file's `defaults:` list) chooses
    an option of one of the schema's config groups; the options are merged in the order of the
    file's defaults list (groups it does not name first, in the schema's order), then the file's
    own keys (or where `_self_` stands in its defaults list), then the other overrides.

    Args:
        schema: a config dataclass; its `config_groups` class attribute lists its groups.
        path: an optional YAML file (may start with a Hydra-style `defaults:` list).
        overrides: `key=value` and `group=option` strings, applied last.
        config_dirs: directories searched for `<group>/<option>.yaml` before ./configs and the package.

    Returns:
        The config; `group_choices(config)` tells which group options went into it.

    Raises:
        ConfigError: unknown key (with a suggestion), bad value type, unreadable YAML, bad override,
            unknown config group or option (listing the available ones).
    """
    groups = {group.name: group for group in config_groups(schema)}
    search_path = config_search_path(config_dirs) if groups else []
    choices: dict[str, str | None] = {name: group.default for name, group in groups.items()}
    sources = {name: "default" for name in groups}  # where each choice came from, for error messages
    body: DictConfig | None = None
    listed: list[tuple[str, str | None]] = [(SELF, None)]
    field_values: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        body, listed, field_values = _read_config_file(path, groups)
    named = [name for name, _ in listed if name != SELF]
    order = [name for name in groups if name not in named] + [name for name, _ in listed]
    for name, option in listed:
        if name != SELF:
            choices[name], sources[name] = option, f"defaults list of {path}"
    for name in [name for name in field_values if name not in named]:
        # `method: mlm` in a file whose defaults list does not choose the method chooses it
        choices[name], sources[name] = field_values.pop(name), f"'{groups[name].sets_field}:' in {path}"
    key_overrides = []
    for override in overrides or []:
        if "=" not in override:
            raise ConfigError(f"override {override!r} must look like key=value")
        key, value = override.split("=", 1)
        if key in groups:
            choices[key] = None if value in ("null", "") else value
            sources[key] = "command line"
            field_values.pop(key, None)  # the command line wins over the file
        else:
            key_overrides.append(override)

    config = OmegaConf.structured(schema)
    chosen: list[GroupChoice] = []
    for name in order:
        if name == SELF:
            if body is not None:
                config = _merge(config, body, schema, str(path))
            continue
        group, option = groups[name], choices[name]
        if option is None:
            if group.sets_field:
                raise ConfigError(f"{name}=null ({sources[name]}): config group '{name}' needs an option")
            continue
        option_path = _find_option(group, str(option), search_path, sources[name])
        content = _read_option(group, option_path)
        config = _merge(config, content, schema, f"{name} option '{option}' ({option_path})")
        chosen.append(GroupChoice(name, str(option), option_path.resolve()))
        if group.sets_field:
            value = content.get(group.sets_field, option)
            if name in field_values and field_values[name] not in (value, option):
                raise ConfigError(
                    f"{path}: '{group.sets_field}: {field_values[name]}' contradicts its defaults list "
                    f"({name}: {option}, which sets {group.sets_field}={value}); choose the {name} in one place"
                )
            config = _merge(config, OmegaConf.create({group.sets_field: value}), schema, str(option_path))

    all_keys = _all_keys(schema)
    for override in key_overrides:
        key, value = override.split("=", 1)
        if key not in all_keys and not any(key.startswith(k + ".") for k in all_keys):
            raise ConfigError(f"unknown config key '{key}'{did_you_mean(key, all_keys + list(groups))}; see --help")
        try:
            config = OmegaConf.merge(config, OmegaConf.from_dotlist([f"{key}={_shell_mapping(value)}"]))
        except OmegaConfBaseException as error:
            raise _key_error(error, schema, f"override {override!r}", key) from None
        except (TypeError, ValueError):  # OmegaConf's own failure to merge a list into a mapping, and the like
            expected = _type_name(_field_hint(schema, key))
            raise ConfigError(f"bad value for config key '{key}' in override {override!r}: expected {expected}"
                              f"{' (e.g. ' + key + '={name: value})' if 'mapping' in expected else ''}") from None
    try:
        result = OmegaConf.to_object(config)
    except OmegaConfBaseException as error:
        raise _key_error(error, schema, "config") from None
    check_options(result)
    if groups:
        setattr(result, CHOICES_ATTRIBUTE, tuple(chosen))
    return result  # type: ignore[return-value]


def group_choices(config: Any) -> tuple[GroupChoice, ...]:
    """The group options `load_config` merged into `config`, in order (none for a config built in Python)."""
    return tuple(getattr(config, CHOICES_ATTRIBUTE, ()))


def resolved_yaml(config: Any) -> str:
    """What a run saves as config.yaml: every key as the run used it, after a header naming the group options.

    Loading this file again (`--config`) gives the same config without needing the option files.
    """
    import yaml

    lines = ["# The resolved config of this run: every key as it ran (re-run it with --config this-file)."]
    choices = group_choices(config)
    if choices:
        lines.append("# config groups: " + " ".join(f"{choice.group}={choice.option}" for choice in choices))
        lines.extend(f"#   {choice.group}={choice.option} from {choice.path}" for choice in choices)
    return "\n".join(lines) + "\n" + yaml.safe_dump(dataclasses.asdict(config), sort_keys=False)


def describe_groups(schema: type, search_path: Sequence[Path] | None = None) -> list[str]:
    """--help lines: each config group of `schema` with its options and their first comment line."""
    groups = config_groups(schema)
    if not groups:
        return []
    search_path = config_search_path() if search_path is None else search_path
    lines = ["", "Config groups (choose with group=option; your own: ./configs/<group>/<option>.yaml or "
                 "--config-dir DIR):"]
    for group in groups:
        default = f" (default: {group.default})" if group.default else ""
        lines.append(f"  {group.name}=OPTION  {group.summary}{default}")
        for name, path in group_options(group.name, search_path).items():
            where = "" if _where(path) == "eventseq" else f" [{_where(path)}]"
            lines.append(f"      {name:<20}{_first_comment(path)}{where}")
    return lines


def _first_comment(path: Path) -> str:
    """The first `# ...` line of a YAML file: an option's one-line description."""
    try:
        for line in path.read_text().splitlines():
            if line.startswith("#"):
                return line.lstrip("#").strip()
    except OSError:
        pass
    return ""


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
