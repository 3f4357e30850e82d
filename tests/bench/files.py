"""The "files" section: SearchVectorStore over one big store (p50/p99, lexical and hybrid), and
ingestion of plain text (chunks/s) on SQLite.

Services of its own on one SQLite file: one without an embedding model for ingestion (lexical
indexing), then one with `--embedding-model fake-embedding` (the fake model's
`/v1/embeddings`) for search. Ingestion: Files of plain text are made in the service's database (its
storage, from this process; SQLite's WAL lets both write), added to a store through the API,
and timed from CreateVectorStore to `completed`; then again with as many other files while one
caller streams runs back to back on the same service (the fast model), and that caller's time
to the first message delta is compared with its figure alone (measured just before and just
after, so a drift of the machine's load falls on both sides). Search: two stores of
`search_chunks` chunks each are written straight into the database (texts drawn from the words
of CPython's pydoc topics, vectors random and normalised: a scan costs the same whatever the
numbers), one lexical only, one with vectors; then one caller searches each, one query at a
time.

A run with one file_search round (on the ingestion's store): the model (`bench-file-search`)
calls `file_search`, the service executes it and asks the model again, which answers with a
citation. The service's added time is the run's end-to-end time minus the model server's own
time for the same two turns made directly with the `openai` client (as the tools section
measures a function round); it includes the search.
"""

from __future__ import annotations

import asyncio
import pydoc_data.topics
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import openai
from assistants_grpc_client.v1 import common_pb2, vector_store_pb2_grpc
from assistants_grpc_client.v1 import vector_store_pb2 as V

from tests.bench import runs
from tests.bench.common import (
    CALL_TIMEOUT,
    BenchError,
    Plan,
    R,
    Stubs,
    create_assistant,
    create_thread,
    ms,
    percentile,
    summary_ms,
)
from tests.bench.model_server import (
    FILE_SEARCH_ANSWER,
    FILE_SEARCH_QUESTION,
    MODEL_FAST,
    MODEL_FILE_SEARCH,
    file_search_round,
)
from tests.bench.processes import HOST, Children

EMBEDDING_MODEL = "fake-embedding"
DIMENSIONS = 256
WORDS_PER_CHUNK = 70


def _vocabulary() -> list[str]:
    words = " ".join(pydoc_data.topics.topics.values()).split()
    return [w for w in words if w.isalpha() and len(w) > 2]


def _seed_store(database_url: str, store_id: str, chunks: int, *, dense: bool) -> None:
    from assistants_grpc.store import repository as repo
    from assistants_grpc.store import vector_stores as vs
    from assistants_grpc.store.database import Database

    rng = random.Random(store_id)
    vocabulary = _vocabulary()
    database = Database(database_url)
    try:

        def store(connection: Any) -> None:
            repo.insert_row(
                connection,
                vs.VECTOR_STORES,
                {"id": store_id, "project": "default", "created_at": 1, "name": store_id,
                 "metadata": {}, "last_active_at": 1, "version": 0,
                 "embedding_model": EMBEDDING_MODEL if dense else None},
            )  # fmt: skip
            repo.insert_row(
                connection,
                vs.VECTOR_STORE_FILES,
                {"id": f"file-{store_id}", "vector_store_id": store_id, "created_at": 1,
                 "filename": "bench.txt", "status": "completed", "usage_bytes": 0,
                 "chunk_max_tokens": 100, "chunk_overlap_tokens": 0, "attributes": {},
                 "attempts": 0},
            )  # fmt: skip

        database.transaction_sync(store)
        batch = 5000
        for start in range(0, chunks, batch):
            count = min(batch, chunks - start)
            vectors = (
                np.random.default_rng(start).standard_normal((count, DIMENSIONS)).astype("<f4")
                if dense
                else None
            )
            if vectors is not None:
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            rows = [
                {
                    "vector_store_id": store_id,
                    "file_id": f"file-{store_id}",
                    "seq": start + i,
                    "text": " ".join(rng.choices(vocabulary, k=WORDS_PER_CHUNK)),
                    "char_start": 0,
                    "char_end": 0,
                    "token_start": 100 * (start + i),
                    "token_end": 100 * (start + i + 1),
                    "embedding": vectors[i].tobytes() if vectors is not None else None,
                }
                for i in range(count)
            ]
            database.transaction_sync(lambda c, rows=rows: repo.insert_rows(c, vs.CHUNKS, rows))
    finally:
        database.dispose()


