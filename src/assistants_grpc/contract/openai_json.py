"""The one mapping between the ``assistants.v1`` proto messages and the exact OpenAI JSON.

The proto mirrors the OpenAI objects (DESIGN.md, "Decisions"): field names are the OpenAI keys,
nullable keys are ``optional``, unions are ``oneof``. So the mapping is generic, driven by the
message descriptors, and a new field renders and parses without an edit here. What the proto
leaves out is put back by rules:

- ``object`` discriminators (``"thread.run"``, ``"list"``…) from :data:`_OBJECT_TYPES`;
- enums as lowercase strings without the enum's prefix (``RUN_STATUS_REQUIRES_ACTION`` →
  ``"requires_action"``), the ``*_UNSPECIFIED`` value as ``null``;
- a real ``oneof`` as a discriminated union: ``"type": <case>`` plus ``<case>: <value>``;
- full objects keep every key, unset ones as ``null`` (CONTRACT §11.10); deltas (everything
  under ``MessageDelta`` and ``RunStepDelta``) leave unset keys out (CONTRACT §9).

The shapes that no rule covers are listed, each with its reason, under "Special cases" below.

Plans (field lists, templates, enum names) are built once per descriptor full name and reused,
so rendering does no descriptor introspection beyond a cache lookup.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

from assistants_grpc_client.v1 import run_pb2

if TYPE_CHECKING:
    from google.protobuf.internal.enum_type_wrapper import _EnumTypeWrapper
from google.protobuf import message_factory, struct_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor, OneofDescriptor
from google.protobuf.message import Message

__all__ = [
    "OpenAIJSONError",
    "enum_name",
    "enum_value",
    "parse",
    "render",
    "render_event",
    "render_value",
    "to_sse",
    "value_json",
]

M = TypeVar("M", bound=Message)
V = TypeVar("V", bound=int)

# ------------------------------------------------------------------------------------------------
# Special cases: every shape the generic rules don't produce, in one place.
# ------------------------------------------------------------------------------------------------

# The `object` discriminator of each top-level object (CONTRACT §1 table). The proto leaves these
# constants out; rendering puts them right after `id`.
_OBJECT_TYPES: Final[dict[str, str]] = {
    "assistants.v1.Assistant": "assistant",
    "assistants.v1.Thread": "thread",
    "assistants.v1.Message": "thread.message",
    "assistants.v1.Run": "thread.run",
    "assistants.v1.RunStep": "thread.run.step",
    "assistants.v1.MessageDelta": "thread.message.delta",
    "assistants.v1.RunStepDelta": "thread.run.step.delta",
    "assistants.v1.DeleteAssistantResponse": "assistant.deleted",
    "assistants.v1.DeleteThreadResponse": "thread.deleted",
    "assistants.v1.DeleteMessageResponse": "thread.message.deleted",
    "assistants.v1.VectorStore": "vector_store",
    "assistants.v1.VectorStoreFile": "vector_store.file",
    "assistants.v1.VectorStoreFileBatch": "vector_store.files_batch",
    "assistants.v1.DeleteVectorStoreResponse": "vector_store.deleted",
    "assistants.v1.DeleteVectorStoreFileResponse": "vector_store.file.deleted",
    # Search results and file content are pages of their own kinds, not `list` pages.
    "assistants.v1.SearchVectorStoreResponse": "vector_store.search_results.page",
    "assistants.v1.GetVectorStoreFileContentResponse": "vector_store.file_content.page",
    "assistants.v1.File": "file",
    # OpenAI answers a file's deletion with `object: "file"`, not "file.deleted" (FileDeleted).
    "assistants.v1.DeleteFileResponse": "file",
}
# Every `List*Response` is a page, `{object: "list", data, first_id, last_id, has_more}` (CONTRACT
# §1 "List"), so pages added later need no entry above; `object` comes first there.
_LIST_PAGE = re.compile(r"^List[A-Za-z0-9]+Response$")
_LIST_OBJECT: Final = "list"

# Deltas carry only what changed: under these roots unset optional fields, empty lists and unset
# unions are left out instead of rendered as null (CONTRACT §9, "Any field except index and type
# may be left out"). The SDK concatenates what it receives, so a null would be merged in too.
_DELTA_ROOTS: Final = frozenset({"assistants.v1.MessageDelta", "assistants.v1.RunStepDelta"})

# (a) A union case whose message declares no fields renders only `{"type": case}`
# (`{type:"code_interpreter"}`, `{type:"text"}`…). Except these, kept as `case: {}`:
# FileSearchToolCallDelta, because CONTRACT §9 says its `file_search` is required and always `{}`.
_EMPTY_CASE_KEPT: Final = frozenset({"assistants.v1.FileSearchToolCallDelta"})

# (b) Union cases rendered bare, without a `type` wrapper (CONTRACT §2): response_format "auto" is
# the string "auto" (the case name); a tool_choice mode is the string itself ("none", "auto",
# "required"); a named tool_choice is the NamedToolChoice object, which has its own `type` field.
_BARE_CASE_NAME: Final = "case name"
_BARE_CASE_VALUE: Final = "case value"
_BARE_CASES: Final[dict[str, str]] = {
    "assistants.v1.ResponseFormat.auto": _BARE_CASE_NAME,
    "assistants.v1.ToolChoice.mode": _BARE_CASE_VALUE,
    "assistants.v1.ToolChoice.named": _BARE_CASE_VALUE,
}

# (c) and (d) One-field wrappers rendered as their only field. ToolCallsDetails/ToolCallsDelta
# exist because a oneof case can't be `repeated`, but OpenAI's step details are
# `{type:"tool_calls", tool_calls:[...]}` (CONTRACT §8, §9). Metadata and ToolList exist so update
# requests can say "replace" apart from "leave alone"; in JSON they are the map and the list.
_UNWRAPPED: Final = frozenset(
    {
        "assistants.v1.ToolCallsDetails",
        "assistants.v1.ToolCallsDelta",
        "assistants.v1.Metadata",
        "assistants.v1.ToolList",
    }
)

# (e) In a delta, `key` is sent as null when `trigger` is present: the first delta of a function
# call carries `function:{name, arguments:"", output:null}` (CONTRACT §9), later ones only
# `{arguments}`.
_DELTA_NULL_WHEN_PRESENT: Final[dict[str, tuple[str, str]]] = {
    "assistants.v1.FunctionToolCallDelta": ("name", "output"),
}

# (f) Parsing only: a request may send a message's `content` as a bare string, which is one text
# part (CONTRACT §5 MessageCreate, §11.1). The value is the case that string fills.
_STRING_AS_ONE_PART: Final[dict[str, str]] = {"assistants.v1.MessageContentInput": "text"}

# (g) Keys the proto leaves out because they are constant here, rendered last and skipped when
# parsing: a File's deprecated `status` (the SDK's FileObject still requires it; a stored File is
# always "processed") and `status_details` (only ever set for fine-tuning files).
_CONSTANT_KEYS: Final[dict[str, dict[str, Any]]] = {
    "assistants.v1.File": {"status": "processed", "status_details": None},
}

# (h) Full objects leave these lists out when they are empty: the create form of tool_resources
# adds `file_search.vector_stores`, which the object form does not have (CONTRACT §2), and one
# proto message serves both forms. An OpenAI object renders back without the key it never had.
# A file_search result's `content` is there only when `include[]` asks for it (CONTRACT §12,
# §11.15: "omit file_search.results[*].content").
_OMITTED_WHEN_EMPTY: Final = frozenset(
    {
        "assistants.v1.FileSearchResources.vector_stores",
        "assistants.v1.FileSearchResult.content",
    }
)

# (i) Parsing only: keys OpenAI sends that the proto does not keep, skipped instead of refused as
# unknown. A Run's `tool_resources` is in real responses but neither in the schema nor the SDK,
# and "clients must ignore it" (CONTRACT §6); dumps made with the SDK keep it (extra="allow").
_IGNORED_ON_PARSE: Final[dict[str, frozenset[str]]] = {
    "assistants.v1.Run": frozenset({"tool_resources"}),
}

# (j) Parsing only: a list of strings a request may also send as one bare string, which is that
# list of one: a vector-store search's `query` (CONTRACT §12, `string | string[]`).
_STRING_AS_ONE_ITEM: Final = frozenset({"assistants.v1.SearchVectorStoreRequest.query"})

# ------------------------------------------------------------------------------------------------

_FULL: Final = 0
_DELTA: Final = 1

# Element kinds.
_STRING: Final = 0
_INT: Final = 1
_FLOAT: Final = 2
_BOOL: Final = 3
_ENUM: Final = 4
_MESSAGE: Final = 5
_STRUCT: Final = 6
_VALUE: Final = 7
_LIST_VALUE: Final = 8

_INT_RANGES: Final[dict[int, tuple[int, int]]] = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_SCALAR_KINDS: Final[dict[int, int]] = {
    FieldDescriptor.TYPE_STRING: _STRING,
    FieldDescriptor.TYPE_BOOL: _BOOL,
    FieldDescriptor.TYPE_DOUBLE: _FLOAT,
    FieldDescriptor.TYPE_FLOAT: _FLOAT,
    FieldDescriptor.TYPE_ENUM: _ENUM,
    **dict.fromkeys(_INT_RANGES, _INT),
}
_WELL_KNOWN_KINDS: Final[dict[str, int]] = {
    "google.protobuf.Struct": _STRUCT,
    "google.protobuf.Value": _VALUE,
    "google.protobuf.ListValue": _LIST_VALUE,
}
_EXPECTED: Final[dict[int, str]] = {
    _STRING: "expected a string",
    _INT: "expected an integer",
    _FLOAT: "expected a number",
    _BOOL: "expected a boolean",
    _MESSAGE: "expected an object",
    _STRUCT: "expected an object",
    _LIST_VALUE: "expected a list",
}

# Marks a template key that is removed (or filled) after the set fields are copied in, so that
# optional keys keep their place in the key order (deltas only).
_PLACEHOLDER: Final = object()
# What an empty union case renders as: the case key is left out, only `type` stays.
_OMIT: Final = object()

# Numbers that are whole render as ints: Struct keeps every number as a double, but a JSON Schema
# says `"minItems": 1`, not `1.0`. Past 2**53 a double no longer holds every integer exactly.
_EXACT_INT_LIMIT: Final = 2**53

_Render = Callable[[Any], Any]


class OpenAIJSONError(ValueError):
    """JSON without the OpenAI shape; ``path`` says where (``tools[0].function.name``)."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}" if path else problem)
        self.path = path
        self.problem = problem


