"""No question text breaks the lexical query, on either backend: whatever the text (quotes,
operators, NEAR, OR, `*`, `-`, `:`, parentheses, NUL, any script), the query builder quotes
it, and the database runs it without a syntax error."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistants_grpc.files.query import fts5_query, query_terms, tsquery
from assistants_grpc.store import migrate
from assistants_grpc.store import repository as repo
from assistants_grpc.store import vector_stores as vs
from assistants_grpc.store.database import Database
from tests.integration.vector_helpers import insert_store_of_one_file

SYNTAX = st.sampled_from(
    ['"', "'", "-", "*", "?", ":", "(", ")", "^", "NEAR", "OR", "AND", "NOT", "&", "|", "!",
     "<->", "\\", "NEAR/2", "{", "}", "+", "\x00", "vector_store_id", "text", "é", "漢字"]
)  # fmt: skip
QUESTIONS = st.lists(st.one_of(SYNTAX, st.text(max_size=12)), max_size=12).map(" ".join)


def _seed(database: Database) -> None:
    def work(connection):  # type: ignore[no-untyped-def]
        insert_store_of_one_file(connection, "vs_q", "file-q", "q.md")
        repo.insert_row(
            connection,
            vs.CHUNKS,
            {"vector_store_id": "vs_q", "file_id": "file-q", "seq": 0,
             "text": "NEAR the OR-gate: what's this? \"quoted\" text* (parens) 漢字 café",
             "char_start": 0, "char_end": 10, "token_start": 0, "token_end": 10},
        )  # fmt: skip

    database.transaction_sync(work)


def test_no_question_is_a_syntax_error(database_url: str) -> None:
    database = Database(database_url)
    try:
        migrate.upgrade(database)
        _seed(database)

        @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
        @given(QUESTIONS)
        def search(question: str) -> None:
            terms = query_terms(question)
            if database.is_postgresql:
                expression = tsquery(terms)
                if expression is not None:
                    database.transaction_sync(
                        lambda c: vs.lexical_tsquery(c, "vs_q", expression, 5)
                    )
            else:
                expression = fts5_query(terms)
                if expression is not None:
                    database.transaction_sync(lambda c: vs.lexical_fts5(c, "vs_q", expression, 5))
                    # The forms a big index is searched with: the words' document counts (each
                    # word tokenized by FTS5), AND-ed terms, the store's pk range for its term.
                    rows, counts = database.transaction_sync(lambda c: vs.document_counts(c, terms))
                    assert set(counts) == set(terms) and rows >= 1
                    conjunctive = fts5_query(terms, conjunctive=True)
                    assert conjunctive is not None
                    database.transaction_sync(
                        lambda c: vs.lexical_fts5(
                            c, "vs_q", conjunctive, 5, span=vs.store_span(c, "vs_q", 0)
                        )
                    )

        search()
        # And the words still find what they should.
        terms = query_terms('what\'s "NEAR" the OR-gate?')
        expression = tsquery(terms) if database.is_postgresql else fts5_query(terms)
        assert expression is not None
        lexical = vs.lexical_tsquery if database.is_postgresql else vs.lexical_fts5
        found = database.transaction_sync(lambda c: lexical(c, "vs_q", expression, 5))
        assert found and found[0][1] == "file-q"
    finally:
        database.dispose()
