"""The file_search executor and its citation annotator, without a server: arguments, output
markers, details, the annotator over split streams, and the include rule of step rendering."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from assistants_grpc.engine.server_tools import ToolCallRequest, ToolExecutor, ToolRunContext
from assistants_grpc.files.retrieval import SearchHit, SearchQuery
from assistants_grpc.store import migrate
from assistants_grpc.store.database import Database
from assistants_grpc.store.mapping import step_from_row
from assistants_grpc.tools.file_search import (
    FileCitationAnnotator,
    FileSearchExecutor,
    known_results,
    marker,
    parse_queries,
    result_limits,
)


class FakeRetriever:
    def __init__(self, hits: list[SearchHit]) -> None:
        self.hits = hits
        self.queries: list[SearchQuery] = []

    async def search(self, query: SearchQuery) -> list[SearchHit]:
        self.queries.append(query)
        return self.hits[: query.max_results]


def _context(**kwargs: Any) -> ToolRunContext:
    values: dict[str, Any] = {
        "project": "default",
        "run_id": "run_1",
        "thread_id": "thread_1",
        "assistant_id": "asst_1",
        "model": "gpt-4o",
        "tool": {"type": "file_search"},
        "tool_resources": {"file_search": {"vector_store_ids": ["vs_1"]}},
    }
    return ToolRunContext(**(values | kwargs))


HITS = [
    SearchHit("vs_1", "file-a", "a.md", 0.9, "Kiwis cannot fly.", 5),
    SearchHit("vs_1", "file-b", "b.pdf", 0.5, "Penguins swim.", 4),
]


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    """A real, empty schema: no thread has files in progress, no store has expired."""
    database = Database(f"sqlite:///{tmp_path_factory.mktemp('fs') / 'db.sqlite'}")
    migrate.upgrade(database)
    yield database
    database.dispose()


_DATABASE: list[Database] = []


@pytest.fixture(autouse=True)
def _use(database: Database) -> None:
    _DATABASE[:] = [database]


def _executor(hits: list[SearchHit]) -> tuple[FileSearchExecutor, FakeRetriever]:
    retriever = FakeRetriever(hits)
    executor = FileSearchExecutor(retriever, _DATABASE[0], wait_seconds=0)  # type: ignore[arg-type]
    return executor, retriever


async def _noop(_: Any) -> None:
    return None


def test_it_is_a_tool_executor() -> None:
    executor, _ = _executor([])
    typed: ToolExecutor = executor  # mypy checks the protocol
    assert typed.tool_type == "file_search"
    assert executor.function_name == "file_search"
    schema = executor.definition({"type": "file_search"})["function"]["parameters"]
    assert schema["required"] == ["queries"]
    assert schema["properties"]["queries"]["maxItems"] == 5


async def test_results_come_back_with_markers_and_details() -> None:
    executor, retriever = _executor(HITS)
    call = ToolCallRequest("call_1", 0, json.dumps({"queries": ["can kiwis fly?"]}))
    result = await executor.execute(call, _context(), _noop)
    assert marker(0, 0, "a.md") + "\nKiwis cannot fly." in result.output
    assert marker(0, 1, "b.pdf") in result.output
    assert result.details["ranking_options"] == {"ranker": "auto", "score_threshold": 0.0}
    first = result.details["results"][0]
    assert first == {
        "file_id": "file-a",
        "file_name": "a.md",
        "score": 0.9,
        "content": [{"type": "text", "text": "Kiwis cannot fly."}],
    }
    query = retriever.queries[0]
    assert query.store_ids == ["vs_1"] and query.max_results == 20 and query.token_budget == 16_000


async def test_a_later_call_numbers_its_markers_after_the_earlier_ones() -> None:
    executor, _ = _executor(HITS)
    earlier = [{"id": "call_0", "type": "file_search", "file_search": {"results": []}}]
    # The step's second file_search call, its fourth call (function calls come first): its
    # number counts file_search calls only, as known_results does.
    call = ToolCallRequest("call_2", 3, json.dumps({"queries": ["x"]}), ordinal=1)
    result = await executor.execute(call, _context(earlier_calls=earlier), _noop)
    assert marker(2, 0, "a.md") in result.output


@pytest.mark.parametrize(
    "arguments",
    ["not json", "[]", '{"queries": []}', '{"queries": [1]}', '{"queries": ["", " "]}',
     json.dumps({"queries": ["q"] * 6}), "{}"],
)  # fmt: skip
async def test_bad_arguments_get_a_clear_output_not_a_crash(arguments: str) -> None:
    executor, retriever = _executor(HITS)
    result = await executor.execute(ToolCallRequest("call_1", 0, arguments), _context(), _noop)
    assert result.output.startswith("file_search was not run:")
    assert result.details["results"] == []
    assert not retriever.queries


def test_gpt_35_gets_fewer_results_within_a_smaller_budget() -> None:
    assert result_limits("gpt-3.5-turbo", {"type": "file_search"}) == (5, 4_000)
    assert result_limits("gpt-4o", {"type": "file_search"}) == (20, 16_000)
    assert result_limits("gpt-4o", {"file_search": {"max_num_results": 3}}) == (3, 16_000)


def test_parse_queries_accepts_a_lone_string() -> None:
    assert parse_queries('{"queries": "why?"}') == (["why?"], None)


# --- the annotator ------------------------------------------------------------------------

KNOWN = {(0, 0): "file-a", (0, 1): "file-b"}


def _run(pieces: list[str], known: dict[tuple[int, int], str] = KNOWN) -> tuple[str, list[Any]]:
    annotator = FileCitationAnnotator(known)
    text, annotations = "", []
    for piece in pieces:
        out, found = annotator.feed(piece)
        text += out
        annotations += found
    out, found = annotator.finish()
    return text + out, annotations + found


def test_a_marker_becomes_a_file_citation_with_code_point_indices() -> None:
    answer = "Kiwis ✈️ cannot fly 【0:0†a.md】, penguins swim【0:1†b.pdf】."
    text, annotations = _run([answer])
    assert text == answer
    assert [a["file_citation"]["file_id"] for a in annotations] == ["file-a", "file-b"]
    for a in annotations:
        assert text[a["start_index"] : a["end_index"]] == a["text"]
        assert a["type"] == "file_citation"


@given(st.integers(min_value=1, max_value=60), st.data())
def test_any_split_gives_the_same_text_and_annotations(parts: int, data: st.DataObject) -> None:
    answer = "A【0:0†a.md】【0:1†b.pdf】 then 【9:9†x】 and 【 and 【0:0†a.md"
    cuts = sorted(data.draw(st.lists(st.integers(0, len(answer)), max_size=parts)))
    pieces = [answer[i:j] for i, j in zip([0, *cuts], [*cuts, len(answer)], strict=True)]
    whole = _run([answer])
    assert _run(pieces) == whole
    assert whole[0] == answer
    assert len(whole[1]) == 2  # unknown, broken and unfinished markers stay text


def test_a_marker_split_across_pieces_is_held_until_complete() -> None:
    annotator = FileCitationAnnotator(KNOWN)
    assert annotator.feed("see 【0:") == ("see ", [])
    text, annotations = annotator.feed("0†a.md】 ok")
    assert text == "【0:0†a.md】 ok"
    assert annotations[0]["start_index"] == 4 and annotations[0]["end_index"] == 14


def test_the_annotator_learns_markers_from_earlier_calls() -> None:
    earlier = [
        {"id": "c1", "type": "code_interpreter", "code_interpreter": {"input": "", "outputs": []}},
        {"id": "c2", "type": "file_search", "file_search": {"results": [{"file_id": "file-a"}]}},
        {"id": "c3", "type": "file_search", "file_search": {"results": [{"file_id": "file-b"}]}},
    ]
    assert known_results(earlier) == {(0, 0): "file-a", (1, 0): "file-b"}
    executor, _ = _executor([])
    assert executor.annotator(_context(earlier_calls=earlier)) is not None
    assert executor.annotator(_context()) is None


# --- include ------------------------------------------------------------------------------


def _step_row() -> dict[str, Any]:
    return {
        "id": "step_1", "created_at": 1, "run_id": "run_1", "assistant_id": "asst_1",
        "thread_id": "thread_1", "type": "tool_calls", "status": "completed",
        "step_details": {"type": "tool_calls", "tool_calls": [{
            "id": "call_1", "type": "file_search",
            "file_search": {"ranking_options": {"ranker": "auto", "score_threshold": 0.0},
                            "results": [{"file_id": "file-a", "file_name": "a.md", "score": 0.9,
                                         "content": [{"type": "text", "text": "Kiwis."}]}]}}]},
        "metadata": {}, "expired_at": None, "cancelled_at": None, "failed_at": None,
        "completed_at": 2, "last_error": None, "usage": None,
    }  # fmt: skip


def test_step_rendering_shows_result_content_only_when_included() -> None:
    hidden = step_from_row(_step_row()).step_details.tool_calls.tool_calls[0].file_search
    assert hidden.results[0].file_id == "file-a" and not hidden.results[0].content
    shown = step_from_row(_step_row(), include_result_content=True)
    content = shown.step_details.tool_calls.tool_calls[0].file_search.results[0].content
    assert content[0].text == "Kiwis."


async def test_markers_of_a_mixed_step_match_what_the_annotator_knows() -> None:
    # A step of [function, file_search, python, file_search]: plan_calls gives each server
    # call its place among its type's calls, so the two searches are numbered 0 and 1 (not by
    # their indices 1 and 3), which is how known_results numbers them once stored.
    from assistants_grpc.engine.accumulator import CallDraft
    from assistants_grpc.engine.server_calls import plan_calls

    executor, _ = _executor(HITS)

    class Python:
        tool_type = "code_interpreter"

        def input_stream(self) -> Any:
            return executor.input_stream()

    drafts = [
        CallDraft(0, "call_f", "get_weather", ["{}"]),
        CallDraft(1, "call_s1", "file_search", ['{"queries": ["kiwi"]}']),
        CallDraft(2, "call_p", "python", ['{"code": "1"}']),
        CallDraft(3, "call_s2", "file_search", ['{"queries": ["penguin"]}']),
    ]
    planned = plan_calls(drafts, {"file_search": executor, "python": Python()})  # type: ignore[dict-item]
    assert [(p.tool_type, p.request().ordinal) for p in planned] == [
        ("function", 0),
        ("file_search", 0),
        ("code_interpreter", 0),
        ("file_search", 1),
    ]
    earlier = [{"type": "file_search", "file_search": {"results": [{"file_id": "file-0"}]}}]
    stored = list(earlier)
    for call in (planned[1], planned[3]):
        result = await executor.execute(call.request(), _context(earlier_calls=earlier), _noop)
        stored.append({"type": "file_search", "file_search": result.details})
        assert marker(1 + call.request().ordinal, 0, "a.md") in result.output
    known = known_results(stored)
    assert known[(0, 0)] == "file-0"
    assert known[(1, 0)] == known[(2, 0)] == "file-a" and known[(2, 1)] == "file-b"