# ------------------------------------------------------------------------------------------------
# Plans
# ------------------------------------------------------------------------------------------------


class _Enum:
    """The OpenAI strings of one enum, both ways."""

    __slots__ = ("names", "numbers")

    def __init__(self, descriptor: EnumDescriptor) -> None:
        # Buf's style puts the enum's name in UPPER_SNAKE before every value; OpenAI's string is the
        # rest, lowercased (ListOrder → LIST_ORDER_ASC → "asc").
        prefix = _upper_snake(descriptor.name) + "_"
        self.names: dict[int, str | None] = {}
        self.numbers: dict[str, int] = {}
        for value in descriptor.values:
            if not value.name.startswith(prefix):
                raise ValueError(f"{descriptor.full_name}.{value.name} lacks the prefix {prefix}")
            if value.number == 0:
                self.names[0] = None  # *_UNSPECIFIED: "not set", which JSON says with null
                continue
            name = value.name[len(prefix) :].lower()
            self.names[value.number] = name
            self.numbers[name] = value.number


class _Field:
    """How one field renders and parses. For a map, the element is the map's value."""

    __slots__ = (
        "bare",
        "enum",
        "in_union",
        "int_range",
        "is_map",
        "kind",
        "message_class",
        "name",
        "one_item",
        "one_part_case",
        "optional",
        "plan",
        "render",
        "repeated",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.kind = _STRING
        self.repeated = False
        self.is_map = False
        self.optional = False  # declared `optional` (a synthetic oneof): nullable / omittable
        self.in_union = False  # a case of the message's real oneof
        self.bare: str | None = None  # special case (b)
        self.enum: _Enum | None = None
        self.plan: _Plan | None = None
        self.message_class: type[Message] | None = None  # deltas only, see _fill_template
        self.int_range: tuple[int, int] | None = None
        self.one_part_case: str | None = None  # special case (f)
        self.one_item = False  # special case (j)
        # Turns the proto value (element, list or map) into JSON values; None means "as it is".
        self.render: _Render | None = None


class _Plan:
    """How one message type renders and parses, in one mode (full object or delta)."""

    __slots__ = (
        "by_name",
        "by_number",
        "containers",
        "delta",
        "fixups",
        "full_name",
        "ignored",
        "null_when_present",
        "pure_union",
        "template",
        "union",
        "union_cases",
        "unwrap",
    )

    def __init__(self, full_name: str, mode: int) -> None:
        self.full_name = full_name
        self.delta = mode == _DELTA
        self.by_number: dict[int, _Field] = {}
        self.by_name: dict[str, _Field] = {}
        # Every key in order with its value when unset; copied, then the set fields overwrite it.
        self.template: dict[str, Any] = {}
        self.containers: tuple[tuple[str, type[list[Any]] | type[dict[str, Any]]], ...] = ()
        # (key, fill): after rendering, a key still holding _PLACEHOLDER is removed (fill None)
        # or replaced with fill().
        self.fixups: tuple[tuple[str, Callable[[], Any] | None], ...] = ()
        self.null_when_present: tuple[str, str] | None = None
        self.ignored: frozenset[str] = frozenset()  # special case (i)
        self.union: str | None = None  # name of the real oneof, if any
        self.union_cases: dict[str, _Field] = {}
        self.pure_union = False  # every field is a case of the union
        self.unwrap: _Field | None = None  # special cases (c), (d)


_PLANS: Final[tuple[dict[str, _Plan], dict[str, _Plan]]] = ({}, {})
_ENUMS: Final[dict[str, _Enum]] = {}
# The root plan of each message class (full or delta by _DELTA_ROOTS): one lookup per render.
_ROOT_PLANS: Final[dict[type[Message], _Plan]] = {}
# Plans are built once, under a lock, and published only when complete, so another thread never
# sees a plan whose fields are still being filled in.
_BUILD_LOCK: Final = threading.Lock()


def _descriptor(message: Message) -> Descriptor:
    # The stubs type DESCRIPTOR as "Python or upb descriptor"; both have the attributes used here.
    return cast(Descriptor, message.DESCRIPTOR)


def _upper_snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).upper()