async def _ingest(stub: Any, url: str, file_ids: list[str]) -> dict[str, Any]:
    """Add the files to a new store; time until none is in progress."""
    began = time.perf_counter()
    store = await stub.CreateVectorStore(
        V.CreateVectorStoreRequest(file_ids=file_ids), timeout=CALL_TIMEOUT
    )
    while True:
        store = await stub.GetVectorStore(
            V.GetVectorStoreRequest(vector_store_id=store.id), timeout=CALL_TIMEOUT
        )
        if store.file_counts.in_progress == 0:
            break
        if time.perf_counter() - began > 600:
            raise BenchError("ingestion did not finish in 600 s")
        await asyncio.sleep(0.05)
    seconds = time.perf_counter() - began
    if store.file_counts.completed != len(file_ids):
        raise BenchError(f"ingestion failed: {store.file_counts}")
    chunks = await asyncio.to_thread(_count_chunks, url, store.id)
    return {
        "store_id": store.id,
        "files": len(file_ids),
        "chunks": chunks,
        "seconds": round(seconds, 2),
        "chunks_per_s": round(chunks / seconds, 1),
    }


async def _first_deltas(stubs: Stubs, assistant_id: str, count: int) -> list[float]:
    return [
        (await runs._service_first_delta(stubs, assistant_id)).first_delta or 0.0
        for _ in range(count)
    ]


