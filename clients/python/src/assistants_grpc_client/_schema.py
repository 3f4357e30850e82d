"""Python type hints to JSON Schema, and JSON values back to the hinted Python types.

Both directions walk the same shapes, so a function's schema and the arguments it receives agree:
str, int, float, bool, None, Any, lists / sequences / sets / `tuple[X, ...]`, `dict[str, X]`,
Optional and other unions, Literal, Enum, dataclasses, TypedDict, and `Annotated[X, "text"]`
(the text becomes the description).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import types
import typing
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints, is_typeddict

__all__ = ["accepts_none", "coerce", "object_schema", "schema_for", "with_default"]

_SCALARS: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
_SEQUENCES = (
    list,
    collections.abc.Sequence,
    collections.abc.MutableSequence,
    collections.abc.Iterable,
)
_SETS = (set, frozenset, collections.abc.Set, collections.abc.MutableSet)
_MAPPINGS = (dict, collections.abc.Mapping, collections.abc.MutableMapping)
_MISSING = object()
# TypedDict hints read with their extras keep these wrappers; `__required_keys__` says the same.
_KEY_MARKERS = (typing.Required, typing.NotRequired)


def _json_type(values: list[Any]) -> str | None:
    """The JSON type all these literal values share, if they share one."""
    kinds = {type(v) for v in values}
    if len(kinds) != 1:
        return None
    return _SCALARS.get(kinds.pop()) if kinds != {type(None)} else "null"


def _enum_values(cls: type[enum.Enum]) -> list[Any]:
    return [member.value for member in cls]


def _is_union(origin: Any) -> bool:
    return origin is Union or origin is types.UnionType


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    kind = schema.get("type")
    if isinstance(kind, str) and "anyOf" not in schema:
        widened = {**schema, "type": [kind, "null"]}
        if "enum" in schema:
            widened["enum"] = [*schema["enum"], None]
        return widened
    return {"anyOf": [schema, {"type": "null"}]}


def _json_default(value: Any) -> Any:
    """A default as JSON, or _MISSING when it has no JSON form (then the schema omits it)."""
    if isinstance(value, enum.Enum):
        value = value.value
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, list | tuple) and all(_json_default(v) is not _MISSING for v in value):
        return [_json_default(v) for v in value]
    return _MISSING


def with_default(schema: dict[str, Any], default: Any, *, strict: bool) -> dict[str, Any]:
    """The schema of a value that has a default. Strict mode cannot leave it out of `required`,
    so it accepts null there, and `coerce` reads null as "use the default"."""
    if strict:
        return schema if _accepts_null(schema) else _nullable(schema)
    value = _json_default(default)
    return schema if value is _MISSING else {**schema, "default": value}


def _accepts_null(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    return (
        kind == "null"
        or (isinstance(kind, list) and "null" in kind)
        or any(_accepts_null(s) for s in schema.get("anyOf", ()))
        or schema == {}
    )


def object_schema(
    properties: dict[str, dict[str, Any]], required: list[str], *, strict: bool
) -> dict[str, Any]:
    """An object schema. Strict mode (OpenAI structured outputs) lists every property as
    required; optional values are expressed as nullable types instead."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if strict else required,
        "additionalProperties": False,
    }