def _is_synthetic(oneof: OneofDescriptor) -> bool:
    # proto3 `optional x` is a oneof named `_x` holding x alone (protoc's naming); this protobuf
    # release doesn't expose OneofDescriptor.is_synthetic.
    fields = oneof.fields
    return len(fields) == 1 and oneof.name == "_" + fields[0].name


def _enum(descriptor: EnumDescriptor) -> _Enum:
    found = _ENUMS.get(descriptor.full_name)
    if found is None:
        found = _ENUMS[descriptor.full_name] = _Enum(descriptor)
    return found


def _root_plan(message_class: type[Message], descriptor: Descriptor) -> _Plan:
    plan = _ROOT_PLANS.get(message_class)
    if plan is None:
        mode = _DELTA if descriptor.full_name in _DELTA_ROOTS else _FULL
        plan = _ROOT_PLANS[message_class] = _plan(descriptor, mode)
    return plan


def _plan(descriptor: Descriptor, mode: int) -> _Plan:
    plan = _PLANS[mode].get(descriptor.full_name)
    if plan is not None:
        return plan
    with _BUILD_LOCK:
        building: dict[str, _Plan] = {}
        plan = _build(descriptor, mode, building)
        _PLANS[mode].update(building)
    return plan


def _build(descriptor: Descriptor, mode: int, building: dict[str, _Plan]) -> _Plan:
    name = descriptor.full_name
    plan = _PLANS[mode].get(name) or building.get(name)
    if plan is not None:  # built before, or being built higher up (a recursive type)
        return plan
    plan = building[name] = _Plan(name, mode)
    plan.ignored = _IGNORED_ON_PARSE.get(name, frozenset())

    unions = [o for o in descriptor.oneofs if not _is_synthetic(o)]
    if len(unions) > 1:
        raise TypeError(f"{name}: more than one oneof would need more than one `type` key")
    union = unions[0] if unions else None
    fields = [_field(fd, mode, building) for fd in descriptor.fields]
    for field in fields:
        plan.by_name[field.name] = field
    for fd, field in zip(descriptor.fields, fields, strict=True):
        plan.by_number[fd.number] = field

    if name in _UNWRAPPED:
        if len(fields) != 1:
            raise TypeError(f"{name}: an unwrapped message must have exactly one field")
        plan.unwrap = fields[0]
        return plan

    if union is not None:
        plan.union = union.name
        plan.union_cases = {fd.name: plan.by_name[fd.name] for fd in union.fields}
        plan.pure_union = len(plan.union_cases) == len(fields)
        if "type" in plan.by_name:
            raise TypeError(f"{name}: a field named `type` clashes with the oneof's `type` key")
        bare_messages = [
            f for f in plan.union_cases.values() if f.bare == _BARE_CASE_VALUE and f.plan
        ]
        if (bare_messages and not plan.pure_union) or len(bare_messages) > 1:
            raise TypeError(f"{name}: a bare object case must be the only one, in a pure union")
        if plan.pure_union:
            return plan  # rendered from its case alone; no template
    elif any(f.bare for f in fields):
        raise TypeError(f"{name}: a bare case outside a oneof")

    omitted = {fd.name for fd in descriptor.fields if fd.full_name in _OMITTED_WHEN_EMPTY}
    _fill_template(plan, [f for f in fields if not f.in_union], union is not None, omitted)
    plan.null_when_present = _DELTA_NULL_WHEN_PRESENT.get(name) if plan.delta else None
    return plan


