"""The one search over vector stores, for the file_search tool and SearchVectorStore alike.

For every query and every store, up to two ranked lists of chunks:

- lexical, in the database: FTS5 bm25 on SQLite, tsvector `ts_rank` on PostgreSQL, the
  question always quoted into the query language (files/query.py);
- dense, when an embedding endpoint is configured and the store was built with its model: the
  cosine similarity of the query's embedding with every chunk's, an exact scan (numpy) of the
  store's cached vectors (files/embeddings.VectorCache).

The lists are fused by weighted reciprocal rank fusion, Σ w / (k + rank), and the sum is divided
by the most a chunk of that store could get (first in every list of its store), so the score is
in 0..1 and `score_threshold` means the same with one query or five, lexical or hybrid.
Attribute filters pick the files first (files/filters.py); only chunks of the files that pass,
and of completed files, are ranked. The best chunks are returned up to `max_results` and within
a token budget.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from sqlalchemy import Connection, RowMapping

from assistants_grpc.files import filters as attribute_filters
from assistants_grpc.files.embeddings import Embedder, StoreVectors, VectorCache
from assistants_grpc.files.query import (
    TSQUERY_POSTING_BUDGET,
    TSQUERY_RANKED_MAX,
    Pruned,
    fts5_query,
    posting_budget,
    prune_terms,
    query_terms,
    tsquery,
)
from assistants_grpc.store import vector_stores as vs
from assistants_grpc.store.database import Database

log = logging.getLogger(__name__)

__all__ = [
    "DENSE_WEIGHT",
    "LEXICAL_WEIGHT",
    "RRF_K",
    "Retriever",
    "SearchHit",
    "SearchQuery",
]

RRF_K: Final = 60
LEXICAL_WEIGHT: Final = 1.0
DENSE_WEIGHT: Final = 1.0
# Candidates each list contributes to the fusion.
MIN_CANDIDATES: Final = 50


@dataclass(frozen=True)
class SearchQuery:
    store_ids: Sequence[str]
    queries: Sequence[str]
    max_results: int
    score_threshold: float = 0.0
    token_budget: int | None = None
    filters: Mapping[str, Any] | None = None
    """A checked attribute filter (OpenAI JSON), or None."""
    check: Callable[[Connection], object] | None = None
    """Run first, in the search's own read transaction: the caller's precondition (a store
    in the caller's project, not expired), whose error ends the search."""


@dataclass(frozen=True)
class SearchHit:
    store_id: str
    file_id: str
    filename: str
    score: float
    text: str
    tokens: int
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class _Scope:
    """What one search may see, read in one transaction."""

    stores: dict[str, RowMapping]
    files: dict[tuple[str, str], RowMapping]
    allowed: dict[str, list[str] | None]
    """Per store: the file ids passing the filter, or None when there is no filter."""
    idle: list[str]
    """The live stores whose last_active_at is behind the search's second."""


class Retriever:
    def __init__(
        self,
        database: Database,
        now: Callable[[], int],
        *,
        embedder: Embedder | None = None,
        cache: VectorCache | None = None,
    ) -> None:
        self._database = database
        self._now = now
        self.embedder = embedder
        self._cache = cache or VectorCache()

    @property
    def embedding_model(self) -> str | None:
        """The model new stores are built with, or None (lexical only)."""
        return self.embedder.model if self.embedder is not None else None

    async def search(self, query: SearchQuery) -> list[SearchHit]:
        """Mostly one round trip to the database: one read runs the caller's check, reads the
        scope, ranks the lexical lists and fetches the texts of the candidates known by then,
        while the query embedding's HTTP call and the vector scan run beside it. A second
        transaction fetches the texts of best chunks that only a later list found, and moves
        last_active_at."""
        texts = [q for q in query.queries if q.strip()]
        if not texts or not query.store_ids:
            if query.check is not None:
                await self._database.read(query.check)
            return []
        depth = max(MIN_CANDIDATES, 3 * query.max_results)
        keep = max(query.max_results * 2, query.max_results + 10)
        now = self._now()
        loop = asyncio.get_running_loop()
        scoped: asyncio.Future[_Scope] = loop.create_future()
        dense_done: list[list[_Ranked]] = []
        """The dense lists once the loop has them: the read fetches their texts too if they
        are there when its lexical lists are (appended on the loop, read on the reader's
        thread; a list's append is atomic)."""

        def read(connection: Connection) -> tuple[_Scope, list[_Ranked], dict[int, RowMapping]]:
            if query.check is not None:
                query.check(connection)
            scope = self._scope(connection, query, now)
            # The vector scan needs the scope (versions, the filter's files), not the lexical
            # lists: it goes on while the full-text query runs here.
            loop.call_soon_threadsafe(_resolve, scoped, scope)
            lexical = self._lexical_lists(connection, scope, texts, depth)
            known = lexical + (dense_done[0] if dense_done else [])
            return scope, lexical, vs.chunks_by_pk(connection, _leaders(known, keep))

        dense_lists = asyncio.ensure_future(self._dense_lists(scoped, texts, depth))

        def keep_dense(done: asyncio.Future[list[_Ranked]]) -> None:
            if not done.cancelled() and done.exception() is None:
                dense_done.append(done.result())

        dense_lists.add_done_callback(keep_dense)
        try:
            scope, lexical, rows = await self._database.read(read)
            dense = await dense_lists
        finally:
            dense_lists.cancel()
        best = _fuse(lexical + dense)[:keep]
        missing = [pk for pk, _, _ in best if pk not in rows]
        if missing or scope.idle:

            def texts_and_touch(connection: Connection) -> dict[int, RowMapping]:
                vs.touch_stores(connection, scope.idle, now)
                return vs.chunks_by_pk(connection, missing)

            # last_active_at is in seconds: a store searched again within its second is not
            # written.
            finish = self._database.transaction if scope.idle else self._database.read
            rows |= await finish(texts_and_touch)
        hits: list[SearchHit] = []
        budget = query.token_budget
        used = 0
        for pk, store_id, score in best:
            row = rows.get(pk)
            if row is None or score < query.score_threshold:
                continue
            tokens = row["token_end"] - row["token_start"]
            if budget is not None and used + tokens > budget:
                break
            file_row = scope.files.get((store_id, row["file_id"]))
            if file_row is None:
                continue
            used += tokens
            hits.append(
                SearchHit(
                    store_id=store_id,
                    file_id=row["file_id"],
                    filename=file_row["filename"],
                    score=round(score, 6),
                    text=row["text"],
                    tokens=tokens,
                    attributes=file_row["attributes"] or {},
                )
            )
            if len(hits) >= query.max_results:
                break
        return hits

    def _scope(self, connection: Connection, query: SearchQuery, now: int) -> _Scope:
        stores = {
            row["id"]: row
            for row in vs.stores_by_id(connection, list(dict.fromkeys(query.store_ids)))
            if row["expired_at"] is None
        }
        idle = [sid for sid, row in stores.items() if row["last_active_at"] < now]
        files: dict[tuple[str, str], RowMapping] = {}
        allowed: dict[str, list[str] | None] = dict.fromkeys(stores)
        for row in vs.files_of_stores(connection, list(stores), status="completed"):
            key = (row["vector_store_id"], row["id"])
            files[key] = row
            if query.filters is not None:
                if attribute_filters.matches(query.filters, row["attributes"] or {}):
                    passing = allowed[key[0]]
                    if passing is None:
                        allowed[key[0]] = passing = []
                    passing.append(row["id"])
        if query.filters is not None:
            # A store none of whose files pass has nothing to rank.
            stores = {sid: row for sid, row in stores.items() if allowed[sid]}
        return _Scope(stores, files, allowed, idle)

    def _lexical_lists(
        self, connection: Connection, scope: _Scope, texts: Sequence[str], depth: int
    ) -> list[_Ranked]:
        lists: list[_Ranked] = []
        postgres = self._database.is_postgresql
        for text in texts:
            terms = query_terms(text)
            if not terms:
                continue
            for store_id in scope.stores:
                allowed = scope.allowed[store_id]
                version = scope.stores[store_id]["version"]
                search = _tsquery_search if postgres else _fts5_search
                found = search(connection, store_id, version, terms, depth, allowed)
                lists.append(_Ranked(store_id, LEXICAL_WEIGHT, [pk for pk, _ in found]))
        return lists

    async def _dense_lists(
        self,
        scoped: asyncio.Future[_Scope],
        texts: Sequence[str],
        depth: int,
    ) -> list[_Ranked]:
        """The dense lists, once the scope is read: the queries' embedding (an HTTP call) then
        the scan of each dense store's vectors, split over threads (StoreVectors.top_many)."""
        embedder = self.embedder
        if embedder is None:
            return []
        scope = await scoped
        dense_stores = [
            sid for sid, row in scope.stores.items() if row["embedding_model"] == embedder.model
        ]
        if not dense_stores:
            return []
        try:
            vectors = await embedder.embed(list(texts))
        except Exception as error:  # the lexical lists still answer
            log.warning("embedding the search queries failed; lexical only: %s", error)
            return []
        lists: list[_Ranked] = []
        for store_id in dense_stores:
            store = await self._vectors(store_id, scope.stores[store_id]["version"])
            allowed = scope.allowed[store_id]
            found = await store.top_many(
                vectors, depth, set(allowed) if allowed is not None else None
            )
            lists += [_Ranked(store_id, DENSE_WEIGHT, [pk for pk, _ in one]) for one in found]
        return lists

    async def _vectors(self, store_id: str, version: int) -> StoreVectors:
        cached = self._cache.get(store_id, version)
        if cached is not None:
            return cached
        async with self._cache.lock(store_id):
            cached = self._cache.get(store_id, version)
            if cached is not None:
                return cached

            def load(connection: Connection) -> StoreVectors:
                # Read the version with the rows: a change committed after this read bumps it
                # past what is cached, and the next search reloads.
                current = vs.versions(connection, [store_id]).get(store_id, version)
                return StoreVectors.build(current, vs.embeddings_of_store(connection, store_id))

            # A read of every vector of the store (100,000 rows: a few hundred ms): on a worker
            # thread, with a connection of its own, even on SQLite (WAL readers run beside the
            # writer), so the event loop goes on meanwhile.
            loaded = await asyncio.to_thread(self._database.transaction_sync, load)
            self._cache.put(store_id, loaded)
            return loaded


def _tsquery_search(
    connection: Connection,
    store_id: str,
    version: int,
    terms: list[str],
    depth: int,
    allowed: list[str] | None,
) -> list[tuple[int, str]]:
    """ts_rank over the terms a big index can rank quickly (files/query.prune_terms: ts_rank
    reads every matching chunk's tsvector), and over TSQUERY_RANKED_MAX matching chunks at
    most; every term, and every match, with a file filter."""
    if allowed is None:
        rows, counts = vs.document_counts(connection, terms)
        share = vs.store_span(connection, store_id, version).chunks / rows if rows else 1.0
        budget = posting_budget(share, TSQUERY_POSTING_BUDGET)
        pruned = prune_terms(terms, counts, rows, budget)
        if not pruned.terms:  # no chunk holds any of the words
            return []
    else:
        pruned = Pruned(terms, False, [])
    expression = tsquery(pruned.terms, conjunctive=pruned.conjunctive)
    assert expression is not None
    ranked = TSQUERY_RANKED_MAX
    found = vs.lexical_tsquery(connection, store_id, expression, depth, allowed, ranked=ranked)
    if len(found) < depth and pruned.fallback:
        fallback = tsquery(pruned.fallback)
        assert fallback is not None
        seen = {pk for pk, _ in found}
        more = vs.lexical_tsquery(connection, store_id, fallback, depth, ranked=ranked)
        found += [hit for hit in more if hit[0] not in seen][: depth - len(found)]
    return found


def _fts5_search(
    connection: Connection,
    store_id: str,
    version: int,
    terms: list[str],
    depth: int,
    allowed: list[str] | None,
) -> list[tuple[int, str]]:
    """bm25 over the terms a big index can rank quickly (files/query.prune_terms); with a file
    filter, every term (the filter bounds the chunks ranked)."""
    if allowed is not None:
        expression = fts5_query(terms)
        assert expression is not None
        return vs.lexical_fts5(connection, store_id, expression, depth, allowed)
    rows, counts = vs.document_counts(connection, terms)
    span = vs.store_span(connection, store_id, version)
    share = (span.high - span.low + 1) / rows if rows else 1.0
    pruned = prune_terms(terms, counts, rows, posting_budget(share))
    if not pruned.terms:  # no chunk holds any of the words
        return []
    expression = fts5_query(pruned.terms, conjunctive=pruned.conjunctive)
    assert expression is not None
    found = vs.lexical_fts5(connection, store_id, expression, depth, span=span)
    if len(found) < depth and pruned.fallback:
        fallback = fts5_query(pruned.fallback)
        assert fallback is not None
        seen = {pk for pk, _ in found}
        more = vs.lexical_fts5(connection, store_id, fallback, depth, span=span)
        found += [hit for hit in more if hit[0] not in seen][: depth - len(found)]
    return found


def _leaders(lists: Sequence[_Ranked], count: int) -> list[int]:
    """The first `count` chunks of each list: where the fusion's best `count` mostly come
    from (a chunk found by several lists below them can still pass them)."""
    return list(dict.fromkeys(pk for ranked in lists for pk in ranked.pks[:count]))


def _resolve(future: asyncio.Future[_Scope], scope: _Scope) -> None:
    if not future.done():  # the search may have ended (cancelled) meanwhile
        future.set_result(scope)


@dataclass(frozen=True)
class _Ranked:
    store_id: str
    weight: float
    pks: list[int]


def _fuse(lists: Sequence[_Ranked]) -> list[tuple[int, str, float]]:
    """(chunk pk, store id, score in 0..1), best first, by weighted reciprocal rank fusion."""
    totals: dict[int, float] = {}
    best_rank: dict[int, int] = {}
    store_of: dict[int, str] = {}
    ceiling: dict[str, float] = {}
    for ranked in lists:
        ceiling[ranked.store_id] = ceiling.get(ranked.store_id, 0.0) + ranked.weight / (RRF_K + 1)
        for rank, pk in enumerate(ranked.pks, start=1):
            totals[pk] = totals.get(pk, 0.0) + ranked.weight / (RRF_K + rank)
            best_rank[pk] = min(best_rank.get(pk, rank), rank)
            store_of[pk] = ranked.store_id
    scored = [
        (pk, store_of[pk], min(1.0, max(0.0, total / ceiling[store_of[pk]])))
        for pk, total in totals.items()
    ]
    scored.sort(key=lambda item: (-item[2], best_rank[item[0]], item[0]))
    return scored