def schema_for(
    annotation: Any, *, strict: bool = False, _seen: frozenset[Any] = frozenset()
) -> dict[str, Any]:
    """The JSON Schema of values of this type; TypeError for a type JSON cannot carry."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin in _KEY_MARKERS:
        return schema_for(args[0], strict=strict, _seen=_seen)
    if origin is typing.Annotated:
        schema = schema_for(args[0], strict=strict, _seen=_seen)
        text = next((a for a in args[1:] if isinstance(a, str)), None)
        return {**schema, "description": text} if text else schema
    if annotation is Any or annotation is object:
        return {}
    if annotation is None or annotation is type(None):
        return {"type": "null"}
    if annotation in _SCALARS:
        return {"type": _SCALARS[annotation]}
    if origin is Literal:
        values = list(args)
        kind = _json_type(values)
        return {"type": kind, "enum": values} if kind else {"enum": values}
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        values = _enum_values(annotation)
        kind = _json_type(values)
        return {"type": kind, "enum": values} if kind else {"enum": values}
    if _is_union(origin):
        members = [a for a in args if a is not type(None)]
        schemas = [schema_for(m, strict=strict, _seen=_seen) for m in members]
        schema = schemas[0] if len(schemas) == 1 else {"anyOf": schemas}
        return _nullable(schema) if len(members) < len(args) else schema
    if annotation in (list, *_SEQUENCES, *_SETS) or origin in (*_SEQUENCES, *_SETS):
        return _array_schema(annotation, args, strict=strict, seen=_seen)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": schema_for(args[0], strict=strict, _seen=_seen)}
        raise TypeError(f"{annotation!r}: only tuple[X, ...] has a JSON Schema here")
    if annotation in _MAPPINGS or origin in _MAPPINGS:
        if args and args[0] is not str:
            raise TypeError(f"{annotation!r}: JSON object keys are strings")
        items = schema_for(args[1], strict=strict, _seen=_seen) if args else {}
        return {"type": "object", "additionalProperties": items}
    if dataclasses.is_dataclass(annotation) and isinstance(annotation, type):
        return _record_schema(annotation, strict=strict, seen=_seen)
    if is_typeddict(annotation):
        return _record_schema(annotation, strict=strict, seen=_seen)
    raise TypeError(
        f"{annotation!r} has no JSON Schema; use str, int, float, bool, lists, "
        "Optional, Literal, enums, dataclasses or TypedDict"
    )


def _array_schema(
    annotation: Any, args: tuple[Any, ...], *, strict: bool, seen: frozenset[Any]
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "array"}
    if args:
        schema["items"] = schema_for(args[0], strict=strict, _seen=seen)
    if annotation in _SETS or get_origin(annotation) in _SETS:
        schema["uniqueItems"] = True
    return schema


def _record_schema(cls: Any, *, strict: bool, seen: frozenset[Any]) -> dict[str, Any]:
    if cls in seen:
        raise TypeError(f"{cls.__name__} refers to itself; recursive types are not supported")
    seen = seen | {cls}
    hints = get_type_hints(cls, include_extras=True)
    properties: dict[str, dict[str, Any]] = {}
    required: list[str] = []
    if dataclasses.is_dataclass(cls):
        for f in dataclasses.fields(cls):
            schema = schema_for(hints.get(f.name, Any), strict=strict, _seen=seen)
            if "description" in f.metadata:
                schema = {**schema, "description": str(f.metadata["description"])}
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                required.append(f.name)
            else:
                schema = with_default(schema, f.default, strict=strict)
            properties[f.name] = schema
    else:
        required_keys = _required_keys(cls, hints)
        for name, hint in hints.items():
            properties[name] = schema_for(hint, strict=strict, _seen=seen)
            if name in required_keys:
                required.append(name)
    schema = object_schema(properties, required, strict=strict)
    doc = cls.__doc__
    if doc and not doc.startswith(f"{cls.__name__}("):  # not the dataclass' generated doc
        schema["description"] = " ".join(doc.split())
    return schema


def _required_keys(cls: Any, hints: dict[str, Any]) -> set[str]:
    """A TypedDict's required keys. `__required_keys__` cannot see `NotRequired` / `Required`
    in string annotations (`from __future__ import annotations`); the evaluated hints can."""
    required = set()
    for name, hint in hints.items():
        marker = get_origin(hint)
        if marker is typing.Required or (
            marker is not typing.NotRequired and name in cls.__required_keys__
        ):
            required.add(name)
    return required


class _Invalid(ValueError):
    pass


def _where(path: str) -> str:
    return f"{path}: " if path else ""


def coerce(value: Any, annotation: Any, path: str = "") -> Any:
    """`value` (decoded JSON) as the type `annotation` describes: enums, dataclasses, tuples and
    sets rebuilt, floats from integers. ValueError, naming the path, when it does not fit."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is typing.Annotated or origin in _KEY_MARKERS:
        return coerce(value, args[0], path)
    if annotation is Any or annotation is object:
        return value
    if annotation is None or annotation is type(None):
        if value is not None:
            raise _Invalid(f"{_where(path)}expected null, got {value!r}")
        return None
    if annotation in _SCALARS:
        return _scalar(value, annotation, path)
    if origin is Literal:
        if value not in args:
            raise _Invalid(f"{_where(path)}expected one of {list(args)!r}, got {value!r}")
        return value
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        try:
            return annotation(value)
        except ValueError:
            allowed = _enum_values(annotation)
            raise _Invalid(f"{_where(path)}expected one of {allowed!r}, got {value!r}") from None
    if _is_union(origin):
        if value is None and type(None) in args:
            return None
        errors = []
        for member in (a for a in args if a is not type(None)):
            try:
                return coerce(value, member, path)
            except ValueError as error:
                errors.append(str(error))
        raise _Invalid("; ".join(errors))
    if annotation in (list, *_SEQUENCES, *_SETS, tuple) or origin in (*_SEQUENCES, *_SETS, tuple):
        if not isinstance(value, list):
            raise _Invalid(f"{_where(path)}expected an array, got {value!r}")
        item = args[0] if args else Any
        items = [coerce(v, item, f"{path}[{i}]") for i, v in enumerate(value)]
        if annotation is tuple or origin is tuple:
            return tuple(items)
        if annotation in _SETS or origin in _SETS:
            return set(items)
        return items
    if annotation in _MAPPINGS or origin in _MAPPINGS:
        if not isinstance(value, dict):
            raise _Invalid(f"{_where(path)}expected an object, got {value!r}")
        item = args[1] if args else Any
        return {k: coerce(v, item, f"{path}.{k}" if path else k) for k, v in value.items()}
    if (dataclasses.is_dataclass(annotation) and isinstance(annotation, type)) or is_typeddict(
        annotation
    ):
        return _record(value, annotation, path)
    return value