def _fill_template(plan: _Plan, fields: list[_Field], has_union: bool, omitted: set[str]) -> None:
    keys: list[tuple[str, Any]] = []
    containers: list[tuple[str, type[list[Any]] | type[dict[str, Any]]]] = []
    fixups: list[tuple[str, Callable[[], Any] | None]] = []
    for field in fields:
        if plan.delta:
            # A delta starts with its plain scalars (an `index`) and required objects (the `delta`
            # body); everything else appears only when set.
            if field.repeated or field.optional:
                continue
            if field.kind == _MESSAGE and field.plan and field.message_class:
                keys.append((field.name, _PLACEHOLDER))
                fixups.append((field.name, _default_renderer(field.message_class, field.plan)))
            elif field.kind in _SCALAR_DEFAULTS:
                keys.append((field.name, _SCALAR_DEFAULTS[field.kind]))
            continue
        if field.name in omitted:
            keys.append((field.name, _PLACEHOLDER))
            fixups.append((field.name, None))
        elif field.repeated:
            keys.append((field.name, None))
            containers.append((field.name, dict if field.is_map else list))
        elif field.optional or field.kind in (_ENUM, _MESSAGE, _STRUCT, _VALUE, _LIST_VALUE):
            # nullable keys present as null; an UNSPECIFIED enum is null too (CONTRACT §11.11)
            keys.append((field.name, None))
        else:
            keys.append((field.name, _SCALAR_DEFAULTS[field.kind]))

    if has_union:
        # `type` goes first, after an `index` or `id` that leads the object (`{index, type, …}`,
        # `{id, type, function}`), as in CONTRACT §8 and §9.
        at = 0
        while at < len(keys) and keys[at][0] in ("index", "id"):
            at += 1
        keys.insert(at, ("type", _PLACEHOLDER if plan.delta else None))
        if plan.delta:
            fixups.append(("type", None))

    object_type = _OBJECT_TYPES.get(plan.full_name)
    short_name = plan.full_name.rpartition(".")[2]
    if object_type is None and _LIST_PAGE.match(short_name):
        keys.insert(0, ("object", _LIST_OBJECT))
    elif object_type is not None:
        keys.insert(1 if keys and keys[0][0] == "id" else 0, ("object", object_type))

    keys.extend(_CONSTANT_KEYS.get(plan.full_name, {}).items())
    plan.template = dict(keys)
    plan.containers = tuple(containers)
    plan.fixups = tuple(fixups)


