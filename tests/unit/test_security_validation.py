"""Schema size and depth limits, message limits, tool output sizes, and clipped statuses."""

from __future__ import annotations

from google.protobuf import struct_pb2

from assistants_grpc.api.errors import clip, to_status
from assistants_grpc.contract.pb import message_pb2, run_pb2
from assistants_grpc.services import validation as check
from assistants_grpc.services.errors import FieldViolation, InvalidArgumentError, NotFoundError
from assistants_grpc.services.limits import Limits


def _deep(depth: int) -> struct_pb2.Struct:
    root = struct_pb2.Struct()
    node = root
    for _ in range(depth - 1):
        node = node.fields["a"].struct_value
    node.fields["leaf"].bool_value = True  # sets every level on the way (upb sets lazily)
    return root


def _violations(run: object) -> list[str]:
    v = check.Violations()
    run(v)  # type: ignore[operator]
    return [f"{item.field}: {item.description}" for item in v.items]


def test_struct_depth_size_and_numbers() -> None:
    assert _violations(lambda v: check.check_struct(v, "p", _deep(32))) == []
    assert "nested too deeply" in _violations(lambda v: check.check_struct(v, "p", _deep(33)))[0]
    listed = struct_pb2.Struct()
    node = listed.fields["l"].list_value
    for _ in range(40):
        node = node.values.add().list_value
    node.values.add().bool_value = True
    assert "nested too deeply" in _violations(lambda v: check.check_struct(v, "p", listed))[0]
    wide = struct_pb2.Struct()
    wide.update({f"k{i}": "v" * 100 for i in range(700)})
    assert "too large" in _violations(lambda v: check.check_struct(v, "p", wide))[0]
    for bad in (float("nan"), float("inf")):
        value = struct_pb2.Struct()
        value.fields["x"].list_value.values.add().number_value = bad
        assert "finite" in _violations(lambda v, s=value: check.check_struct(v, "p", s))[0]


def test_message_limits_name_the_field() -> None:
    limits = Limits(max_message_chars=10, max_content_parts=2)

    def message(*texts: str) -> list[str]:
        parts = [message_pb2.MessageContentInput(text=t) for t in texts]
        return _violations(
            lambda v: check.check_message_input(
                v, "additional_messages[1]", message_pb2.MESSAGE_ROLE_USER, parts, [], {}, limits
            )
        )

    assert message("x" * 5, "y" * 5) == []
    assert message("x" * 6, "y" * 5) == [
        "additional_messages[1].content: text too long. Expected at most 10 characters in all, "
        "got 11."
    ]
    assert message("a", "b", "c")[0].startswith("additional_messages[1].content: array too long")
    assert message("a\x00") == []  # content is JSON: a NUL is data like any other


def test_tool_output_sizes_count_bytes() -> None:
    limits = Limits(max_tool_output_bytes=4, max_tool_outputs_bytes=6)

    def outputs(*texts: str) -> list[str]:
        items = [run_pb2.ToolOutput(tool_call_id=f"c{i}", output=t) for i, t in enumerate(texts)]
        return [
            item.split(":")[0]
            for item in _violations(lambda v: check.check_tool_outputs(v, "o", items, limits))
        ]

    assert outputs("abcd", "ab") == []
    assert outputs("ééé") == ["o[0].output"]
    assert outputs("abcd", "abc") == ["o"]


def test_nul_is_refused_in_text_columns() -> None:
    assert _violations(lambda v: check.check_length(v, "name", "a\x00", 10)) == [
        "name: must not contain NUL characters."
    ]
    assert check.plausible_id("thread_abcXYZ09")
    for bad in ("", "a\x00", "x" * 65, "thread abc", "thread_é"):
        assert not check.plausible_id(bad)


def test_statuses_stay_small_whatever_they_echo() -> None:
    huge = "🙂" * 100_000
    status = to_status(NotFoundError("thread", huge))
    assert len(status.details) < 1000  # grpc-message
    violations = [FieldViolation(huge, huge) for _ in range(1000)]
    status = to_status(InvalidArgumentError(violations))
    total = sum(len(value) for _, value in status.trailing_metadata)
    assert total < 4000
    assert clip("abc", 10) == "abc"
    assert clip("é" * 10, 7) == "éé…"
