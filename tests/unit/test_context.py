"""The turn context reads only the messages a prompt can use, in two passes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


def _message(
    i: int, role: str = "user", run_id: str | None = None, created_at: int = 1
) -> dict[str, object]:
    return {
        "id": f"msg_{i:05d}",
        "thread_id": THREAD,
        "created_at": created_at,
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
    # margin, needs the newest 100 at most, and the opening (the first user message and the
    # message after it), which `auto` keeps.
    _fill(database, [_message(i) for i in range(1000)])
    context = database.transaction_sync(
        lambda c: load_turn_context(c, THREAD, RUN, token_budget=900)
    )
    texts = [m.text for m in context.messages]
    assert texts == ["message 0", "message 1"] + [f"message {i}" for i in range(900, 1000)]
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


def test_the_opening_is_the_first_user_message_and_the_one_after_it(database: Database) -> None:
    rows = [_message(0, role="assistant"), _message(1), _message(2, role="user")]
    rows += [_message(i, role="assistant" if i % 2 else "user") for i in range(3, 500)]
    _fill(database, rows)
    context = database.transaction_sync(
        lambda c: load_turn_context(c, THREAD, RUN, token_budget=180)
    )
    texts = [m.text for m in context.messages]
    # A greeting before it is not the opening; the message after it is read whatever its role.
    assert texts[:2] == ["message 1", "message 2"]
    assert texts[2:] == [f"message {i}" for i in range(500 - len(texts) + 2, 500)]


def test_a_long_message_weighs_what_it_is_shortened_to(database: Database) -> None:
    rows = [_message(i) for i in range(300)]
    rows[250]["token_count"] = 100_000  # a pasted document among the newest
    _fill(database, rows)

    def read(shorten_at: int | None) -> list[str]:
        context = database.transaction_sync(
            lambda c: load_turn_context(c, THREAD, RUN, token_budget=900, shorten_at=shorten_at)
        )
        return [m.text for m in context.messages]

    # Counted whole, the document ends the read; at the 112 tokens auto shortens it to, the
    # read goes on past it as it would past any message.
    assert read(None)[2:] == [f"message {i}" for i in range(251, 300)]
    shortened = read(112)
    assert "message 250" in shortened and len(shortened) > 90


def _step(
    i: int, run_id: str, kind: str, details: dict[str, Any], created_at: int = 1
) -> dict[str, object]:
    return {
        "id": f"step_{i:05d}",
        "run_id": run_id,
        "thread_id": THREAD,
        "assistant_id": "asst_a",
        "created_at": created_at,
        "type": kind,
        "status": "completed",
        "step_details": details,
        "metadata": {},
    }


def _creation(i: int, run_id: str, message: int, created_at: int = 1) -> dict[str, object]:
    details = {"type": "message_creation", "message_creation": {"message_id": f"msg_{message:05d}"}}
    return _step(i, run_id, "message_creation", details, created_at)


def _calls(i: int, run_id: str, call_id: str, created_at: int = 1) -> dict[str, object]:
    call = {
        "id": call_id,
        "type": "function",
        "function": {"name": "lookup", "arguments": "{}", "output": f"out {call_id}"},
    }
    details = {"type": "tool_calls", "tool_calls": [call]}
    return _step(i, run_id, "tool_calls", details, created_at)


def _insert_steps(database: Database, steps: list[dict[str, object]]) -> None:
    database.transaction_sync(lambda c: repo.insert_rows(c, repo.RUN_STEPS, steps))


def test_earlier_runs_rounds_are_placed_before_the_answer_they_led_to(
    database: Database,
) -> None:
    rows = [
        _message(0),
        _message(1, role="assistant", run_id="run_a"),  # "let me look"
        _message(2, role="assistant", run_id="run_a"),  # the answer
        _message(3),
        _message(4, role="assistant", run_id="run_b"),  # answered, then called and stopped
        _message(5),
    ]
    _fill(database, rows)
    _insert_steps(
        database,
        [
            _creation(0, "run_a", 1),
            _calls(1, "run_a", "call_a1"),
            _calls(2, "run_a", "call_a2"),
            _creation(3, "run_a", 2),
            _creation(4, "run_b", 4),
            _calls(5, "run_b", "call_b"),  # the run ended waiting: after its last message
            _calls(6, "run_gone", "call_x"),  # a run none of whose messages exists
            _calls(7, RUN, "call_now"),  # the current run's: a round of its own
        ],
    )
    context = database.transaction_sync(lambda c: load_turn_context(c, THREAD, RUN))
    placed = [(r.after_message, [c.id for c in r.calls]) for r in context.earlier_rounds]
    assert placed == [(2, ["call_a1"]), (2, ["call_a2"]), (5, ["call_b"])]
    assert context.earlier_rounds[0].calls[0].output == "out call_a1"
    assert [[c.id for c in r.calls] for r in context.rounds] == [["call_now"]]


def test_a_partial_read_loads_only_rounds_after_the_newest_user_message(
    database: Database,
) -> None:
    rows = []
    steps = []
    for i in range(0, 400, 2):  # user message, then a run that called a tool and answered
        rows += [_message(i, created_at=i), _message(i + 1, "assistant", f"run_{i}", i + 1)]
        steps += [
            _calls(i, f"run_{i}", f"call_{i}", i + 1),
            _creation(i + 1, f"run_{i}", i + 1, i + 1),
        ]
    # One more run after the newest user message, without a new user message.
    rows.append(_message(400, "assistant", "run_last", 401))
    steps += [_calls(400, "run_last", "call_last", 401), _creation(401, "run_last", 400, 401)]
    _fill(database, rows)
    _insert_steps(database, steps)

    whole = database.transaction_sync(lambda c: load_turn_context(c, THREAD, RUN))
    assert len(whole.earlier_rounds) == 201
    partial = database.transaction_sync(
        lambda c: load_turn_context(c, THREAD, RUN, token_budget=500)
    )
    assert len(partial.messages) < 100
    calls = [r.calls[0].id for r in partial.earlier_rounds]
    assert calls == ["call_398", "call_last"]
    texts = [m.text for m in partial.messages]
    assert texts[partial.earlier_rounds[-1].after_message] == "message 400"