_SCALAR_DEFAULTS: Final[dict[int, Any]] = {_STRING: "", _INT: 0, _FLOAT: 0.0, _BOOL: False}


def _default_renderer(message_class: type[Message], plan: _Plan) -> Callable[[], Any]:
    # A delta's required object (its `delta` body) is sent even when nothing in it is set.
    def render_default() -> Any:
        return _render(message_class(), plan)

    return render_default


def _field(fd: FieldDescriptor, mode: int, building: dict[str, _Plan]) -> _Field:
    field = _Field(fd.name)
    oneof = fd.containing_oneof
    field.optional = oneof is not None and _is_synthetic(oneof)
    field.in_union = oneof is not None and not field.optional
    field.bare = _BARE_CASES.get(fd.full_name)
    field.repeated = fd.is_repeated
    field.one_item = fd.full_name in _STRING_AS_ONE_ITEM
    element = fd
    entry = fd.message_type
    if fd.is_repeated and entry is not None and entry.GetOptions().map_entry:
        if entry.fields_by_name["key"].type != FieldDescriptor.TYPE_STRING:
            raise TypeError(f"{fd.full_name}: JSON object keys are strings; use map<string, …>")
        field.is_map = True
        element = entry.fields_by_name["value"]

    element_type = element.message_type
    if element_type is None:
        kind = _SCALAR_KINDS.get(element.type)
        if kind is None:
            raise TypeError(f"{fd.full_name}: no OpenAI JSON form for proto type {element.type}")
        field.kind = kind
        field.int_range = _INT_RANGES.get(element.type)
        if element.enum_type is not None:
            field.enum = _enum(element.enum_type)
        # An enum number this descriptor doesn't know (from a peer with a newer proto) renders as
        # null, like UNSPECIFIED: there is no OpenAI string to say it with.
        convert: _Render | None = field.enum.names.get if field.enum is not None else None
    else:
        well_known = _WELL_KNOWN_KINDS.get(element_type.full_name)
        if well_known is not None:
            field.kind = well_known
            convert = _WELL_KNOWN_RENDER[well_known]
        else:
            field.kind = _MESSAGE
            sub = field.plan = _build(element_type, mode, building)
            field.one_part_case = _STRING_AS_ONE_PART.get(element_type.full_name)
            if mode == _DELTA:
                field.message_class = message_factory.GetMessageClass(element_type)
            convert = _message_renderer(sub)
            if (
                field.in_union
                and not element_type.fields
                and element_type.full_name not in _EMPTY_CASE_KEPT
            ):
                convert = _omit  # special case (a)

    if field.is_map:
        field.render = _map_renderer(convert)
    elif field.repeated:
        field.render = _list_renderer(convert)
    else:
        field.render = convert
    return field


