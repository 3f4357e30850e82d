"""Queries of vector stores, their files, batches and chunks (prebuilt Core statements).

A store's status and file counts, and a batch's, are counted from the file rows whenever they are
read (`file_counts`), never kept as counters: every way a file changes (ingested, failed,
cancelled, removed, its File deleted) is then reflected without a second write to forget.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    RowMapping,
    Table,
    and_,
    bindparam,
    delete,
    func,
    select,
    text,
    update,
)

from assistants_grpc.store.tables import (
    LEXICAL_INDEX,
    VectorStoreChunkRow,
    VectorStoreFileBatchRow,
    VectorStoreFileRow,
    VectorStoreRow,
)

VECTOR_STORES: Table = VectorStoreRow.__table__  # type: ignore[attr-defined]
VECTOR_STORE_FILES: Table = VectorStoreFileRow.__table__  # type: ignore[attr-defined]
FILE_BATCHES: Table = VectorStoreFileBatchRow.__table__  # type: ignore[attr-defined]
CHUNKS: Table = VectorStoreChunkRow.__table__  # type: ignore[attr-defined]

FILE_STATUSES = ("in_progress", "completed", "failed", "cancelled")

_S = VECTOR_STORES.c
_F = VECTOR_STORE_FILES.c
_C = CHUNKS.c

# --- stores ---------------------------------------------------------------------------------

_STORE_IN_PROJECT = select(VECTOR_STORES).where(
    _S.id == bindparam("store_id"), _S.project == bindparam("project")
)


def get_store(connection: Connection, project: str, store_id: str) -> RowMapping | None:
    parameters = {"store_id": store_id, "project": project}
    return connection.execute(_STORE_IN_PROJECT, parameters).mappings().first()


_STORES_BY_ID = select(VECTOR_STORES).where(_S.id.in_(bindparam("ids", expanding=True)))


def stores_by_id(connection: Connection, ids: Sequence[str]) -> list[RowMapping]:
    if not ids:
        return []
    return list(connection.execute(_STORES_BY_ID, {"ids": list(ids)}).mappings())


def file_counts(
    connection: Connection, column: str, owner_ids: Sequence[str]
) -> dict[str, dict[str, int]]:
    """{store or batch id: {status: count, ..., "total": n}} for `column` "vector_store_id" or
    "batch_id"; every id present, every status key present. The usage bytes of each owner
    come with it, under "usage_bytes"."""
    out = {owner: dict.fromkeys((*FILE_STATUSES, "total", "usage_bytes"), 0) for owner in owner_ids}
    if not owner_ids:
        return out
    owner = _F[column]
    query = (
        select(owner, _F.status, func.count(), func.coalesce(func.sum(_F.usage_bytes), 0))
        .where(owner.in_(list(owner_ids)))
        .group_by(owner, _F.status)
    )
    for owner_id, status, count, usage in connection.execute(query):
        counts = out[owner_id]
        if status in counts:
            counts[status] += count
        counts["total"] += count
        counts["usage_bytes"] += int(usage)
    return out


def touch_stores(connection: Connection, ids: Sequence[str], now: int) -> None:
    """The stores were used (searched, given files): last_active_at moves, and with it the
    expiry of a store that has a policy. At most one write a second per store."""
    if not ids:
        return
    connection.execute(
        update(VECTOR_STORES)
        .where(_S.id.in_(list(ids)), _S.expired_at.is_(None), _S.last_active_at < now)
        .values(
            last_active_at=now,
            expires_at=_S.expires_after_days * 86400 + now,
        )
    )


def bump_version(connection: Connection, store_id: str) -> None:
    """The store's chunks changed: every replica's cached vectors of it are stale now."""
    connection.execute(
        update(VECTOR_STORES).where(_S.id == store_id).values(version=_S.version + 1)
    )


_VERSIONS = select(_S.id, _S.version).where(_S.id.in_(bindparam("ids", expanding=True)))


def versions(connection: Connection, ids: Sequence[str]) -> dict[str, int]:
    return {row[0]: row[1] for row in connection.execute(_VERSIONS, {"ids": list(ids)})}


def expired_store_ids(connection: Connection, now: int) -> list[str]:
    query = select(_S.id).where(_S.expires_at <= now, _S.expired_at.is_(None))
    return list(connection.execute(query).scalars())


# --- files ----------------------------------------------------------------------------------

_FILE = select(VECTOR_STORE_FILES).where(
    _F.vector_store_id == bindparam("store_id"), _F.id == bindparam("file_id")
)


def get_file(connection: Connection, store_id: str, file_id: str) -> RowMapping | None:
    parameters = {"store_id": store_id, "file_id": file_id}
    return connection.execute(_FILE, parameters).mappings().first()


def files_of_stores(
    connection: Connection, store_ids: Sequence[str], *, status: str | None = None
) -> list[RowMapping]:
    conditions: list[ColumnElement[bool]] = [_F.vector_store_id.in_(list(store_ids))]
    if status is not None:
        conditions.append(_F.status == status)
    query = select(_F.vector_store_id, _F.id, _F.filename, _F.attributes, _F.status).where(
        *conditions
    )
    return list(connection.execute(query).mappings())


def stores_of_file(connection: Connection, file_id: str) -> list[str]:
    query = select(_F.vector_store_id).where(_F.id == file_id)
    return list(connection.execute(query).scalars())


def delete_chunks(connection: Connection, store_id: str, file_id: str | None = None) -> int:
    condition = _C.vector_store_id == store_id
    if file_id is not None:
        condition = and_(condition, _C.file_id == file_id)
    return connection.execute(delete(CHUNKS).where(condition)).rowcount


def delete_file_row(connection: Connection, store_id: str, file_id: str) -> bool:
    query = delete(VECTOR_STORE_FILES).where(_F.vector_store_id == store_id, _F.id == file_id)
    return connection.execute(query).rowcount > 0


def delete_store_cascade(connection: Connection, store_id: str) -> None:
    connection.execute(delete(CHUNKS).where(_C.vector_store_id == store_id))
    connection.execute(delete(VECTOR_STORE_FILES).where(_F.vector_store_id == store_id))
    connection.execute(delete(FILE_BATCHES).where(FILE_BATCHES.c.vector_store_id == store_id))
    connection.execute(delete(VECTOR_STORES).where(_S.id == store_id))


def remove_file(connection: Connection, store_id: str, file_id: str) -> None:
    """Take a file out of a store: its row and its chunks (an ingestion in progress learns it
    at its next write and stops)."""
    delete_file_row(connection, store_id, file_id)
    if delete_chunks(connection, store_id, file_id):
        bump_version(connection, store_id)


def remove_file_everywhere(connection: Connection, file_id: str) -> None:
    """A File was deleted: it leaves every vector store (CONTRACT.md §12)."""
    for store_id in stores_of_file(connection, file_id):
        remove_file(connection, store_id, file_id)


# --- chunks ---------------------------------------------------------------------------------

_CHUNK_SPANS = (
    select(_C.char_start, _C.char_end, _C.text)
    .where(_C.vector_store_id == bindparam("store_id"), _C.file_id == bindparam("file_id"))
    .order_by(_C.seq)
)


def chunk_spans(connection: Connection, store_id: str, file_id: str) -> list[tuple[int, int, str]]:
    parameters = {"store_id": store_id, "file_id": file_id}
    return [(row[0], row[1], row[2]) for row in connection.execute(_CHUNK_SPANS, parameters)]


_CHUNKS_BY_PK = select(
    _C.pk, _C.vector_store_id, _C.file_id, _C.text, _C.token_start, _C.token_end
).where(_C.pk.in_(bindparam("pks", expanding=True)))


def chunks_by_pk(connection: Connection, pks: Iterable[int]) -> dict[int, RowMapping]:
    wanted = list(pks)
    if not wanted:
        return {}
    rows = connection.execute(_CHUNKS_BY_PK, {"pks": wanted}).mappings()
    return {row["pk"]: row for row in rows}


_EMBEDDINGS = select(_C.pk, _C.file_id, _C.embedding).where(
    _C.vector_store_id == bindparam("store_id"), _C.embedding.is_not(None)
)


def embeddings_of_store(connection: Connection, store_id: str) -> list[tuple[int, str, bytes]]:
    rows = connection.execute(_EMBEDDINGS, {"store_id": store_id})
    return [(row[0], row[1], row[2]) for row in rows]


# --- the lexical index, per dialect ---------------------------------------------------------
# Only chunks of completed files count: a file being ingested has some chunks already.


def _lexical(sql: str, *, filtered: bool) -> Any:
    if not filtered:
        return text(sql.replace("{files}", ""))
    statement = text(sql.replace("{files}", " AND c.file_id IN :file_ids"))
    return statement.bindparams(bindparam("file_ids", expanding=True))


# Ranked inside FTS5 first (`ORDER BY rank` with a LIMIT is FTS5's fast path; rank is bm25
# with the store column weighted 0), joined to the chunk and file rows only for those: a join
# per match before the sort cost 5-10x on 100,000 chunks of common words. Chunks of files not
# completed are dropped after the limit, so the inner limit is wider than asked. With a file
# filter the join comes first: a selective filter must not starve the list.
_FTS5_SQL = (
    "SELECT c.pk, c.file_id FROM ("
    f" SELECT rowid, rank FROM {LEXICAL_INDEX} WHERE {LEXICAL_INDEX} MATCH :match"
    " AND rank MATCH 'bm25(0.0, 1.0)' ORDER BY rank LIMIT :inner) AS hits"
    " JOIN vector_store_chunks AS c ON c.pk = hits.rowid"
    " JOIN vector_store_files AS f ON f.vector_store_id = c.vector_store_id AND f.id = c.file_id"
    " WHERE c.vector_store_id = :store_id AND f.status = 'completed'"
    " ORDER BY hits.rank LIMIT :limit"
)
_FTS5_FILTERED_SQL = (
    f"SELECT c.pk, c.file_id FROM {LEXICAL_INDEX} AS fts"
    " JOIN vector_store_chunks AS c ON c.pk = fts.rowid"
    " JOIN vector_store_files AS f ON f.vector_store_id = c.vector_store_id AND f.id = c.file_id"
    f" WHERE {LEXICAL_INDEX} MATCH :match AND c.vector_store_id = :store_id"
    " AND f.status = 'completed'{files}"
    f" ORDER BY bm25({LEXICAL_INDEX}, 0.0, 1.0) LIMIT :limit"
)
# PostgreSQL's ranks know no inverse document frequency, so chunks that match every term come
# first (`qa`, the terms AND-ed), then by ts_rank among equals. A search costs ~2-3 µs a
# matching chunk (its heap row is read, then ranked), and a question of common words can match
# half a store whatever terms are kept (files/query.prune_terms), so at most `:ranked` of them
# are ranked: the first the index yields, in the table's order. Unless that cap binds, the
# result is the same as ranking every match. The tsquery of the scan is a subquery: its value
# hidden, the planner keeps to the (store, tsv) GIN index; knowing that a word is in half the
# rows, it would read the table in order until `:ranked` rows match, as if every store's
# chunks were spread evenly through it (they lie together: 100,000 of another store first).
# With a file filter, every match is ranked (the filter bounds them, as on SQLite).
_TSQUERY_SQL = (
    "SELECT c.pk, c.file_id FROM ("
    " SELECT pk, vector_store_id, file_id, tsv FROM vector_store_chunks"
    " WHERE vector_store_id = :store_id AND tsv @@ (SELECT to_tsquery('english', :query))"
    " LIMIT :ranked) AS c"
    " JOIN vector_store_files AS f ON f.vector_store_id = c.vector_store_id AND f.id = c.file_id,"
    " to_tsquery('english', :query) AS q, to_tsquery('english', :all_terms) AS qa"
    " WHERE f.status = 'completed'"
    " ORDER BY (c.tsv @@ qa) DESC, ts_rank(c.tsv, q, 1) DESC, c.pk LIMIT :limit"
)
_TSQUERY_FILTERED_SQL = (
    "SELECT c.pk, c.file_id FROM vector_store_chunks AS c"
    " JOIN vector_store_files AS f ON f.vector_store_id = c.vector_store_id AND f.id = c.file_id,"
    " to_tsquery('english', :query) AS q, to_tsquery('english', :all_terms) AS qa"
    " WHERE c.vector_store_id = :store_id AND c.tsv @@ q AND f.status = 'completed'{files}"
    " ORDER BY (c.tsv @@ qa) DESC, ts_rank(c.tsv, q, 1) DESC, c.pk LIMIT :limit"
)
# Indexed by "filtered by file ids".
_FTS5_SEARCH = (text(_FTS5_SQL), _lexical(_FTS5_FILTERED_SQL, filtered=True))
_TSQUERY_SEARCH = (text(_TSQUERY_SQL), _lexical(_TSQUERY_FILTERED_SQL, filtered=True))


def _parameters(
    values: dict[str, Any], file_ids: Sequence[str] | None
) -> tuple[int, dict[str, Any]]:
    if file_ids is None:
        return 0, values
    return 1, values | {"file_ids": list(file_ids)}


_ID_TOKEN = re.compile(r"[^\W_]+")


def _store_term(store_id: str) -> str:
    """The store in an FTS5 expression: the last token of its id (the random part; `vs_…`
    tokenizes into `vs` and it). One term, not the phrase `"vs …"`: bm25 computes every phrase's
    document frequency by reading its whole posting list, positions and all for a phrase, which
    cost ~25 ms a query on a 100,000-chunk store. Ids differing in case only, or in their
    prefix only, share a term; the join on the exact id keeps their chunks apart."""
    tokens = _ID_TOKEN.findall(store_id)
    return f'vector_store_id : "{tokens[-1]}"' if tokens else f'vector_store_id : "{store_id}"'


DENSE_SPAN = 0.8
"""A store whose chunks are this much, or more, of the pk range they span is searched by that
range alone, without its term."""


@dataclass(frozen=True)
class StoreSpan:
    """The pk range a store's chunks lie in, and how many they are."""

    low: int
    high: int
    chunks: int

    @property
    def density(self) -> float:
        return self.chunks / (self.high - self.low + 1) if self.high >= self.low else 0.0


