"""Typed YAML: build frozen dataclasses from raw mappings, with errors that name the key path,
what was expected and what was received. Generic; knows nothing about xdt's schema."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Hashable, Sequence
from typing import Any, Literal

import yaml

from xdt.errors import ConfigError


def at_least(minimum: float) -> dict[str, float]:
    """Field metadata: the value must be >= minimum."""
    return {"min": minimum}


def between(minimum: float, maximum: float) -> dict[str, float]:
    """Field metadata: the value must lie in [minimum, maximum]."""
    return {"min": minimum, "max": maximum}


MERGE_TAG = "tag:yaml.org,2002:merge"


class UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key written twice in one mapping, at any depth.

    Plain PyYAML keeps the last value silently, so `seed: 42` followed later by `seed: 43` runs
    with 43 and nobody notices. Each mapping and sequence node is told its key path by its parent
    (parents are constructed before their children), so the error names the full path.
    """

    def __init__(self, stream: str, source: str, root: str = "") -> None:
        super().__init__(stream)
        self.source = source
        self.root = root
        self.key_paths: dict[int, str] = {}

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        """Check the keys written in this mapping (merge keys `<<` may repeat others), then construct it."""
        path = self.key_paths.get(id(node), self.root)
        first_marks: dict[Any, yaml.Mark] = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue
            key_path = join_path(path, str(key))
            if key in first_marks:
                raise duplicate_key_error(self.source, key_path, first_marks[key], key_node.start_mark)
            first_marks[key] = key_node.start_mark
            self.key_paths[id(value_node)] = key_path
        return super().construct_mapping(node, deep=deep)

    def construct_sequence(self, node: yaml.SequenceNode, deep: bool = False) -> list[Any]:
        """Tell each item its key path (`transfer.methods[1]`), then construct the list."""
        path = self.key_paths.get(id(node), self.root)
        for index, child in enumerate(node.value):
            self.key_paths[id(child)] = f"{path}[{index}]"
        return super().construct_sequence(node, deep=deep)


def duplicate_key_error(source: str, key_path: str, first: yaml.Mark, again: yaml.Mark) -> ConfigError:
    """`FILE:LINE: duplicate key 'a.b': first at line 3, again at line 9` (columns too when both are on one line)."""
    def where(mark: yaml.Mark) -> str:
        return f"line {mark.line + 1}" + (f" column {mark.column + 1}" if first.line == again.line else "")

    return ConfigError(
        f"{source}:{again.line + 1}: duplicate key '{key_path}': first at {where(first)}, again at {where(again)}. "
        "Expected each key once per mapping; remove one of them"
    )


def load_yaml(text: str, *, source: str, root: str = "") -> Any:
    """Parse one YAML document safely, refusing duplicate keys (ConfigError naming `source`, key path and lines).

    `root` is the key path of the document itself, for a value given on its own (`--set dataset={...}`).
    """
    loader = UniqueKeyLoader(text, source, root)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def check_path_component(value: str, *, key: str, source: str) -> None:
    """Refuse a value used as one folder name (runs/<experiment>/, data/<dataset.name>/) that would leave that folder.

    A separator, `..` or an absolute path would put a run or a prepared dataset outside the
    configured runs and data folders, or inside another experiment's.
    """
    problem = path_component_problem(value)
    if problem:
        raise ConfigError(
            f"{source}: {key}: expected a name usable as a single folder name (not empty, no '/' or '\\', "
            f"not '.' or '..', not an absolute path). Received: {value!r} ({problem})"
        )


def path_component_problem(value: str) -> str | None:
    """Why `value` is not a safe single path component, or None when it is."""
    if not value.strip():
        return "empty"
    if value.startswith(("/", "\\")):
        return "an absolute path"
    if "/" in value or "\\" in value:
        return "contains a path separator"
    if value in (".", ".."):
        return "refers to a folder, not a name"
    if "\0" in value:
        return "contains a NUL character"
    return None


def apply_override(raw: dict[str, Any], override: str, *, source: str) -> None:
    """Apply one `key.path=value` override (value parsed as YAML) to a raw config."""
    if "=" not in override:
        raise ConfigError(f"--set expects key.path=value. Received: {override!r}")
    key_path, value_text = override.split("=", 1)
    keys = key_path.strip().split(".")
    if not all(keys):
        raise ConfigError(f"--set expects key.path=value. Received: {override!r}")
    try:
        value = load_yaml(value_text, source=f"{source}: --set {key_path}", root=key_path.strip())
    except yaml.YAMLError:
        value = value_text
    node = raw
    for depth, key in enumerate(keys[:-1]):
        child = node.get(key)
        if child is None:
            child = {}
            node[key] = child
        if not isinstance(child, dict):
            partial = ".".join(keys[: depth + 1])
            raise ConfigError(f"{source}: --set {key_path}: '{partial}' is a value, not a section")
        node = child
    node[keys[-1]] = value