def _omit(_value: Any) -> Any:
    return _OMIT


def _message_renderer(plan: _Plan) -> _Render:
    def render_message(value: Any) -> Any:
        return _render(value, plan)

    return render_message


def _list_renderer(convert: _Render | None) -> _Render:
    if convert is None:
        return list
    return lambda values: [convert(v) for v in values]


def _map_renderer(convert: _Render | None) -> _Render:
    if convert is None:
        return dict
    return lambda values: {k: convert(v) for k, v in values.items()}


# ------------------------------------------------------------------------------------------------
# Rendering
# ------------------------------------------------------------------------------------------------


def _render(message: Message, plan: _Plan) -> Any:
    unwrap = plan.unwrap
    if unwrap is not None:
        value = getattr(message, unwrap.name)
        return value if unwrap.render is None else unwrap.render(value)

    if plan.pure_union:
        case = message.WhichOneof(plan.union)
        if case is None:
            return None
        field = plan.union_cases[case]
        value = getattr(message, case)
        if field.bare == _BARE_CASE_NAME:
            return case
        if field.render is not None:
            value = field.render(value)
        if field.bare is not None:
            return value
        return {"type": case} if value is _OMIT else {"type": case, case: value}

    out = plan.template.copy()
    for key, factory in plan.containers:
        out[key] = factory()
    by_number = plan.by_number
    delta = plan.delta
    # ListFields gives only the fields that are set, so unset ones cost nothing: they keep their
    # template value (null, default or placeholder).
    for fd, value in message.ListFields():
        field = by_number[fd.number]
        render = field.render
        if render is not None:
            value = render(value)
        if field.in_union:
            out["type"] = field.name
            if value is _OMIT:
                continue
        elif value is None and delta:
            continue
        out[field.name] = value
    for key, fill in plan.fixups:
        if out[key] is _PLACEHOLDER:
            if fill is None:
                del out[key]
            else:
                out[key] = fill()
    if plan.null_when_present is not None:
        trigger, key = plan.null_when_present
        if trigger in out and key not in out:
            out[key] = None
    return out


def _struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    return {key: _value_to_python(value) for key, value in struct.fields.items()}


def _list_value_to_list(values: struct_pb2.ListValue) -> list[Any]:
    return [_value_to_python(value) for value in values.values]