def lexical_fts5(
    connection: Connection,
    store_id: str,
    match: str,
    limit: int,
    file_ids: Sequence[str] | None = None,
    *,
    span: StoreSpan | None = None,
) -> list[tuple[int, str]]:
    """Chunk (pk, file id) pairs of the store's completed files (only `file_ids`, if given),
    best bm25 first. The store is in the MATCH expression too, so FTS5 intersects its posting
    list with the terms'; the join on the exact id stays the rule.

    `span`: where the store's chunks lie, if known. FTS5 keeps to a rowid range for free, and
    ranks only the matches in it. When the store's chunks are most of their range (a store
    filled by one file after another), the range alone stands for the store: its term's posting
    list is its every chunk, read whole for bm25 (~4 ms at 100,000 chunks). FTS5's list is made
    wider by the density, and if the join then leaves too few, the search is done again with
    the store's term."""
    if file_ids is None and span is not None:
        if span.chunks == 0:
            return []
        bounds = {"low": span.low, "high": span.high}
        if span.density >= DENSE_SPAN:
            inner = math.ceil(2 * limit / span.density)
            parameters = {"match": match, "store_id": store_id, "limit": limit, "inner": inner}
            rows = connection.execute(_FTS5_RANGE_SEARCH, parameters | bounds)
            found = [(pk, file_id) for pk, file_id in rows]
            if len(found) >= limit or not _more_than(connection, match, inner, bounds):
                return found
        parameters = {
            "match": f"{_store_term(store_id)} AND {match}",
            "store_id": store_id,
            "limit": limit,
            "inner": 2 * limit,
        }
        rows = connection.execute(_FTS5_RANGE_SEARCH, parameters | bounds)
        return [(pk, file_id) for pk, file_id in rows]
    store_phrase = _store_term(store_id)
    which, parameters = _parameters(
        {
            "match": f"{store_phrase} AND {match}",
            "store_id": store_id,
            "limit": limit,
            "inner": 2 * limit,
        },
        file_ids,
    )
    if which:
        del parameters["inner"]
    rows = connection.execute(_FTS5_SEARCH[which], parameters)
    return [(pk, file_id) for pk, file_id in rows]


