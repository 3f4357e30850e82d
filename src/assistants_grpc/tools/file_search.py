"""The `file_search` tool, executed by the server (engine/server_tools.py's ToolExecutor).

The model sees a function `file_search({"queries": [1..5 strings]})`. Executing a call searches
the run's vector stores (the assistant's and the thread's, from `ToolRunContext.tool_resources`)
through the one retrieval path (files/retrieval.py), after waiting up to WAIT_SECONDS for the
thread's files still being ingested. The model gets one tool message: every passage headed by
its source marker

    【{call}:{result}†{filename}】

where `call` numbers the run's file_search calls in order (0, 1, … over `earlier_calls`, plus
the call's place among its step's file_search calls) and `result` is the passage's place in
that call's results. The model cites with the same markers; `annotator()` turns each marker
it finds in the answer into a `file_citation` annotation (the marker stays in the text;
`start_index`/`end_index` in code points of the message text, end exclusive). A marker split
across streamed pieces is held back until it is complete; a marker naming no known result
stays plain text.

The call's step details are `{"ranking_options": {...}, "results": [{file_id, file_name, score,
content: [{type: "text", text}]}]}`, stored whole; rendering leaves `content` out unless the
request's `include[]` asks for it (store/mapping.step_from_row).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final

from sqlalchemy import Connection, func, select

from assistants_grpc.engine.server_tools import (
    JSON,
    EmitDelta,
    InputStream,
    NoInput,
    ToolCallRefused,
    ToolCallRequest,
    ToolResult,
    ToolRunContext,
)
from assistants_grpc.files.retrieval import Retriever, SearchHit, SearchQuery
from assistants_grpc.store import repository as repo
from assistants_grpc.store import vector_stores as vs
from assistants_grpc.store.database import Database

__all__ = [
    "MAX_QUERIES",
    "WAIT_SECONDS",
    "ExpiredStoreError",
    "FileCitationAnnotator",
    "FileSearchExecutor",
    "marker",
    "result_limits",
]

MAX_QUERIES: Final = 5
WAIT_SECONDS: Final = 60.0
_DEFAULT_RANKING: Final = {"ranker": "auto", "score_threshold": 0.0}
_DESCRIPTION: Final = (
    "Search the files the user gave you (their vector stores) for passages relevant to the "
    "question. Write up to five queries: the user's question with references resolved, and "
    "rephrasings or sub-questions. Cite a passage you use with its marker, e.g. 【0:1†file.pdf】."
)


class ExpiredStoreError(ToolCallRefused):
    """A vector store of the run has expired: the run cannot search it. The run loop ends the
    run `failed` with `server_error` and this message as its `last_error` (CONTRACT.md §12)."""


def marker(call: int, result: int, filename: str) -> str:
    return f"【{call}:{result}†{filename}】"


def result_limits(model: str, tool: Mapping[str, Any]) -> tuple[int, int]:
    """(max results, token budget) of a call: the tool's max_num_results if set, else 20 (5 for
    gpt-3.5-class models), within 16k tokens (4k for gpt-3.5) (CONTRACT.md §12)."""
    name = model.lower()
    small = "gpt-3.5" in name or "gpt-35" in name
    settings = tool.get("file_search") or {}
    limit = settings.get("max_num_results") or (5 if small else 20)
    return int(limit), 4_000 if small else 16_000


class FileSearchExecutor:
    """Executes `file_search` calls over the run's vector stores."""

    def __init__(
        self,
        retriever: Retriever,
        database: Database,
        *,
        wait_seconds: float = WAIT_SECONDS,
        poll_seconds: float = 0.25,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._retriever = retriever
        self._database = database
        self._wait_seconds = wait_seconds
        self._poll_seconds = poll_seconds
        self._sleep = sleep

    @property
    def tool_type(self) -> str:
        return "file_search"

    @property
    def function_name(self) -> str:
        return "file_search"

    def definition(self, tool: JSON) -> JSON:
        return {
            "type": "function",
            "function": {
                "name": "file_search",
                "description": _DESCRIPTION,
                "parameters": {
                    "type": "object",
                    "properties": {
                        "queries": {
                            "type": "array",
                            "items": {"type": "string"},
                            "minItems": 1,
                            "maxItems": MAX_QUERIES,
                            "description": "One to five search queries.",
                        }
                    },
                    "required": ["queries"],
                    "additionalProperties": False,
                },
            },
        }

    def input_stream(self) -> InputStream:
        return NoInput()

    async def execute(
        self, call: ToolCallRequest, context: ToolRunContext, emit: EmitDelta
    ) -> ToolResult:
        ranking = {
            **_DEFAULT_RANKING,
            **((context.tool.get("file_search") or {}).get("ranking_options") or {}),
        }
        queries, problem = parse_queries(call.arguments)
        if problem is not None:
            return ToolResult(
                output=f"file_search was not run: {problem} Call it again with "
                '{"queries": ["..."]} (one to five non-empty strings).',
                details={"ranking_options": ranking, "results": []},
            )
        store_ids = _store_ids(context.tool_resources)
        if store_ids:
            await self._wait_for_thread_files(context.thread_id)
        limit, budget = result_limits(context.model, context.tool)
        hits = (
            await self._retriever.search(
                SearchQuery(
                    store_ids=store_ids,
                    queries=queries,
                    max_results=limit,
                    score_threshold=float(ranking.get("score_threshold") or 0.0),
                    token_budget=budget,
                    # A store may have expired since the run began.
                    check=lambda c: _refuse_expired(c, store_ids),
                )
            )
            if store_ids
            else []
        )
        number = call_number(context.earlier_calls, call.ordinal)
        return ToolResult(output=_output(number, queries, hits), details=_details(ranking, hits))

    async def preflight(self, context: ToolRunContext) -> None:
        """Before the run's first turn: a run whose store has expired fails at once, whether or
        not the model would search (OpenAI: "runs on that thread will fail")."""
        store_ids = _store_ids(context.tool_resources)
        if store_ids:
            await self._database.transaction(lambda c: _refuse_expired(c, store_ids))

    def annotator(self, context: ToolRunContext) -> FileCitationAnnotator | None:
        known = known_results(context.earlier_calls)
        return FileCitationAnnotator(known) if known else None

    async def _wait_for_thread_files(self, thread_id: str) -> None:
        """Up to the wait, until none of the thread's store files is in progress (CONTRACT.md
        §12: a run waits up to 60 s for the thread's files)."""
        deadline = time.monotonic() + self._wait_seconds
        while await self._database.transaction(lambda c: _thread_files_pending(c, thread_id)):
            if time.monotonic() >= deadline:
                return
            await self._sleep(self._poll_seconds)


def parse_queries(arguments: str) -> tuple[list[str], str | None]:
    """The queries of a call's arguments, or the problem to tell the model."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return [], "its arguments are not valid JSON."
    if not isinstance(value, dict):
        return [], "its arguments must be a JSON object."
    queries = value.get("queries")
    if isinstance(queries, str):
        queries = [queries]
    if not isinstance(queries, list) or not queries:
        return [], "`queries` must be a list of one to five strings."
    if not all(isinstance(q, str) for q in queries):
        return [], "every query must be a string."
    kept = [q.strip() for q in queries if q.strip()]
    if not kept:
        return [], "every query is empty."
    if len(kept) > MAX_QUERIES:
        return [], f"at most {MAX_QUERIES} queries are allowed, got {len(kept)}."
    return kept, None


def _store_ids(resources: Mapping[str, Any]) -> list[str]:
    search = resources.get("file_search") or {}
    return list(dict.fromkeys(search.get("vector_store_ids") or ()))


def _refuse_expired(connection: Connection, store_ids: Sequence[str]) -> None:
    expired = [row["id"] for row in vs.stores_by_id(connection, store_ids) if row["expired_at"]]
    if expired:
        raise ExpiredStoreError(
            f"Vector store {expired[0]} has expired, so file_search cannot search it. "
            "Create a new vector store with the same files and attach it instead."
        )


def _thread_files_pending(connection: Connection, thread_id: str) -> bool:
    row = repo.get_by_id(connection, repo.THREADS, thread_id)
    resources = (row["tool_resources"] if row is not None else None) or {}
    store_ids = _store_ids(resources)
    if not store_ids:
        return False
    columns = vs.VECTOR_STORE_FILES.c
    query = select(func.count()).where(
        columns.vector_store_id.in_(store_ids), columns.status == "in_progress"
    )
    return bool(connection.execute(query).scalar())


def _output(number: int, queries: Sequence[str], hits: Sequence[SearchHit]) -> str:
    if not hits:
        return "file_search found no passages for: " + "; ".join(queries)
    parts = ["file_search results. Cite a passage you use with its marker, exactly as written."]
    for i, hit in enumerate(hits):
        parts.append(f"{marker(number, i, hit.filename)}\n{hit.text}")
    return "\n\n".join(parts)


def _details(ranking: Mapping[str, Any], hits: Sequence[SearchHit]) -> JSON:
    return {
        "ranking_options": dict(ranking),
        "results": [
            {
                "file_id": hit.file_id,
                "file_name": hit.filename,
                "score": hit.score,
                "content": [{"type": "text", "text": hit.text}],
            }
            for hit in hits
        ],
    }


def _file_search_calls(earlier_calls: Sequence[JSON]) -> list[JSON]:
    """The bodies of the run's file_search calls, in order. An entry is a tool call
    (`{"id", "type": "file_search", "file_search": {...}}`) or the body itself."""
    bodies = []
    for entry in earlier_calls:
        if entry.get("type") == "file_search":
            bodies.append(entry.get("file_search") or {})
        elif "results" in entry and "ranking_options" in entry:
            bodies.append(entry)
    return bodies


def call_number(earlier_calls: Sequence[JSON], ordinal: int) -> int:
    """The marker number of a call: the file_search calls executed before its step, plus its
    place among the step's file_search calls (`ToolCallRequest.ordinal`, not its index in the
    step, which counts function calls too). Calls of one step are executed with the same
    earlier_calls, and are stored in that order: `known_results` numbers them the same way."""
    return len(_file_search_calls(earlier_calls)) + ordinal


def known_results(earlier_calls: Sequence[JSON]) -> dict[tuple[int, int], str]:
    """{(call number, result number): file id} of every marker the model may cite. Numbered
    as the calls were: position among the run's file_search calls (a step's calls in index
    order)."""
    known: dict[tuple[int, int], str] = {}
    for number, body in enumerate(_file_search_calls(earlier_calls)):
        for result, item in enumerate(body.get("results") or ()):
            file_id = item.get("file_id")
            if file_id:
                known[(number, result)] = file_id
    return known


_MARKER: Final = re.compile(r"【(\d{1,6}):(\d{1,6})†([^【】\n]{0,256})】")
# What may still become a marker: held back until it is known.
_PARTIAL: Final = re.compile(r"【(\d{0,6}(:(\d{0,6}(†[^【】\n]{0,256})?)?)?)?\Z")


class FileCitationAnnotator:
    """Turns the markers of known results into `file_citation` annotations as text streams."""

    def __init__(self, known: Mapping[tuple[int, int], str]) -> None:
        self._known = dict(known)
        self._held = ""
        self._sent = 0  # code points released so far: the offset of what comes next

    def feed(self, text: str) -> tuple[str, list[JSON]]:
        buffer = self._held + text
        self._held = ""
        out: list[str] = []
        annotations: list[JSON] = []
        at = 0
        while True:
            start = buffer.find("【", at)
            if start < 0:
                out.append(buffer[at:])
                break
            out.append(buffer[at:start])
            found = _MARKER.match(buffer, start)
            if found is not None:
                offset = self._sent + sum(len(p) for p in out)
                value = found.group(0)
                file_id = self._known.get((int(found.group(1)), int(found.group(2))))
                if file_id is not None:
                    annotations.append(
                        {
                            "type": "file_citation",
                            "text": value,
                            "start_index": offset,
                            "end_index": offset + len(value),
                            "file_citation": {"file_id": file_id},
                        }
                    )
                out.append(value)
                at = found.end()
                continue
            if _PARTIAL.match(buffer, start):
                self._held = buffer[start:]  # may still become a marker
                break
            out.append("【")  # not a marker: plain text
            at = start + 1
        released = "".join(out)
        self._sent += len(released)
        return released, annotations

    def finish(self) -> tuple[str, list[JSON]]:
        held, self._held = self._held, ""
        self._sent += len(held)
        return held, []
