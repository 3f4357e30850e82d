"""Hypothesis strategies for any request message, driven by its descriptor: every field gets
random and hostile values (huge strings, deep Structs, unknown enum numbers, text decoded from
invalid UTF-8, negative and extreme numbers, ids of other kinds and other projects), and raw
request bytes that do not parse at all."""

from __future__ import annotations

from functools import cache
from typing import Any

from google.protobuf import message_factory, struct_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

F = FieldDescriptor
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_HOSTILE = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "' OR 1=1 --",
    "'; DROP TABLE threads; --",
    "%",
    "_",
    "\\",
    "../../../../etc/passwd",
    "/dev/zero",
    "file:///etc/passwd",
    "{{7*7}}",
    "${jndi:ldap://x}",
    "__import__('os').system('id')",
    "\u202e\ufeff\u200b",
    "🙂" * 10,
    "null",
    "[DONE]",
    "data: x\n\n",
    "https://example.com/a.png",
    "data:image/png;base64,AAAA",
    "step_details.tool_calls[*].file_search.results[*].content",
    "/tool get_weather {}",
]


def _huge() -> st.SearchStrategy[str]:
    # Just under and well past the server's limits (the fuzz server takes 1 MiB requests).
    sizes = [257, 513, 70_000, 256_001, 600_000, 2_000_000]
    return st.sampled_from(sizes).flatmap(
        lambda n: st.sampled_from(["x", "é", "🙂", "\x00"]).map(
            lambda c: c * (n // len(c.encode()))
        )
    )


def _from_bad_utf8() -> st.SearchStrategy[str]:
    # What a careless client sends after decoding bytes that were not UTF-8.
    return st.binary(max_size=40).map(
        lambda b: (b + b"\xff\xfe\xc3\x28").decode("utf-8", "replace")
    )


def _mostly(usual: st.SearchStrategy[Any], rare: st.SearchStrategy[Any], percent: int) -> Any:
    """`rare` in about `percent` % of draws: huge values are worth testing, not in every field
    of every case (that would only test the request size limit, slowly)."""
    return st.integers(0, 99).flatmap(lambda roll: rare if roll < percent else usual)


@cache
def strings(ids: tuple[str, ...]) -> st.SearchStrategy[str]:
    usual = st.one_of(
        st.text(max_size=30),
        st.sampled_from(_HOSTILE),
        st.sampled_from(list(ids)),
        _from_bad_utf8(),
    )
    return _mostly(usual, _huge(), 2)  # type: ignore[no-any-return]


@cache
def id_strings(ids: tuple[str, ...]) -> st.SearchStrategy[str]:
    """For `*_id`, `after`, `before`: mostly real ids (of any kind and project)."""
    real = st.sampled_from(list(ids))
    return st.one_of(real, real, real, strings(ids))


def _ints(bounds: tuple[int, int]) -> st.SearchStrategy[int]:
    low, high = bounds
    return st.one_of(
        st.integers(low, high),
        st.sampled_from([low, high, -1, 0, 1, 2, 20, 100, 101, 255, 256, 10**6]).filter(
            lambda n: low <= n <= high
        ),
    )


def _floats(width: int) -> st.SearchStrategy[float]:
    return st.one_of(
        st.floats(width=width),
        st.sampled_from([0.0, -0.0, 1.0, 2.0, 2.0001, -1.0, float("nan"), float("inf")]),
    )


@cache
def structs(ids: tuple[str, ...]) -> st.SearchStrategy[struct_pb2.Struct]:
    """JSON objects: small random ones, deep chains (past any limit), wide or non-finite ones."""
    leaves = st.one_of(
        st.none(),
        st.booleans(),
        _floats(64),
        st.text(max_size=10),
        st.sampled_from(["object", "string", "array"]),
    )
    values = st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=12,
    )
    small = st.dictionaries(
        st.sampled_from(["type", "properties", "required", "items", "x"]) | st.text(max_size=8),
        values,
        max_size=4,
    )
    return st.one_of(
        small.map(_struct),
        st.integers(1, 60).map(_deep),
        st.integers(1, 3).map(lambda n: _struct({f"k{i}": "v" * 100 for i in range(300 * n)})),
    )


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(value)
    return struct


def _deep(depth: int) -> struct_pb2.Struct:
    """A Struct nested `depth` levels, alternating objects and lists."""
    root = struct_pb2.Struct()
    node: Any = root
    for level in range(depth - 1):
        if level % 2:
            node = node.fields["a"].struct_value
        else:
            node = node.fields["l"].list_value.values.add().struct_value
    node.fields["type"].string_value = "object"
    return root


@cache  # strategies are built once per type: building them per draw is most of the cost
def messages(
    descriptor: Descriptor, message_class: type[Message], ids: tuple[str, ...], depth: int = 0
) -> st.SearchStrategy[Message]:
    """Any message of this type: each field absent or given a random or hostile value, at most
    one member of each oneof, nested messages down to a few levels."""
    if descriptor.full_name == "google.protobuf.Struct":
        return structs(ids)  # type: ignore[return-value]
    chosen_oneofs = [st.sampled_from([None, *oneof.fields]) for oneof in descriptor.oneofs]
    in_oneof = {f.name for oneof in descriptor.oneofs for f in oneof.fields}
    plain = [f for f in descriptor.fields if f.name not in in_oneof]

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        message = message_class()
        fields = [f for f in plain if draw(st.booleans())]
        fields += [f for f in (draw(choice) for choice in chosen_oneofs) if f is not None]
        for field in fields:
            _set(draw, message, field, ids, depth)
        return message

    return build()