def _scalar(value: Any, kind: type, path: str) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    # bool is an int in Python but not in JSON Schema: true is no answer to "integer".
    if isinstance(value, kind) and not (kind is not bool and isinstance(value, bool)):
        return value
    raise _Invalid(f"{_where(path)}expected {_SCALARS[kind]}, got {value!r}")


def _record(value: Any, cls: Any, path: str) -> Any:
    if not isinstance(value, dict):
        raise _Invalid(f"{_where(path)}expected an object, got {value!r}")
    hints = get_type_hints(cls, include_extras=True)
    unknown = sorted(set(value) - set(hints))
    if unknown:
        raise _Invalid(f"{_where(path)}unexpected properties {unknown}")
    fields = {
        key: coerce(item, hints[key], f"{path}.{key}" if path else key)
        for key, item in value.items()
        if not (item is None and _defaulted(cls, key) and not accepts_none(hints[key]))
    }
    if is_typeddict(cls):
        missing = sorted(_required_keys(cls, hints) - set(fields))
        if missing:
            raise _Invalid(f"{_where(path)}missing properties {missing}")
        return fields
    try:
        return cls(**fields)
    except TypeError as error:
        raise _Invalid(f"{_where(path)}{error}") from None


def _defaulted(cls: Any, key: str) -> bool:
    if not dataclasses.is_dataclass(cls):
        return False
    f = next(f for f in dataclasses.fields(cls) if f.name == key)
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING


def accepts_none(annotation: Any) -> bool:
    """Whether null is a valid value of this type."""
    try:
        coerce(None, annotation)
    except ValueError:
        return False
    return True
