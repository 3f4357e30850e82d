"""How a big SQLite index is searched quickly: document counts of the query's words as FTS5
tokenizes them, the terms kept within the posting budget, and the store left out of the
expression when it is most of the index (with the exact search again when that finds too few).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import event, select

from assistants_grpc.files.query import (
    INDEX_POSTING_BUDGET,
    POSTING_BUDGET,
    TSQUERY_POSTING_BUDGET,
    fts5_query,
    posting_budget,
    prune_terms,
    query_terms,
)
from assistants_grpc.store import migrate
from assistants_grpc.store import repository as repo
from assistants_grpc.store import vector_stores as vs
from assistants_grpc.store.database import Database
from tests.integration.vector_helpers import insert_store_of_one_file


def _store(database: Database, store_id: str, texts: list[str], *, first: int = 0) -> None:
    """Chunks `first`… of the store's one file (the store and file made with chunk 0)."""

    def work(connection):  # type: ignore[no-untyped-def]
        if not first:
            insert_store_of_one_file(connection, store_id, f"file-{store_id}", "f.txt")
        repo.insert_rows(
            connection,
            vs.CHUNKS,
            [
                {"vector_store_id": store_id, "file_id": f"file-{store_id}", "seq": i,
                 "text": text, "char_start": 0, "char_end": len(text), "token_start": i,
                 "token_end": i + 1}
                for i, text in enumerate(texts, start=first)
            ],
        )  # fmt: skip

    database.transaction_sync(work)


def _database(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'index.db'}")
    migrate.upgrade(database)
    return database


def test_document_counts_are_fts5_tokens(tmp_path: Path) -> None:
    database = _database(tmp_path)
    try:
        _store(database, "vs_counts", ["searching the café", "searched", "a zebra"])
        words = ["search", "searches", "Cafe", "zebra", "nowhere"]
        rows, counts = database.transaction_sync(lambda c: vs.document_counts(c, words))
        assert rows >= 3
        # porter: every form of "search" is one term; diacritics and case fold away.
        assert counts == {"search": 2, "searches": 2, "Cafe": 1, "zebra": 1, "nowhere": 0}
    finally:
        database.dispose()


def test_prune_terms() -> None:
    counts = {"rare": 10, "mid": 400, "common": 5000, "commoner": 8000, "none": 0}
    # Within the budget: every term, as asked.
    small = prune_terms(["common", "rare", "none"], counts, 20_000, budget=6000)
    assert (small.terms, small.conjunctive) == (["common", "rare", "none"], False)
    # Past it: the rarest that fit, in the question's order; a word no chunk holds goes.
    kept = prune_terms(["common", "mid", "none", "rare", "commoner"], counts, 20_000, budget=600)
    assert (kept.terms, kept.conjunctive) == (["mid", "rare"], False)
    # Even the rarest too common: the rarest few together, and the rarest alone to fall back on.
    together = prune_terms(["commoner", "common"], counts, 20_000, budget=1000)
    assert (together.terms, together.conjunctive, together.fallback) == (
        ["common", "commoner"],
        True,
        ["common"],
    )
    assert fts5_query(together.terms, conjunctive=True) == 'text : ("common" AND "commoner")'
    # One word only, too common: itself.
    alone = prune_terms(["commoner"], counts, 20_000, budget=1000)
    assert (alone.terms, alone.conjunctive) == (["commoner"], False)


def test_a_dense_store_is_searched_by_its_range(tmp_path: Path) -> None:
    database = _database(tmp_path)
    try:
        # vs_big's chunks are most of the pks they span, but vs_other's lie among them, and
        # vs_big's one zebra chunk ranks below theirs.
        _store(database, "vs_big", [f"plain words number {i}" for i in range(300)])
        # (each of a length of its own: no two scores tie, so the orders compare)
        _store(database, "vs_other", ["zebra zebra zebra" + " filler" * i for i in range(50)])
        _store(database, "vs_big", ["a zebra"], first=300)
        expression = fts5_query(query_terms("zebra?"))
        assert expression is not None

        def search(store_id: str, limit: int, spanned: bool) -> list[tuple[int, str]]:
            def work(connection):  # type: ignore[no-untyped-def]
                span = vs.store_span(connection, store_id, 0) if spanned else None
                return vs.lexical_fts5(connection, store_id, expression, limit, span=span)

            return database.transaction_sync(work)

        span = database.transaction_sync(lambda c: vs.store_span(c, "vs_big", 0))
        assert (span.low, span.high, span.chunks) == (1, 351, 301)
        assert span.density >= vs.DENSE_SPAN
        # The list of the range holds only vs_other's chunks: the search is done again with
        # the store's term, and finds vs_big's.
        assert search("vs_big", 1, True) == search("vs_big", 1, False)
        assert [file_id for _, file_id in search("vs_big", 1, True)] == ["file-vs_big"]
        # vs_other's range is its own: the same list as with its term.
        assert search("vs_other", 20, True) == search("vs_other", 20, False)
        assert len(search("vs_other", 20, True)) == 20
        # A store with no chunks finds nothing.
        _store(database, "vs_empty", [])
        assert search("vs_empty", 5, True) == []
    finally:
        database.dispose()


