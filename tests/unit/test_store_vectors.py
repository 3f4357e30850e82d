"""The dense scan (files/embeddings.StoreVectors): split into column parts that run on threads,
then merged, it finds what scoring every column at once finds; and the embedding client reads
base64 vectors, and numbers from a server that ignores the format."""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from assistants_grpc.fake_model import FakeModelServer
from assistants_grpc.fake_model._embeddings import embed
from assistants_grpc.files import embeddings
from assistants_grpc.files.embeddings import Embedder, StoreVectors, normalise, to_bytes


def _store(vectors: np.ndarray, files: int) -> StoreVectors:
    rows = [(10 * i + 7, f"file-{i % files}", to_bytes(v)) for i, v in enumerate(vectors)]
    return StoreVectors.build(3, rows)


def _check(
    store: StoreVectors,
    vectors: np.ndarray,
    queries: np.ndarray,
    limit: int,
    allowed: set[str] | None,
    got: list[list[tuple[int, str]]],
) -> None:
    """`got` is, per query, the `limit` best of the allowed chunks, best first: scored against
    every column at once. Scores equal to float32 rounding (a BLAS kernel rounds a column by
    where it falls in its block) may come in either order."""
    assert len(got) == len(queries)
    column_of = {10 * i + 7: i for i in range(len(vectors))}
    for query, found in zip(queries, got, strict=True):
        scores = vectors @ query
        columns = [
            i
            for i in range(len(vectors))
            if allowed is None or store.file_ids[int(store.files[i])] in allowed
        ]
        best = sorted((float(scores[i]) for i in columns), reverse=True)[:limit]
        assert len(found) == len(best)
        assert len({pk for pk, _ in found}) == len(found)
        found_scores = [float(scores[column_of[pk]]) for pk, _ in found]
        assert np.allclose(found_scores, best, atol=1e-5)
        for pk, file_id in found:
            assert file_id == store.file_ids[int(store.files[column_of[pk]])]
            assert allowed is None or file_id in allowed


@settings(max_examples=60, deadline=None)
@given(
    chunks=st.integers(0, 300),
    dimensions=st.integers(1, 12),
    queries=st.integers(1, 4),
    limit=st.integers(1, 80),
    part_columns=st.integers(1, 120),
    files=st.integers(1, 5),
    filtered=st.booleans(),
    duplicates=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_parts_merged_equal_one_sorted_pass(
    chunks: int,
    dimensions: int,
    queries: int,
    limit: int,
    part_columns: int,
    files: int,
    filtered: bool,
    duplicates: bool,
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    vectors = normalise(rng.standard_normal((chunks, dimensions)).astype(np.float32))
    if duplicates and chunks > 1:  # equal scores
        vectors[1::2] = vectors[0]
    store = _store(vectors, files)
    asked = normalise(rng.standard_normal((queries, dimensions)).astype(np.float32))
    allowed = {"file-0", "file-2"} if filtered else None
    original = embeddings.PART_COLUMNS
    embeddings.PART_COLUMNS = part_columns
    try:
        parts = store.parts(cores=4)
    finally:
        embeddings.PART_COLUMNS = original
    # The parts cover every column once, in order.
    covered = [i for part in parts for i in range(chunks)[part]]
    assert covered == list(range(chunks))
    assert len(parts) <= embeddings.MAX_PARTS
    mask = store.mask(allowed)
    scanned = [store.scan(asked, limit, mask, part) for part in parts]
    got = store.merge(scanned, queries, limit)
    _check(store, vectors, asked, limit, allowed, got)
    _check(
        store, vectors, asked, limit, allowed, asyncio.run(store.top_many(asked, limit, allowed))
    )


def test_parts_follow_cores_and_size() -> None:
    vectors = np.zeros((100_000, 1), dtype=np.float32)
    store = StoreVectors(1, np.arange(100_000), np.zeros(100_000, np.int32), ("f",), vectors.T)
    assert len(store.parts(cores=1)) == 1
    assert len(store.parts(cores=2)) == 2
    assert len(store.parts(cores=64)) == embeddings.MAX_PARTS
    small = StoreVectors(1, np.arange(10), np.zeros(10, np.int32), ("f",), vectors[:10].T)
    assert small.parts(cores=8) == [slice(0, 10)]  # a thread hand-off costs more than its scan


async def test_a_store_of_other_dimensions_or_none_finds_nothing() -> None:
    empty = StoreVectors.build(1, [])
    assert await empty.top_many(np.ones((2, 4), np.float32), 5, None) == [[], []]
    store = _store(normalise(np.ones((3, 4), np.float32)), 1)
    assert await store.top_many(np.ones((1, 5), np.float32), 5, None) == [[]]
    assert await store.top_many(normalise(np.ones((1, 4), np.float32)), 5, {"elsewhere"}) == [[]]


async def test_parts_scan_side_by_side_on_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the retriever does: each part on a worker thread at once, then merged."""
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    rng = np.random.default_rng(5)
    vectors = normalise(rng.standard_normal((60_000, 16)).astype(np.float32))
    store = _store(vectors, 3)
    asked = normalise(rng.standard_normal((2, 16)).astype(np.float32))
    assert len(store.parts()) == 2
    _check(store, vectors, asked, 50, None, await store.top_many(asked, 50, None))


# --- the embedding client ---------------------------------------------------------------------


async def test_embedder_reads_base64_vectors() -> None:
    texts = ["how is tea brewed?", "kiwi fruit", ""]
    async with FakeModelServer() as server:
        embedder = Embedder("fake-embedding", base_url=server.base_url, api_key="k")
        try:
            got = await embedder.embed(texts)
        finally:
            await embedder.aclose()
    expected = normalise(np.asarray([embed(t or " ") for t in texts], dtype=np.float32))
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert np.allclose(got, expected, atol=1e-6)


class _NumbersOnly(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that ignores `encoding_format` and sends numbers; it
    records what it was asked."""

    asked: ClassVar[list[dict[str, object]]] = []
    reply: ClassVar[object] = None

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).asked.append(body)
        inputs = body["input"]
        data = (
            self.reply
            if self.reply is not None
            else [
                {"object": "embedding", "index": i, "embedding": [float(len(t)), 1.0, 0.0]}
                for i, t in reversed(list(enumerate(inputs)))  # out of order, as allowed
            ]
        )
        payload = json.dumps({"object": "list", "data": data, "model": "m", "usage": {}})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def numbers_only() -> Iterator[str]:
    _NumbersOnly.asked = []
    _NumbersOnly.reply = None
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NumbersOnly)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


async def test_embedder_reads_numbers_from_a_server_ignoring_the_format(numbers_only: str) -> None:
    embedder = Embedder("m", base_url=numbers_only, api_key="k", max_retries=0)
    try:
        got = await embedder.embed(["ab", "abcd"])
    finally:
        await embedder.aclose()
    assert _NumbersOnly.asked[0]["encoding_format"] == "base64"
    assert np.allclose(got, normalise(np.asarray([[2, 1, 0], [4, 1, 0]], dtype=np.float32)))


async def test_embedder_refuses_a_vector_that_is_not_base64(numbers_only: str) -> None:
    _NumbersOnly.reply = [{"object": "embedding", "index": 0, "embedding": "not base64!"}]
    embedder = Embedder("m", base_url=numbers_only, api_key="k", max_retries=0)
    try:
        with pytest.raises(ValueError):  # binascii.Error is one: the search goes lexical
            await embedder.embed(["x"])
    finally:
        await embedder.aclose()
