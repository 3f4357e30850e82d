"""Dense vectors: an OpenAI-compatible `/v1/embeddings` client, and each store's vectors cached
in memory for an exact scan.

Embeddings are asked for in batches through the `openai` package, which retries a 429/5xx with
backoff (`max_retries`, as for model calls). Vectors are normalised and kept as float32 with
their chunks, so a cosine similarity is one matrix-vector product.

A store's vectors are read from the database once and kept (`VectorCache`) with the store's
`version`; every change of a store's chunks bumps it (store/vector_stores.bump_version), on
whichever replica, and a search compares the cached version with the row's before using the
cache. 100,000 vectors of 256 floats scan in a few milliseconds with numpy: the matrix is kept
transposed (one row per dimension), so a scan is `query @ matrix` reading memory in order (2-3x
faster than `matrix @ query` here), and BLAS runs on one thread (files/__init__.py). A big
store's scan is split by columns into parts that run side by side on worker threads, one a core
(`StoreVectors.parts`, `scan`, `merge`): the product reads memory as fast as one core can, so
two cores read 100,000 x 256 floats in ~3 ms instead of ~5.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import openai

from assistants_grpc.engine.model_http import model_http_client

__all__ = ["Embedder", "StoreVectors", "VectorCache", "from_bytes", "normalise", "to_bytes"]

Matrix = npt.NDArray[np.float32]

# A scan's split over threads (StoreVectors.parts).
PART_COLUMNS = 25_000
MAX_PARTS = 4


def normalise(vectors: Matrix) -> Matrix:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    normalised: Matrix = (vectors / norms).astype(np.float32, copy=False)
    return normalised


def to_bytes(vector: Matrix) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(data: bytes) -> Matrix:
    return np.frombuffer(data, dtype="<f4")


class Embedder:
    """Embeds texts with one model of an OpenAI-compatible endpoint."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None,
        api_key: str,
        max_retries: int = 3,
        batch_size: int = 64,
        timeout: float = 60.0,
    ) -> None:
        self.model = model
        self._batch_size = batch_size
        # The model client's transport: an endpoint that leaves Nagle on would otherwise hold
        # each response's body ~40 ms behind its head on a reused connection (engine/model_http).
        self._client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key,
            max_retries=max_retries,
            timeout=timeout,
            http_client=model_http_client(),
        )

    async def embed(self, texts: Sequence[str]) -> Matrix:
        """One normalised row per text, in order."""
        rows: list[Matrix] = []
        for start in range(0, len(texts), self._batch_size):
            batch = [text or " " for text in texts[start : start + self._batch_size]]
            # base64, as the official SDK asks by default: the vector's float32 bytes, which
            # decode in one call, instead of JSON numbers parsed one by one (~0.5 ms a query
            # vector of 256 floats, on the event loop). A server that ignores the format and
            # sends numbers is read as such.
            response = await self._client.embeddings.create(
                model=self.model, input=batch, encoding_format="base64"
            )
            ordered = sorted(response.data, key=lambda item: item.index)
            rows.append(np.stack([_vector(item.embedding) for item in ordered]))
        if not rows:
            return np.zeros((0, 0), dtype=np.float32)
        return normalise(np.concatenate(rows))

    async def aclose(self) -> None:
        await self._client.close()


def _vector(embedding: object) -> Matrix:
    """One embedding of a response: base64 of little-endian float32s, or a list of numbers."""
    if isinstance(embedding, str):
        return from_bytes(base64.b64decode(embedding, validate=True)).astype(np.float32)
    return np.asarray(embedding, dtype=np.float32)