_FTS5_RANGE_SEARCH = text(
    _FTS5_SQL.replace(
        "AND rank MATCH 'bm25(0.0, 1.0)'",
        "AND rank MATCH 'bm25(0.0, 1.0)' AND rowid BETWEEN :low AND :high",
    )
)
_MATCHES_PAST = text(
    f"SELECT count(*) FROM (SELECT rowid FROM {LEXICAL_INDEX}"
    f" WHERE {LEXICAL_INDEX} MATCH :match AND rowid BETWEEN :low AND :high LIMIT :past)"
)


def _more_than(connection: Connection, match: str, count: int, bounds: dict[str, int]) -> bool:
    """Whether more than `count` chunks in the range match (so the list cut at `count` may
    have left some of the store's out)."""
    parameters = {"match": match, "past": count + 1} | bounds
    return int(connection.execute(_MATCHES_PAST, parameters).scalar() or 0) > count


_STORE_SPAN = text(
    "SELECT min(pk), max(pk), count(*) FROM vector_store_chunks WHERE vector_store_id = :store_id"
)
_STORE_SPANS: dict[tuple[str, str, int], StoreSpan] = {}


def store_span(connection: Connection, store_id: str, version: int) -> StoreSpan:
    """Where the store's chunks lie, as of `version` (cached: a read of every chunk's index
    entry, ~20 ms at 100,000). Chunks of a file still in progress, written since, lie past
    `high` and are not searched anyway."""
    key = (str(connection.engine.url), store_id, version)
    span = _STORE_SPANS.get(key)
    if span is None:
        low, high, count = connection.execute(_STORE_SPAN, {"store_id": store_id}).one()
        span = StoreSpan(int(low or 0), int(high or -1), int(count or 0))
        if len(_STORE_SPANS) > 1024:
            _STORE_SPANS.clear()
        _STORE_SPANS[key] = span
    return span


