"""Reading dumps: every form people kept, streamed, each object with the line it starts on."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from assistants_grpc.transfer import reading
from assistants_grpc.transfer.reading import ReadError, Record, read_records
from assistants_grpc.transfer.staging import Staging


def values(path: Path) -> list[tuple[int, object]]:
    return [(r.line, r.value if r.error is None else r.error) for r in read_records(path)]


def test_json_lines_go_on_after_a_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text(
        '{"a": 1}\n\n{bad\n[{"b": 2}, {"c": 3}]\n{"object": "list", "data": [{"d": 4}]}\n'
    )
    assert values(path) == [
        (1, {"a": 1}),
        (3, "not valid JSON: Expecting property name enclosed in double quotes (column 2)"),
        (4, {"b": 2}),
        (4, {"c": 3}),
        (5, {"d": 4}),
    ]


@pytest.mark.parametrize("chunk", [3, 1 << 20])
def test_documents_stream_element_by_element(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """Pretty-printed arrays and list pages, read through buffers smaller than a value."""
    monkeypatch.setattr(reading, "_CHUNK", chunk)
    array = tmp_path / "a.json"
    array.write_text('[\n {"a": 1},\n {"b":\n   "x\\u00e9"},\n {"c": [true, null, 12345]}\n]\n')
    assert values(array) == [(2, {"a": 1}), (3, {"b": "xé"}), (5, {"c": [True, None, 12345]})]
    page = tmp_path / "p.json"
    page.write_text(
        json.dumps({"object": "list", "data": [{"a": 1}, {"b": 2}], "has_more": False}, indent=1)
        + "\n"
        + json.dumps({"z": 1}, indent=1)
    )
    assert values(page) == [(4, {"a": 1}), (7, {"b": 2}), (13, {"z": 1})]
    single = tmp_path / "s.json"
    single.write_text(json.dumps({"id": "x", "nested": {"data": [1]}}, indent=2))
    assert values(single) == [(1, {"id": "x", "nested": {"data": [1]}})]


def test_a_broken_document_stops_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "b.json"
    path.write_text('[\n {"a": 1},\n {"b": x},\n {"c": 3}\n]\n')
    records: list[Record] = []
    with pytest.raises(ReadError) as caught:
        records.extend(read_records(path))
    assert [r.value for r in records] == [{"a": 1}]
    assert caught.value.line == 3 and "Expecting value" in caught.value.reason


def test_gzip_bom_and_not_utf8(tmp_path: Path) -> None:
    packed = tmp_path / "d.jsonl.gz"
    packed.write_bytes(gzip.compress(b'\xef\xbb\xbf{"a": 1}\n{"b": 2}\n'))
    assert values(packed) == [(1, {"a": 1}), (2, {"b": 2})]
    latin = tmp_path / "l.jsonl"
    latin.write_bytes(b'{"a": 1}\n{"b": "\xe9"}\n')
    with pytest.raises(ReadError, match="not UTF-8"):
        list(read_records(latin))


def test_nul_escapes_are_flagged(tmp_path: Path) -> None:
    path = tmp_path / "n.jsonl"
    path.write_text('{"a": "x\\u0000"}\n{"a": "y"}\n')
    assert [r.may_hold_nul for r in read_records(path)] == [True, False]


def test_staging_keeps_input_order_and_reverses_newest_first_groups(tmp_path: Path) -> None:
    """A thread's messages listed newest first are written oldest first; a group in any other
    order keeps it (an export is in insertion order, ties included); parents come first."""
    staging = Staging(tmp_path)
    try:
        rows = [
            (1, "m-a3", "A", 30),  # group A newest first, interleaved with B
            (1, "m-b1", "B", 10),
            (1, "m-a2", "A", 20),
            (1, "m-b2", "B", 5),  # B falls then rises: kept as read
            (1, "m-a1", "A", 20),
            (1, "m-b3", "B", 7),
            (0, "t-1", "", 1),  # the parent, read last
            (1, "m-c1", "C", 9),  # C: ties only
            (1, "m-c2", "C", 9),
        ]
        for line, (kind, object_id, group, created_at) in enumerate(rows, 1):
            staging.add(kind, object_id, group, created_at, 0, line, None, 0, object_id.encode())
        staging.add(1, "m-b1", "B", 10, 0, 99, None, 0, b"again")
        [duplicate] = staging.finish()
        assert (duplicate.id, duplicate.line, duplicate.first_line) == ("m-b1", 99, 2)
        order = [s.data.decode() for s in staging.in_order()]
        assert order == ["t-1", "m-a1", "m-b1", "m-a2", "m-b2", "m-a3", "m-b3", "m-c1", "m-c2"]
        assert staging.find(1, "m-a2") == (0, 3, None)
        assert staging.find(1, "nope") is None
    finally:
        staging.close()