@dataclass(frozen=True)
class StoreVectors:
    """One store's vectors: column i of `columns` is chunk `pks[i]` of file
    `file_ids[files[i]]`."""

    version: int
    pks: npt.NDArray[np.int64]
    files: npt.NDArray[np.int32]
    file_ids: tuple[str, ...]
    columns: Matrix
    """dimensions x chunks, C-contiguous."""

    @classmethod
    def build(cls, version: int, rows: Sequence[tuple[int, str, bytes]]) -> StoreVectors:
        file_index: dict[str, int] = {}
        pks = np.fromiter((row[0] for row in rows), dtype=np.int64, count=len(rows))
        files = np.fromiter(
            (file_index.setdefault(row[1], len(file_index)) for row in rows),
            dtype=np.int32,
            count=len(rows),
        )
        if rows:
            matrix = np.frombuffer(b"".join(row[2] for row in rows), dtype="<f4")
            columns = np.ascontiguousarray(matrix.reshape(len(rows), -1).T, dtype=np.float32)
        else:
            columns = np.zeros((0, 0), dtype=np.float32)
        return cls(version, pks, files, tuple(file_index), columns)

    async def top_many(
        self, queries: Matrix, limit: int, allowed: set[str] | None
    ) -> list[list[tuple[int, str]]]:
        """For each row of `queries` (normalised), the `limit` chunks most similar to it, best
        first, among the files in `allowed` (None: every file): one scan of the matrix for
        all the rows, its parts side by side on worker threads."""
        mask = self.mask(allowed)
        scanned = await asyncio.gather(
            *(asyncio.to_thread(self.scan, queries, limit, mask, part) for part in self.parts())
        )
        return self.merge(scanned, len(queries), limit)

    def parts(self, cores: int | None = None) -> list[slice]:
        """The column ranges a scan is split into, to run side by side on threads: one per
        core, of PART_COLUMNS columns at least (a thread's hand-off costs more than a smaller
        part's scan)."""
        count = len(self.pks)
        parts = max(1, min(cores or os.cpu_count() or 1, MAX_PARTS, count // PART_COLUMNS))
        bounds = [count * i // parts for i in range(parts + 1)]
        return [slice(low, high) for low, high in itertools.pairwise(bounds)]

    def mask(self, allowed: set[str] | None) -> npt.NDArray[np.bool_] | None:
        """Which columns are chunks of the `allowed` files (None: every column)."""
        if allowed is None:
            return None
        wanted = [i for i, file_id in enumerate(self.file_ids) if file_id in allowed]
        return np.isin(self.files, np.asarray(wanted, dtype=np.int32))

    def scan(
        self, queries: Matrix, limit: int, mask: npt.NDArray[np.bool_] | None, part: slice
    ) -> list[tuple[npt.NDArray[np.intp], Matrix]]:
        """Per query, the columns of `part` (indices into the whole) most similar to it, up to
        `limit`, unordered, with their scores; none the mask leaves out. numpy lets go of the
        GIL in the product: parts on threads run at once."""
        if not len(self.pks) or queries.shape[-1] != self.columns.shape[0]:
            return [(np.zeros(0, np.intp), np.zeros(0, np.float32)) for _ in range(len(queries))]
        # A column slice is a strided view that BLAS reads in place (no copy).
        scores = np.asarray(queries, dtype=np.float32) @ self.columns[:, part]
        if mask is not None:
            scores = np.where(mask[part], scores, np.float32(-np.inf))
        count = scores.shape[1]
        keep = min(limit, count)
        start = part.start or 0
        out = []
        for row in scores:
            best = np.argpartition(row, count - keep)[count - keep :]
            best = best[np.isfinite(row[best])]
            out.append((best + start, row[best]))
        return out

    def merge(
        self,
        scanned: Sequence[list[tuple[npt.NDArray[np.intp], Matrix]]],
        queries: int,
        limit: int,
    ) -> list[list[tuple[int, str]]]:
        """The parts' `scan`s of each query joined: its `limit` best, best first (equal
        scores by column), as (chunk pk, file id)."""
        out: list[list[tuple[int, str]]] = []
        for q in range(queries):
            columns = np.concatenate([part[q][0] for part in scanned])
            scores = np.concatenate([part[q][1] for part in scanned])
            order = np.lexsort((columns, -scores))[:limit]
            out.append(
                [(int(self.pks[i]), self.file_ids[int(self.files[i])]) for i in columns[order]]
            )
        return out


class VectorCache:
    """Each store's vectors, as of a version; reloads a store whose version moved."""

    def __init__(self, max_stores: int = 64) -> None:
        self._stores: dict[str, StoreVectors] = {}
        self._max_stores = max_stores
        self._locks: dict[str, asyncio.Lock] = {}

    def get(self, store_id: str, version: int) -> StoreVectors | None:
        cached = self._stores.get(store_id)
        return cached if cached is not None and cached.version == version else None

    def lock(self, store_id: str) -> asyncio.Lock:
        """One loader per store at a time: concurrent searches of a changed store wait for
        the one reload instead of each reading 100,000 vectors."""
        return self._locks.setdefault(store_id, asyncio.Lock())

    def put(self, store_id: str, vectors: StoreVectors) -> None:
        self._stores.pop(store_id, None)
        while len(self._stores) >= self._max_stores:
            self._stores.pop(next(iter(self._stores)))
        self._stores[store_id] = vectors

    def forget(self, store_id: str) -> None:
        self._stores.pop(store_id, None)