# --- document frequencies of query terms (SQLite) -------------------------------------------
# FTS5 keeps no document frequencies: fts5vocab counts a term's documents by reading its posting
# list (~100 ns a posting: 10 ms for a word in 100,000 chunks). They only guide which terms a
# search keeps (files/query.prune_terms), so they are cached per process, by the word as the
# user wrote it, and read again once the index has grown or shrunk by a tenth. The word is
# tokenized by FTS5 itself (porter, diacritics), in a temporary FTS5 table of the connection's
# own temp schema: no write to the database, no lock.

_FTS5_TOKENIZER = "porter unicode61 remove_diacritics 2"
_TEMP_TABLES = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.vsq_words"
    f" USING fts5(word, tokenize='{_FTS5_TOKENIZER}')",
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.vsq_word_tokens"
    " USING fts5vocab(temp, vsq_words, 'instance')",
    "CREATE VIRTUAL TABLE IF NOT EXISTS temp.vsq_index_terms"
    f" USING fts5vocab(main, {LEXICAL_INDEX}, 'row')",
)
_WORD_COUNTS = text(
    "SELECT w.doc, (SELECT r.doc FROM temp.vsq_index_terms AS r WHERE r.term = w.term)"
    " FROM temp.vsq_word_tokens AS w"
)
_INDEXED_ROWS = text("SELECT coalesce(max(pk), 0) FROM vector_store_chunks")


