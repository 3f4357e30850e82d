"""From one JSON value of a dump to a checked proto object, or the reasons it is refused.

All the OpenAI JSON knowledge stays in `contract.openai_json`: this only picks the type by its
`object` string, checks what the type needs present, and applies the rules the API applies to
what it writes (ids it can serve, metadata limits, no NUL characters: PostgreSQL text cannot
hold one).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from assistants_grpc.contract.openai_json import OpenAIJSONError, parse
from assistants_grpc.services import validation as check
from assistants_grpc.transfer.kinds import BY_OBJECT, SKIPPED, Kind

__all__ = ["Checked", "Refusal", "Skipped", "check_value"]


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a value is not imported: the type (if it could be told) and each field's reason."""

    kind: str | None
    reasons: list[tuple[str, str]]


@dataclass(frozen=True, slots=True)
class Skipped:
    """An object left out on purpose (a file batch...): a note, not an error."""

    kind: str
    reason: str


@dataclass(frozen=True, slots=True)
class Checked:
    kind: Kind
    obj: Message


_SUPPORTED = ", ".join(repr(name) for name in BY_OBJECT)


def check_value(value: Any, *, may_hold_nul: bool = True) -> Checked | Refusal | Skipped:
    if not isinstance(value, dict):
        return Refusal(None, [("", f"expected an object, got {_json_type(value)}")])
    name = value.get("object")
    if name is None:
        return Refusal(None, [("object", "required: it says what the object is")])
    kind = BY_OBJECT.get(name) if isinstance(name, str) else None
    if kind is None:
        if isinstance(name, str) and name in SKIPPED:
            return Skipped(name, SKIPPED[name])
        return Refusal(None, [("object", f"{name!r} is not one of {_SUPPORTED}")])
    skipped = kind.skip(value)
    if skipped is not None:
        return Skipped(kind.object, skipped)
    missing = [key for key in kind.required if value.get(key) is None]
    if missing:
        return Refusal(kind.object, [(key, "required.") for key in missing])
    nul = next(_nul_paths(value, ""), None) if may_hold_nul else None
    if nul is not None:
        return Refusal(kind.object, [(nul, "must not contain NUL characters.")])
    try:
        obj = parse(value, kind.message_type)
    except OpenAIJSONError as error:
        return Refusal(kind.object, [(error.path, error.problem)])
    v = check.Violations()
    for field in kind.id_fields:
        object_id = getattr(obj, field)
        if (object_id or field == "id") and not check.plausible_id(object_id):
            v.add(field, "not an id this server can serve: 1 to 64 of A-Z a-z 0-9 _ -.")
    kind.check(obj, v)
    if v.items:
        return Refusal(kind.object, [(item.field, item.description) for item in v.items])
    return Checked(kind, obj)


def _nul_paths(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, str):
        if "\x00" in value:
            yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            sub = f"{path}.{key}" if path else str(key)
            if "\x00" in key:
                yield sub
            yield from _nul_paths(item, sub)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nul_paths(item, f"{path}[{index}]")


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"