def _value_to_python(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        return value.string_value
    if kind == "number_value":
        number = value.number_value
        if number.is_integer() and -_EXACT_INT_LIMIT <= number <= _EXACT_INT_LIMIT:
            return int(number)
        return number
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return _struct_to_dict(value.struct_value)
    if kind == "list_value":
        return _list_value_to_list(value.list_value)
    return None  # null_value, or nothing set


_WELL_KNOWN_RENDER: Final[dict[int, _Render]] = {
    _STRUCT: _struct_to_dict,
    _VALUE: _value_to_python,
    _LIST_VALUE: _list_value_to_list,
}


def value_json(value: struct_pb2.Value) -> Any:
    """The JSON value a ``google.protobuf.Value`` holds (whole numbers as ints), as it renders
    inside an object (attributes of vector-store files)."""
    return _value_to_python(value)


def render_value(message: Message) -> Any:
    """Render any message as its OpenAI JSON value: an object, or the bare string, list or null
    that some types stand for (``ResponseFormat`` "auto", a ``ToolList``, an unset union).

    The store uses this for nested values it keeps as JSON columns.
    """
    plan = _ROOT_PLANS.get(type(message)) or _root_plan(type(message), _descriptor(message))
    return _render(message, plan)


def render(message: Message) -> dict[str, Any]:
    """Render an OpenAI object (Assistant, Run, a list page, a delta…) as JSON-ready values.

    Every key is present (unset ones as None), except under ``MessageDelta`` and ``RunStepDelta``,
    which carry only what is set. A type that renders as something other than an object
    (``ResponseFormat`` "auto", a ``ToolList``) raises TypeError: use :func:`render_value`.
    """
    out = render_value(message)
    if type(out) is not dict:
        raise TypeError(
            f"{message.DESCRIPTOR.full_name} renders as {out!r}, not an object; use render_value"
        )
    return out


def render_event(event: run_pb2.RunEvent) -> tuple[str, Any]:
    """The SSE event name and `data` of one streamed event (CONTRACT §9).

    ``done`` has the literal string ``[DONE]``. ``error`` has the Error's fields plus an ``error``
    key holding them again: the spec says `data` is the bare Error, but the Python SDK raises only
    when `data` has an `error` key (CONTRACT §11.16); with both, either reading works.
    """
    name = event.event
    if name == "done":
        return name, "[DONE]"
    case = event.WhichOneof("data")
    if case is None:
        raise ValueError(f"event {name!r} carries no data")
    data = render(getattr(event, case))
    if case == "error":
        data = {**data, "error": data}
    return name, data


def to_sse(event: run_pb2.RunEvent) -> str:
    """One server-sent-events frame: ``event: <name>\\ndata: <one-line JSON>\\n\\n``."""
    name, data = render_event(event)
    # json.dumps escapes newlines inside strings, so the data is always one line, as SSE needs;
    # the other characters can stay as they are (ensure_ascii=False), as SSE is UTF-8.
    text = data if name == "done" else json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"event: {name}\ndata: {text}\n\n"


def enum_name(enum_type: _EnumTypeWrapper[V], value: int) -> str | None:
    """The OpenAI string of one enum value (``RUN_STATUS_QUEUED`` → "queued"); None if unset."""
    return _enum(enum_type.DESCRIPTOR).names.get(value)


def enum_value(enum_type: _EnumTypeWrapper[V], name: str | None) -> V:
    """The enum value of an OpenAI string; None gives the ``*_UNSPECIFIED`` value."""
    if name is None:
        return cast(V, 0)
    number = _enum(enum_type.DESCRIPTOR).numbers.get(name)
    if number is None:
        known = _quoted(_enum(enum_type.DESCRIPTOR).numbers)
        raise OpenAIJSONError("", f"{name!r} is not one of {known}")
    return cast(V, number)


# ------------------------------------------------------------------------------------------------
# Parsing
# ------------------------------------------------------------------------------------------------


def parse(data: Any, message_type: type[M]) -> M:
    """Build a ``message_type`` from OpenAI JSON: what :func:`render` writes, or a request shape.

    ``object`` keys are ignored and ``None`` means unset; every special case is reversed. Anything
    else that doesn't fit the proto (unknown keys included, to catch drift) raises
    :class:`OpenAIJSONError` naming the path.
    """
    message = message_type()
    plan = _plan(_descriptor(message), _FULL)
    if data is not None:
        _parse_into(message, data, plan, "")
    return message


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _parse_into(message: Message, data: Any, plan: _Plan, path: str) -> None:
    if plan.unwrap is not None:
        _parse_field(message, plan.unwrap, data, path)
        return
    if plan.pure_union:
        _parse_pure_union(message, data, plan, path)
        return
    if not isinstance(data, dict):
        raise OpenAIJSONError(path, "expected an object")
    by_name = plan.by_name
    constants = _CONSTANT_KEYS.get(plan.full_name, {})
    for key, value in data.items():
        if key == "object" or key in constants:
            continue  # a constant the proto leaves out (special case (g))
        field = by_name.get(key)
        if field is None:
            if key == "type" and plan.union is not None:
                continue  # read with the case below
            if key in plan.ignored:
                continue
            raise OpenAIJSONError(_join(path, key), "unknown key")
        if field.in_union or value is None:
            continue
        _parse_field(message, field, value, _join(path, key))
    if plan.union is not None:
        _parse_case(message, data, plan, path)


def _parse_pure_union(message: Message, data: Any, plan: _Plan, path: str) -> None:
    cases = plan.union_cases.values()
    if isinstance(data, str):
        # special case (b): "auto" for response_format, "none"/"auto"/"required" for tool_choice
        for field in cases:
            if field.bare == _BARE_CASE_NAME and data == field.name:
                getattr(message, field.name).SetInParent()
                return
            if field.bare == _BARE_CASE_VALUE and field.enum and data in field.enum.numbers:
                setattr(message, field.name, field.enum.numbers[data])
                return
        allowed = [f.name for f in cases if f.bare == _BARE_CASE_NAME]
        allowed += [
            n for f in cases if f.bare == _BARE_CASE_VALUE and f.enum for n in f.enum.numbers
        ]
        raise OpenAIJSONError(path, f"expected an object or one of {_quoted(allowed)}")
    if not isinstance(data, dict):
        raise OpenAIJSONError(path, "expected an object")
    for field in cases:
        if field.bare == _BARE_CASE_VALUE and field.plan is not None:
            # a bare object case (named tool_choice) is the whole object, its `type` included
            sub = getattr(message, field.name)
            sub.SetInParent()
            _parse_into(sub, data, field.plan, path)
            return
    for key in data:
        if key not in ("type", "object") and key not in plan.union_cases:
            raise OpenAIJSONError(_join(path, key), "unknown key")
    _parse_case(message, data, plan, path)


def _parse_case(message: Message, data: dict[str, Any], plan: _Plan, path: str) -> None:
    cases = plan.union_cases
    case = data.get("type")
    type_path = _join(path, "type")
    if case is None:
        present = [name for name in cases if data.get(name) is not None]
        if present:
            raise OpenAIJSONError(type_path, f"required with {present[0]!r}")
        return
    field = cases.get(case) if isinstance(case, str) else None
    if field is None or field.bare is not None:
        raise OpenAIJSONError(type_path, f"expected one of {_quoted(_typed_cases(plan))}")
    for name in cases:
        if name != case and data.get(name) is not None:
            raise OpenAIJSONError(_join(path, name), f"not allowed with type {case!r}")
    value = data.get(case)
    case_path = _join(path, case)
    if field.kind == _MESSAGE or field.kind in _WELL_KNOWN_RENDER:
        getattr(message, case).SetInParent()  # special case (a): `{type}` alone sets the case
        if value is not None:
            _parse_field(message, field, value, case_path)
    elif value is None:
        setattr(message, case, _SCALAR_DEFAULTS.get(field.kind, 0))
    else:
        _parse_field(message, field, value, case_path)


def _typed_cases(plan: _Plan) -> list[str]:
    return [name for name, field in plan.union_cases.items() if field.bare is None]


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(repr(name) for name in names)


def _parse_field(message: Message, field: _Field, value: Any, path: str) -> None:
    name = field.name
    if field.is_map:
        if not isinstance(value, dict):
            raise OpenAIJSONError(path, "expected an object")
        container = getattr(message, name)
        for key, item in value.items():
            item_path = _join(path, str(key))
            if item is None:
                raise OpenAIJSONError(item_path, "null is not allowed here")
            if field.kind == _MESSAGE or field.kind in _WELL_KNOWN_RENDER:
                _parse_composite(container[key], field, item, item_path)
            else:
                container[key] = _parse_scalar(field, item, item_path)
        return
    if field.repeated:
        container = getattr(message, name)
        if isinstance(value, str) and field.one_part_case is not None:
            setattr(container.add(), field.one_part_case, value)  # special case (f)
            return
        if isinstance(value, str) and field.one_item:
            container.append(value)  # special case (j)
            return
        if not isinstance(value, list):
            raise OpenAIJSONError(path, "expected a list")
        composite = field.kind == _MESSAGE or field.kind in _WELL_KNOWN_RENDER
        for index, item in enumerate(value):
            item_path = f"{path}[{index}]"
            if composite:
                element = container.add()
                if item is not None:
                    _parse_composite(element, field, item, item_path)
            elif item is None:
                raise OpenAIJSONError(item_path, "null is not allowed here")
            else:
                container.append(_parse_scalar(field, item, item_path))
        return
    if field.kind == _MESSAGE or field.kind in _WELL_KNOWN_RENDER:
        sub = getattr(message, name)
        sub.SetInParent()  # `{}` sets the field, as an object present in JSON should
        _parse_composite(sub, field, value, path)
        return
    setattr(message, name, _parse_scalar(field, value, path))


def _parse_composite(message: Message, field: _Field, value: Any, path: str) -> None:
    if field.plan is not None:
        _parse_into(message, value, field.plan, path)
        return
    problem = _EXPECTED.get(field.kind)
    try:
        if field.kind == _STRUCT:
            if not isinstance(value, dict):
                raise OpenAIJSONError(path, "expected an object")
            message.update(value)  # type: ignore[attr-defined]
        elif field.kind == _LIST_VALUE:
            if not isinstance(value, list):
                raise OpenAIJSONError(path, "expected a list")
            message.extend(value)  # type: ignore[attr-defined]
        else:
            # A Value holds any JSON; Struct.update knows every JSON type, so go through one.
            holder = struct_pb2.Struct()
            holder.update({"v": value})
            message.CopyFrom(holder.fields["v"])
    except (ValueError, TypeError) as exc:
        if isinstance(exc, OpenAIJSONError):
            raise
        raise OpenAIJSONError(path, problem or "expected JSON") from exc


def _parse_scalar(field: _Field, value: Any, path: str) -> Any:
    kind = field.kind
    if kind == _STRING:
        if isinstance(value, str):
            return value
    elif kind == _BOOL:
        if isinstance(value, bool):
            return value
    elif kind == _INT:
        if isinstance(value, int) and not isinstance(value, bool):
            low, high = field.int_range or (-(2**63), 2**63 - 1)
            if not low <= value <= high:
                raise OpenAIJSONError(path, f"integer out of range {low}..{high}")
            return value
    elif kind == _FLOAT:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif kind == _ENUM and field.enum is not None:
        number = field.enum.numbers.get(value) if isinstance(value, str) else None
        if number is not None:
            return number
        raise OpenAIJSONError(path, f"expected one of {_quoted(field.enum.numbers)}")
    raise OpenAIJSONError(path, _EXPECTED.get(kind, "unexpected value"))