class _DocumentCounts:
    """One database's (by URL) cached counts, and on PostgreSQL its parsed lexeme statistics.

    pg_stats' row is an array of thousands of lexemes (~3 ms to read and parse), and the
    questions of a busy store keep bringing words not yet counted: it is kept STATS_SECONDS.
    ANALYZE (autovacuum's, after many changes) updates it rarely; a minute late only changes
    which terms are kept."""

    STATS_SECONDS = 60.0

    def __init__(self, max_words: int = 50_000) -> None:
        self._counts: dict[str, int] = {}
        self._rows = -1
        self._max_words = max_words
        self._stats: tuple[float, dict[str, float], float] | None = None
        self._lock = threading.Lock()

    def get(self, connection: Connection, words: Sequence[str]) -> tuple[int, dict[str, int]]:
        rows = int(connection.execute(_INDEXED_ROWS).scalar() or 0)
        with self._lock:
            stale = abs(rows - self._rows) > self._rows // 10
            if stale or len(self._counts) > self._max_words:
                self._counts.clear()
                self._rows = rows
            known = {word: self._counts[word] for word in words if word in self._counts}
        missing = [word for word in dict.fromkeys(words) if word not in known]
        if missing:
            if connection.dialect.name == "postgresql":
                stats = self._lexeme_stats(connection)
                found = _read_counts_postgres(connection, missing, rows, stats)
            else:
                found = _read_counts(connection, missing)
            known |= found
            with self._lock:
                self._counts.update(found)
        return rows, known

    def _lexeme_stats(self, connection: Connection) -> tuple[dict[str, float], float] | None:
        """({lexeme: share of the rows holding it}, the share of any lexeme not listed), or
        None before the column's first ANALYZE."""
        now = time.monotonic()
        with self._lock:
            known = self._stats
        if known is not None and now - known[0] < self.STATS_SECONDS:
            return known[1], known[2]
        stats = connection.execute(_LEXEME_STATS).first()
        if stats is None or not stats[0] or not stats[1]:
            return None
        elements, frequencies = list(stats[0]), list(stats[1])
        # The frequencies: one per element, then the least and the greatest, then of empty
        # rows.
        frequency = dict(zip(elements, frequencies[: len(elements)], strict=False))
        rarest = frequencies[len(elements)] if len(frequencies) > len(elements) else 0.0
        with self._lock:
            self._stats = (now, frequency, rarest)
        return frequency, rarest


