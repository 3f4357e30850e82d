"""How a big SQLite index is searched quickly: document counts of the query's words as FTS5
tokenizes them, the terms kept within the posting budget, and the store left out of the
expression when it is most of the index (with the exact search again when that finds too few).
"""

from __future__ import annotations

from pathlib import Path

from assistants_grpc.files.query import fts5_query, prune_terms, query_terms
from assistants_grpc.store import migrate
from assistants_grpc.store import repository as repo
from assistants_grpc.store import vector_stores as vs
from assistants_grpc.store.database import Database


def _store(database: Database, store_id: str, texts: list[str]) -> None:
    def work(connection):  # type: ignore[no-untyped-def]
        repo.insert_row(
            connection,
            vs.VECTOR_STORES,
            {"id": store_id, "project": "default", "created_at": 1, "name": "", "metadata": {},
             "last_active_at": 1, "version": 0},
        )  # fmt: skip
        repo.insert_row(
            connection,
            vs.VECTOR_STORE_FILES,
            {"id": f"file-{store_id}", "vector_store_id": store_id, "created_at": 1,
             "filename": "f.txt", "status": "completed", "usage_bytes": 0,
             "chunk_max_tokens": 800, "chunk_overlap_tokens": 400, "attributes": {},
             "attempts": 0},
        )  # fmt: skip
        repo.insert_rows(
            connection,
            vs.CHUNKS,
            [
                {"vector_store_id": store_id, "file_id": f"file-{store_id}", "seq": i,
                 "text": text, "char_start": 0, "char_end": len(text), "token_start": i,
                 "token_end": i + 1}
                for i, text in enumerate(texts)
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


def test_a_big_store_is_searched_without_its_term(tmp_path: Path) -> None:
    database = _database(tmp_path)
    try:
        # vs_big is most of the index, yet its one zebra chunk ranks below vs_other's.
        _store(database, "vs_big", [f"plain words number {i}" for i in range(60)] + ["a zebra"])
        # (each of a length of its own: no two scores tie, so the orders compare)
        _store(database, "vs_other", ["zebra zebra zebra" + " filler" * i for i in range(50)])
        expression = fts5_query(query_terms("zebra?"))
        assert expression is not None

        def search(store_id: str, limit: int, share: float | None) -> list[tuple[int, str]]:
            return database.transaction_sync(
                lambda c: vs.lexical_fts5(c, store_id, expression, limit, share=share)
            )

        rows, _ = database.transaction_sync(lambda c: vs.document_counts(c, ["zebra"]))
        share = database.transaction_sync(lambda c: vs.store_share(c, "vs_big", 0, rows))
        assert share >= 0.5
        # The wider list without the store's term holds only vs_other's chunks: the search is
        # done again with it, and finds vs_big's.
        assert search("vs_big", 1, share) == search("vs_big", 1, None)
        assert [file_id for _, file_id in search("vs_big", 1, share)] == ["file-vs_big"]
        # Without the store's term, the same list as with it when enough are found.
        assert search("vs_other", 20, 0.9) == search("vs_other", 20, None)
    finally:
        database.dispose()
