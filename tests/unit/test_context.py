"""The turn context reads only the messages a prompt can use, in two passes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from assistants_grpc.engine.context import load_turn_context
from assistants_grpc.store import migrate
from assistants_grpc.store import repository as repo
from assistants_grpc.store.database import Database

THREAD = "thread_t"
RUN = "run_r"


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'c.db'}")
    migrate.upgrade(database)
    yield database
    database.dispose()


def _message(i: int, role: str = "user", run_id: str | None = None) -> dict[str, object]:
    return {
        "id": f"msg_{i:05d}",
        "thread_id": THREAD,
        "created_at": 1,
        "status": "completed",
        "role": role,
        "content": [{"type": "text", "text": {"value": f"message {i}", "annotations": []}}],
        "run_id": run_id,
        "attachments": [],
        "metadata": {},
        "token_count": 10,
        "token_encoding": "o200k_base",
    }


def _fill(database: Database, rows: list[dict[str, object]]) -> None:
    database.transaction_sync(
        lambda c: (
            repo.insert_row(c, repo.THREADS, {"id": THREAD, "created_at": 1, "metadata": {}}),
            repo.insert_rows(c, repo.MESSAGES, rows),
        )
    )


def test_reads_only_what_can_fit(database: Database) -> None:
    # 1,000 messages of 10 tokens (+8 overhead each): a 900-token budget, read with a 2x
    # margin, needs the newest 100 at most.
    _fill(database, [_message(i) for i in range(1000)])
    context = database.transaction_sync(
        lambda c: load_turn_context(c, THREAD, RUN, token_budget=900)
    )
    texts = [m.text for m in context.messages]
    assert texts[-1] == "message 999"
    assert len(texts) == 100
    everything = database.transaction_sync(lambda c: load_turn_context(c, THREAD, RUN))
    assert len(everything.messages) == 1000


def test_the_newest_user_message_is_always_read(database: Database) -> None:
    rows = [_message(0), *(_message(i, role="assistant") for i in range(1, 50))]
    rows.append(_message(50, role="assistant", run_id=RUN))
    _fill(database, rows)
    context = database.transaction_sync(
        lambda c: load_turn_context(c, THREAD, RUN, token_budget=1, last_messages=1)
    )
    # The budget fits nothing, but the newest user message (the first row) and everything
    # after it is still read. (The run's own message joins the prompt through its step.)
    assert [m.text for m in context.messages] == [f"message {i}" for i in range(50)]


def test_last_messages_limits_the_read(database: Database) -> None:
    _fill(database, [_message(i) for i in range(40)])
    context = database.transaction_sync(
        lambda c: load_turn_context(c, THREAD, RUN, last_messages=3)
    )
    assert [m.text for m in context.messages] == ["message 37", "message 38", "message 39"]