def _read_counts(connection: Connection, words: Sequence[str]) -> dict[str, int]:
    for statement in _TEMP_TABLES:
        connection.exec_driver_sql(statement)
    connection.exec_driver_sql("DELETE FROM temp.vsq_words")
    connection.execute(
        text("INSERT INTO temp.vsq_words (rowid, word) VALUES (:i, :word)"),
        [{"i": i, "word": word} for i, word in enumerate(words)],
    )
    counts = dict.fromkeys(words, 0)
    for i, count in connection.execute(_WORD_COUNTS):
        # A word of several tokens (none, from query_terms) counts as its commonest.
        counts[words[i]] = max(counts[words[i]], int(count or 0))
    connection.exec_driver_sql("DELETE FROM temp.vsq_words")
    return counts


# PostgreSQL: ANALYZE keeps the commonest lexemes of the tsvector column and their frequencies
# (pg_stats.most_common_elems): a word's lexemes are looked up there, and a lexeme not listed
# is rarer than the rarest listed. Before any ANALYZE, the GIN index counts the word's chunks
# (a bitmap scan: 10-100 ms for a common word, once, then cached like SQLite's). A word
# to_tsvector drops (an English stop word) counts 0.
_LEXEME_STATS = text(
    "SELECT most_common_elems::text::text[], most_common_elem_freqs FROM pg_stats"
    " WHERE tablename = 'vector_store_chunks' AND attname = 'tsv'"
    " AND schemaname = current_schema()"
)
_LEXEMES = text(
    "SELECT u.word, tsvector_to_array(to_tsvector('english', u.word))"
    " FROM unnest(CAST(:words AS text[])) AS u(word)"
)
_WORD_COUNT_POSTGRES = text(
    "SELECT count(*) FROM vector_store_chunks WHERE tsv @@ to_tsquery('english', :word)"
)