@cache
def _value(field: FieldDescriptor, ids: tuple[str, ...], depth: int) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == F.TYPE_STRING:
        named_id = field.name.endswith("_id") or field.name in ("after", "before")
        return id_strings(ids) if named_id else strings(ids)
    if kind == F.TYPE_BYTES:
        return st.binary(max_size=20)
    if kind == F.TYPE_BOOL:
        return st.booleans()
    if kind == F.TYPE_ENUM:
        known = [v.number for v in field.enum_type.values]
        return st.one_of(st.sampled_from(known), st.sampled_from(known), _ints(_INT32))
    if kind in (F.TYPE_INT32, F.TYPE_SINT32, F.TYPE_SFIXED32):
        return _ints(_INT32)
    if kind in (F.TYPE_INT64, F.TYPE_SINT64, F.TYPE_SFIXED64):
        return _ints(_INT64)
    if kind in (F.TYPE_UINT32, F.TYPE_FIXED32):
        return _ints((0, 2**32 - 1))
    if kind in (F.TYPE_UINT64, F.TYPE_FIXED64):
        return _ints((0, 2**64 - 1))
    if kind == F.TYPE_FLOAT:
        return _floats(32)
    if kind == F.TYPE_DOUBLE:
        return _floats(64)
    message_type = field.message_type
    if depth >= 3 and message_type.full_name != "google.protobuf.Struct":
        return st.just(message_factory.GetMessageClass(message_type)())
    return messages(message_type, message_factory.GetMessageClass(message_type), ids, depth + 1)


@cache
def _repeated(field: FieldDescriptor, ids: tuple[str, ...], depth: int) -> Any:
    """Mostly a few values, sometimes very many copies of one (past the count limits)."""
    values = _value(field, ids, depth)
    return _mostly(
        st.lists(values, max_size=3),
        st.tuples(values, st.integers(20, 200)).map(lambda pair: [pair[0]] * pair[1]),
        5,
    )


def _set(
    draw: st.DrawFn, message: Message, field: FieldDescriptor, ids: tuple[str, ...], depth: int
) -> None:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        key_field, value_field = (
            field.message_type.fields_by_name["key"],
            field.message_type.fields_by_name["value"],
        )
        size = draw(st.sampled_from([0, 0, 1, 2, 3, 17]))
        entries = {
            draw(_value(key_field, ids, depth)): draw(_value(value_field, ids, depth))
            for _ in range(size)
        }
        target = getattr(message, field.name)
        for key, value in entries.items():
            if value_field.message_type is not None:
                target[key].CopyFrom(value)
            else:
                target[key] = value
        return
    values = _value(field, ids, depth)
    if field.is_repeated:
        items = draw(_repeated(field, ids, depth))
        target = getattr(message, field.name)
        for item in items:
            # add().CopyFrom, not extend: upb's extend re-parses, and a deep Struct is the point.
            if field.message_type is not None:
                target.add().CopyFrom(item)
            else:
                target.append(item)
    elif field.message_type is not None:
        getattr(message, field.name).CopyFrom(draw(values))
    else:
        setattr(message, field.name, draw(values))


def raw_payloads(descriptor: Descriptor) -> st.SearchStrategy[bytes]:
    """Request bytes a well-behaved client library would never send."""
    strings_fields = [f.number for f in descriptor.fields if f.type == F.TYPE_STRING]
    struct_fields = [
        f.number for f in descriptor.fields if f.type == F.TYPE_MESSAGE and not f.is_repeated
    ]
    bad_utf8 = st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"ok\xfe"])
    choices = [
        st.binary(max_size=64),  # garbage
        st.just(b"\x0a\xff\xff\xff\xff\x0f"),  # a length far past the end
    ]
    if strings_fields:
        choices.append(
            st.tuples(st.sampled_from(strings_fields), bad_utf8).map(
                lambda t: _length_delimited(*t)
            )
        )
    if struct_fields:
        # A sub-message nested far past protobuf's recursion limit.
        choices.append(st.sampled_from(struct_fields).map(lambda n: _nested(n, 150)))
    return st.one_of(*choices)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _nested(number: int, depth: int) -> bytes:
    payload = b""
    for _ in range(depth):
        payload = _length_delimited(1, payload)
    return _length_delimited(number, payload)


def mutations(template: Message, ids: tuple[str, ...]) -> st.SearchStrategy[Message]:
    """A valid request with a few of its fields replaced by random or hostile values: random
    requests rarely get past validation, these reach storage and the run engine."""
    descriptor = template.DESCRIPTOR

    @st.composite
    def mutate(draw: st.DrawFn) -> Message:
        message = type(template)()
        message.CopyFrom(template)
        chosen = draw(
            st.lists(
                st.sampled_from(list(descriptor.fields)), max_size=3, unique_by=lambda f: f.name
            )
        )
        for field in chosen:
            message.ClearField(field.name)
            if draw(st.booleans()):
                _set(draw, message, field, ids, 1)
        return message

    return mutate()


__all__ = ["id_strings", "messages", "mutations", "raw_payloads", "strings", "structs"]