def check_name(name: str, valid: Sequence[str], *, key: str, source: str) -> None:
    """Fail with a did-you-mean when `name` is not one of `valid`."""
    if name in valid:
        return
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise ConfigError(f"{source}: {key}: unknown name {name!r}.{hint} Available: {', '.join(valid)}")


def build_dataclass(cls: type, raw: Any, *, key_path: str, source: str) -> Any:
    """Turn a raw mapping into an instance of dataclass `cls`, checking every key and type."""
    where = key_path or "top level"
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: {where}: expected a mapping, received {describe(raw)}")
    hints = typing.get_type_hints(cls)
    fields = {item.name: item for item in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            close = difflib.get_close_matches(str(key), list(fields), n=1)
            hint = f" Did you mean '{join_path(key_path, close[0])}'?" if close else ""
            raise ConfigError(
                f"{source}: unknown key '{join_path(key_path, str(key))}'.{hint} "
                f"Valid keys here: {', '.join(fields)}"
            )
    values = {}
    for name, spec in fields.items():
        child_path = join_path(key_path, name)
        if name not in raw:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{source}: missing required key '{child_path}'")
            continue
        value = convert(hints[name], raw[name], key_path=child_path, source=source)
        check_bounds(spec, value, key_path=child_path, source=source)
        values[name] = value
    return cls(**values)


def convert(annotation: Any, value: Any, *, key_path: str, source: str) -> Any:
    """Check `value` against a type annotation and convert it (int → float, list → list)."""
    origin = typing.get_origin(annotation)
    arguments = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in arguments:
            return None
        options = [argument for argument in arguments if argument is not type(None)]
        errors = []
        for option in options:
            try:
                return convert(option, value, key_path=key_path, source=source)
            except ConfigError as error:
                errors.append(error)
        if len(options) == 1:
            raise errors[0]
        raise ConfigError(f"{source}: {key_path}: expected {describe_type(annotation)}, received {describe(value)}")
    if origin is Literal:
        if value not in arguments:
            close = difflib.get_close_matches(str(value), [str(item) for item in arguments], n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise ConfigError(
                f"{source}: {key_path}: expected one of {', '.join(map(str, arguments))}, "
                f"received {describe(value)}.{hint}"
            )
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {key_path}: expected a list, received {describe(value)}")
        return [convert(arguments[0], item, key_path=f"{key_path}[{index}]", source=source) for index, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key_path}: expected a mapping, received {describe(value)}")
        return dict(value)
    if dataclasses.is_dataclass(annotation):
        return build_dataclass(annotation, value, key_path=key_path, source=source)
    if annotation is Any:
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {key_path}: expected true or false, received {describe(value)}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: {key_path}: expected an integer, received {describe(value)}")
        return value
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: {key_path}: expected a number, received {describe(value)}")
        return float(value)
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {key_path}: expected a string, received {describe(value)}")
        return value
    raise TypeError(f"Unsupported config annotation {annotation!r} at {key_path}")


def check_bounds(spec: dataclasses.Field, value: Any, *, key_path: str, source: str) -> None:
    """Apply the `min`/`max` bounds declared in a field's metadata."""
    if value is None or not isinstance(value, (int, float)):
        return
    minimum = spec.metadata.get("min")
    maximum = spec.metadata.get("max")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{source}: {key_path}: expected a value >= {minimum:g}, received {value!r}")
    if maximum is not None and value > maximum:
        raise ConfigError(f"{source}: {key_path}: expected a value <= {maximum:g}, received {value!r}")


def join_path(prefix: str, key: str) -> str:
    """Join a dotted key path."""
    return f"{prefix}.{key}" if prefix else key


def describe(value: Any) -> str:
    """Show a received value with its YAML type, e.g. `'ten' (string)`."""
    names = {bool: "boolean", int: "integer", float: "number", str: "string", list: "list", dict: "mapping"}
    kind = "null" if value is None else names.get(type(value), type(value).__name__)
    return f"{value!r} ({kind})"


def describe_type(annotation: Any) -> str:
    """Human name of a type annotation."""
    arguments = typing.get_args(annotation)
    if arguments:
        return " or ".join(describe_type(argument) for argument in arguments if argument is not type(None))
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        annotation, getattr(annotation, "__name__", str(annotation))
    )