def _read_counts_postgres(
    connection: Connection,
    words: Sequence[str],
    rows: int,
    stats: tuple[dict[str, float], float] | None,
) -> dict[str, int]:
    """The words' counts from the lexeme statistics, or, before any ANALYZE, from the index."""
    if stats is None:
        # Letters and digits only (files/query.query_terms), quoted: never an operator.
        return {
            word: int(connection.execute(_WORD_COUNT_POSTGRES, {"word": f"'{word}'"}).scalar() or 0)
            for word in words
        }
    frequency, rarest = stats
    counts: dict[str, int] = {}
    for word, lexemes in connection.execute(_LEXEMES, {"words": list(words)}):
        known = [frequency.get(lexeme, rarest) for lexeme in lexemes or []]
        counts[word] = math.ceil(max(known) * rows) if known else 0
    return counts


_DOCUMENT_COUNTS: dict[str, _DocumentCounts] = {}


def document_counts(connection: Connection, words: Sequence[str]) -> tuple[int, dict[str, int]]:
    """(an upper bound of the chunks indexed, {word: chunks containing it, in every store});
    approximate (cached), for choosing terms, never for scoring."""
    url = str(connection.engine.url)
    counts = _DOCUMENT_COUNTS.get(url)
    if counts is None:
        counts = _DOCUMENT_COUNTS.setdefault(url, _DocumentCounts())
    return counts.get(connection, words)


def lexical_tsquery(
    connection: Connection,
    store_id: str,
    query: str,
    limit: int,
    file_ids: Sequence[str] | None = None,
    *,
    ranked: int | None = None,
) -> list[tuple[int, str]]:
    """The store's chunks matching `query` (a to_tsquery text), best first. `ranked`: at most
    that many matching chunks are ranked (None: all); ignored with `file_ids`."""
    all_terms = query.replace(" | ", " & ")
    values: dict[str, Any] = {"query": query, "all_terms": all_terms}
    values |= {"store_id": store_id, "limit": limit}
    if file_ids is None:
        values["ranked"] = ranked  # LIMIT NULL is no limit
    which, parameters = _parameters(values, file_ids)
    rows = connection.execute(_TSQUERY_SEARCH[which], parameters)
    return [(pk, file_id) for pk, file_id in rows]


__all__ = [
    "CHUNKS",
    "FILE_BATCHES",
    "FILE_STATUSES",
    "VECTOR_STORES",
    "VECTOR_STORE_FILES",
    "StoreSpan",
    "bump_version",
    "chunk_spans",
    "chunks_by_pk",
    "delete_chunks",
    "delete_file_row",
    "delete_store_cascade",
    "document_counts",
    "embeddings_of_store",
    "expired_store_ids",
    "file_counts",
    "files_of_stores",
    "get_file",
    "get_store",
    "lexical_fts5",
    "lexical_tsquery",
    "remove_file",
    "remove_file_everywhere",
    "store_span",
    "stores_by_id",
    "stores_of_file",
    "touch_stores",
    "versions",
]