async def _ingest_beside_runs(
    stubs: Stubs, stub: Any, url: str, file_ids: list[str], plan: Plan
) -> dict[str, Any]:
    """Ingestion while one caller streams runs back to back, and that caller's time to the
    first delta then, against its time alone (half the samples before, half after)."""
    assistant = await create_assistant(stubs, MODEL_FAST)
    await _first_deltas(stubs, assistant.id, 5)  # warm up: connections, caches
    alone = await _first_deltas(stubs, assistant.id, plan.ingest_run_samples // 2)
    beside: list[float] = []
    ingesting = asyncio.create_task(_ingest(stub, url, file_ids))
    while not ingesting.done():
        stats = await runs._service_first_delta(stubs, assistant.id)
        if not ingesting.done():  # a run that ended after the ingestion is not "beside" it
            beside.append(stats.first_delta or 0.0)
    ingest = await ingesting
    alone += await _first_deltas(stubs, assistant.id, plan.ingest_run_samples // 2)
    if len(beside) < 5:
        raise BenchError(f"only {len(beside)} runs finished during the ingestion")
    alone_ms, beside_ms = summary_ms(alone), summary_ms(beside)
    return {
        **ingest,
        "first_delta_alone": alone_ms,
        "first_delta_beside": beside_ms,
        "first_delta_p50_added_ms": round(beside_ms["p50_ms"] - alone_ms["p50_ms"], 3),
    }


async def _make_text_files(database_url: str, count: int, *, first: int = 0) -> list[str]:
    from assistants_grpc.clock import SystemClock
    from assistants_grpc.files.storage import FileStorage
    from assistants_grpc.ids import random_id
    from assistants_grpc.store.database import Database

    text = "\n\n".join(pydoc_data.topics.topics.values())
    database = Database(database_url)
    storage = FileStorage.for_database(database, SystemClock(), random_id)
    await storage.start()
    try:
        ids = []
        for i in range(first, first + count):
            made = await storage.create_from_bytes(
                "default", f"topics-{i}.txt", f"{i}\n{text}".encode(), "assistants"
            )
            ids.append(made.id)
        return ids
    finally:
        storage.close()
        database.dispose()


async def _search_latency(stub: Any, store_id: str, queries: list[str]) -> dict[str, float]:
    durations = []
    empty = 0
    for query in queries:
        began = time.perf_counter()
        found = await stub.SearchVectorStore(
            V.SearchVectorStoreRequest(vector_store_id=store_id, query=[query]),
            timeout=CALL_TIMEOUT,
        )
        durations.append(time.perf_counter() - began)
        empty += not found.data
    # PostgreSQL drops English stop words that SQLite keeps: a question of those alone finds
    # nothing there. More than that is a broken search.
    if empty > len(queries) // 20:
        raise BenchError(f"{empty} of {len(queries)} searches of {store_id} found nothing")
    return summary_ms(durations) | {"empty": empty}


async def measure(children: Children, model_port: int, tmp: Path, plan: Plan) -> dict[str, Any]:
    url = f"sqlite:///{tmp / 'files.db'}"
    out: dict[str, Any] = {"chunks": plan.search_chunks}
    # Ingestion with lexical indexing only: a service without an embedding model.
    service = children.start_service("service-files-lexical", url, model_port)
    stubs = Stubs.connect(service.port)
    stub = vector_store_pb2_grpc.VectorStoreServiceStub(stubs.channel)
    try:
        # Ingestion of plain text (auto chunking, 800/400), lexical store.
        file_ids = await _make_text_files(url, plan.ingest_files)
        ingest = await _ingest(stub, url, file_ids)
        store_id = ingest.pop("store_id")
        out["ingest"] = ingest
        out["file_search_run"] = await _file_search_runs(stubs, model_port, store_id, plan)
        # The same beside a caller streaming runs, against its figure alone.
        out["ingest_beside_runs"] = await _ingest_beside_runs(
            stubs, stub, url, await _make_text_files(url, plan.ingest_files, first=10_000), plan
        )
    finally:
        await stubs.channel.close()
        children.stop(service)
    out |= await measure_search(children, model_port, url, plan, "service-files")
    return out


async def measure_search(
    children: Children, model_port: int, url: str, plan: Plan, name: str
) -> dict[str, Any]:
    """SearchVectorStore over two stores written straight into the database at `url` (SQLite,
    or a PostgreSQL database with the schema), lexical and hybrid, one query at a time. On
    PostgreSQL the tables are ANALYZEd first, as autovacuum would after such a load."""
    out: dict[str, Any] = {}
    service = children.start_service(
        name, url, model_port, extra=["--embedding-model", EMBEDDING_MODEL]
    )
    stubs = Stubs.connect(service.port)
    stub = vector_store_pb2_grpc.VectorStoreServiceStub(stubs.channel)
    try:
        # Search over one big store, lexical and hybrid.
        await asyncio.to_thread(
            _seed_store, url, "vs_benchlexical", plan.search_chunks, dense=False
        )
        await asyncio.to_thread(_seed_store, url, "vs_benchhybrid", plan.search_chunks, dense=True)
        if url.startswith("postgresql"):
            await asyncio.to_thread(_analyze, url)
        rng = random.Random(7)
        vocabulary = _vocabulary()
        queries = [
            " ".join(rng.choices(vocabulary, k=rng.randint(3, 9))) + "?"
            for _ in range(plan.search_queries)
        ]
        for store_id in ("vs_benchlexical", "vs_benchhybrid"):  # warm up: caches, vectors
            await _search_latency(stub, store_id, queries[:3])
        out["search_lexical"] = await _search_latency(stub, "vs_benchlexical", queries)
        out["search_hybrid"] = await _search_latency(stub, "vs_benchhybrid", queries)
    finally:
        await stubs.channel.close()
        children.stop(service)
    return out


# What the service sends the model back after a search, about: up to 20 passages of up to 800
# tokens. The direct turns send as much, so the model server parses the same amount.
_TOOL_OUTPUT_CHARS = 60_000


async def _file_search_run(stubs: Stubs, thread_id: str, assistant_id: str) -> tuple[float, int]:
    """One run through CreateRunStream to its end: seconds, and the search's result count."""
    began = time.perf_counter()
    request = R.CreateRunRequest(thread_id=thread_id, assistant_id=assistant_id)
    events = [e async for e in stubs.runs.CreateRunStream(request, timeout=CALL_TIMEOUT)]
    seconds = time.perf_counter() - began
    if len(events) < 2 or events[-2].event != "thread.run.completed":
        raise BenchError(f"file_search run ended with {[e.event for e in events[-6:]]}")
    message = next(e.message for e in events if e.event == "thread.message.completed")
    text = message.content[0].text
    if text.value != FILE_SEARCH_ANSWER or len(text.annotations) != 1:
        raise BenchError(f"file_search run answered {text}")
    step = next(
        e.run_step
        for e in events
        if e.event == "thread.run.step.completed" and e.run_step.type == R.RUN_STEP_TYPE_TOOL_CALLS
    )
    (call,) = step.step_details.tool_calls.tool_calls
    return seconds, len(call.file_search.results)


async def _direct_turns(model: openai.AsyncOpenAI) -> float:
    """The model server's own time for the run's two turns, back to back."""
    first_request: dict[str, Any] = {
        "messages": [{"role": "user", "content": FILE_SEARCH_QUESTION}]
    }
    call = file_search_round(first_request)
    arguments = call.calls[0][1]  # type: ignore[union-attr]
    tools: list[Any] = [{"type": "function", "function": {"name": "file_search", "parameters": {}}}]
    messages: list[Any] = [
        {"role": "user", "content": FILE_SEARCH_QUESTION},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "file_search", "arguments": arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "x" * _TOOL_OUTPUT_CHARS},
    ]
    total = 0.0
    for turn in (messages[:1], messages):
        began = time.perf_counter()
        stream = await model.chat.completions.create(
            model=MODEL_FILE_SEARCH,
            messages=turn,
            tools=tools,
            stream=True,
            stream_options={"include_usage": True},
        )
        async with stream:
            async for _chunk in stream:
                pass
        total += time.perf_counter() - began
    return total


async def _file_search_runs(
    stubs: Stubs, model_port: int, store_id: str, plan: Plan
) -> dict[str, Any]:
    model = openai.AsyncOpenAI(
        base_url=f"http://{HOST}:{model_port}/v1",
        api_key="x",
        max_retries=0,
        timeout=CALL_TIMEOUT,
    )
    try:
        assistant = await create_assistant(
            stubs,
            MODEL_FILE_SEARCH,
            tools=[common_pb2.Tool(file_search=common_pb2.FileSearchSettings())],
            tool_resources=common_pb2.ToolResources(
                file_search=common_pb2.FileSearchResources(vector_store_ids=[store_id])
            ),
        )

        async def run() -> tuple[float, int]:
            thread = await create_thread(stubs, FILE_SEARCH_QUESTION)
            return await _file_search_run(stubs, thread.id, assistant.id)

        for _ in range(2):  # warm-up
            await run()
            await _direct_turns(model)
        runs: list[tuple[float, int]] = []
        direct: list[float] = []
        for i in range(plan.tool_samples):
            # Alternate, so both see the same machine.
            if i % 2:
                runs.append(await run())
                direct.append(await _direct_turns(model))
            else:
                direct.append(await _direct_turns(model))
                runs.append(await run())
        model_p50 = percentile(direct, 50)
        service = [seconds - model_p50 for seconds, _ in runs]
        return {
            "model_turns": 2,
            "results": max(count for _, count in runs),
            "end_to_end": summary_ms([seconds for seconds, _ in runs]),
            "model_server": summary_ms(direct),
            "service_p50_ms": ms(percentile(service, 50)),
            "service_p99_ms": ms(percentile(service, 99)),
            "n": len(runs),
        }
    finally:
        await model.close()


def _analyze(url: str) -> None:
    from assistants_grpc.store.database import Database

    database = Database(url)
    try:
        database.transaction_sync(lambda c: c.exec_driver_sql("ANALYZE"))
    finally:
        database.dispose()


def _count_chunks(url: str, store_id: str) -> int:
    from sqlalchemy import func, select

    from assistants_grpc.store import vector_stores as vs
    from assistants_grpc.store.database import Database

    database = Database(url)
    try:
        query = select(func.count()).where(vs.CHUNKS.c.vector_store_id == store_id)
        return int(database.transaction_sync(lambda c: c.execute(query).scalar()) or 0)
    finally:
        database.dispose()