def test_posting_budget_follows_the_store_share() -> None:
    assert posting_budget(1.0) == POSTING_BUDGET
    assert posting_budget(0.5) == 2 * POSTING_BUDGET
    assert posting_budget(0.0) == min(INDEX_POSTING_BUDGET, 20 * POSTING_BUDGET)
    assert posting_budget(0.5, TSQUERY_POSTING_BUDGET) == 2 * TSQUERY_POSTING_BUDGET


def test_postgresql_ranks_at_most_the_cap(database_url: str) -> None:
    """Past `ranked` matching chunks none is ranked: the best of the first ones the index
    yields (the table's order) come back, of the store's chunks only. Below the cap, the
    result is the full ranking's."""
    if not database_url.startswith("postgresql"):
        pytest.skip("ranked= is PostgreSQL's")
    database = Database(database_url)
    try:
        migrate.upgrade(database)
        _store(database, "vs_other", ["zebra zebra zebra"] * 5)
        # The first chunks hold one zebra among many words: a full ranking puts the others
        # first.
        texts = ["zebra" + " x" * 20] * 4 + ["zebra zebra zebra"] * 8
        _store(database, "vs_cap", texts)
        pks = database.transaction_sync(
            lambda c: sorted(c.execute(select(vs.CHUNKS.c.pk).where(
                vs.CHUNKS.c.vector_store_id == "vs_cap")).scalars())
        )  # fmt: skip

        def search(ranked: int | None) -> list[int]:
            found = database.transaction_sync(
                lambda c: vs.lexical_tsquery(c, "vs_cap", "'zebra'", 5, ranked=ranked)
            )
            return [pk for pk, _ in found]

        every = search(None)
        assert len(every) == 5 and not set(every) & set(pks[:4])
        assert search(len(pks)) == every
        assert set(search(4)) == set(pks[:4])
    finally:
        database.dispose()


def test_postgresql_counts_come_from_the_statistics_read_once(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After ANALYZE, a word's count is its lexeme's share of the rows in pg_stats (a word not
    listed there counts as the rarest listed; a stop word 0), and pg_stats is read once for
    words asked later, until what was read is STATS_SECONDS old."""
    if not database_url.startswith("postgresql"):
        pytest.skip("pg_stats is PostgreSQL's")
    database = Database(database_url)
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args):  # type: ignore[no-untyped-def]
        statements.append(statement)

    def stats_reads() -> int:
        return sum("pg_stats" in statement for statement in statements)

    try:
        migrate.upgrade(database)
        texts = [f"common word{i % 50} " + ("often " if i % 4 == 0 else "") for i in range(400)]
        _store(database, "vs_stats", texts)
        database.transaction_sync(lambda c: c.exec_driver_sql("ANALYZE vector_store_chunks"))
        monkeypatch.setattr(vs, "_DOCUMENT_COUNTS", {})
        event.listen(database.engine, "before_cursor_execute", seen)
        rows, counts = database.transaction_sync(
            lambda c: vs.document_counts(c, ["common", "often", "the"])
        )
        assert rows >= 400 and stats_reads() == 1
        assert counts["common"] == pytest.approx(rows, rel=0.1)
        assert counts["often"] == pytest.approx(rows / 4, rel=0.3)
        assert counts["the"] == 0  # an English stop word: to_tsvector drops it
        # New words asked later: counted from what was read, pg_stats not read again.
        _, later = database.transaction_sync(lambda c: vs.document_counts(c, ["word7"]))
        assert 0 < later["word7"] <= rows / 10
        assert stats_reads() == 1
        # Once what was read is old, read again.
        monkeypatch.setattr(vs._DocumentCounts, "STATS_SECONDS", 0.0)
        database.transaction_sync(lambda c: vs.document_counts(c, ["word8"]))
        assert stats_reads() == 2
    finally:
        if event.contains(database.engine, "before_cursor_execute", seen):
            event.remove(database.engine, "before_cursor_execute", seen)
        database.dispose()
