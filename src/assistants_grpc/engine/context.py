"""Loads what a run's next model turn needs from the database: the thread's messages and the
run's own earlier steps, in the shape `prompt.build_prompt` takes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BindParameter, Connection, RowMapping, bindparam, select

from assistants_grpc.engine.prompt import ImageRef, ThreadMessage, ToolCallRecord, ToolRound
from assistants_grpc.store import repository as repo

_MESSAGE_COLUMNS = (
    repo.MESSAGES.c.id,
    repo.MESSAGES.c.role,
    repo.MESSAGES.c.content,
    repo.MESSAGES.c.run_id,
    repo.MESSAGES.c.token_count,
    repo.MESSAGES.c.token_encoding,
)


# Built once: a turn starts with these three reads.
_THREAD_ID: BindParameter[str] = bindparam("_thread_id")
_HEADS = (
    select(
        repo.MESSAGES.c.pk,
        repo.MESSAGES.c.role,
        repo.MESSAGES.c.run_id,
        repo.MESSAGES.c.token_count,
    )
    .where(repo.MESSAGES.c.thread_id == _THREAD_ID)
    .order_by(repo.MESSAGES.c.pk)
)
_MESSAGES_FROM = (
    select(*_MESSAGE_COLUMNS)
    .where(repo.MESSAGES.c.thread_id == _THREAD_ID, repo.MESSAGES.c.pk >= bindparam("_first"))
    .order_by(repo.MESSAGES.c.pk)
)
_STEPS = (
    select(repo.RUN_STEPS.c.type, repo.RUN_STEPS.c.step_details, repo.RUN_STEPS.c.usage)
    .where(repo.RUN_STEPS.c.run_id == bindparam("_run_id"))
    .order_by(repo.RUN_STEPS.c.pk)
)


@dataclass(frozen=True)
class TurnContext:
    messages: list[ThreadMessage]
    rounds: list[ToolRound]
    # What the run has spent so far over all its turns (budgets are per run, CONTRACT.md §6).
    prompt_tokens_used: int
    completion_tokens_used: int


def _thread_message(row: RowMapping) -> ThreadMessage:
    texts: list[str] = []
    images: list[ImageRef] = []
    for part in row["content"]:
        kind = part.get("type")
        if kind == "text":
            texts.append(part["text"]["value"])
        elif kind == "refusal":
            texts.append(part["refusal"])
        elif kind == "image_url":
            image = part["image_url"]
            images.append(ImageRef(url=image["url"], file_id=None, detail=image.get("detail")))
        elif kind == "image_file":
            image = part["image_file"]
            images.append(ImageRef(url=None, file_id=image["file_id"], detail=image.get("detail")))
    return ThreadMessage(
        role=row["role"],
        text="\n".join(texts),
        images=tuple(images),
        token_count=row["token_count"],
        token_encoding=row["token_encoding"],
    )


def _round(after: int, details: dict[str, Any]) -> ToolRound:
    calls = tuple(
        ToolCallRecord(
            id=call["id"],
            name=call["function"]["name"],
            arguments=call["function"]["arguments"],
            output=call["function"].get("output"),
        )
        for call in details.get("tool_calls", [])
        if call.get("type") == "function"
    )
    return ToolRound(after_message=after, text=None, calls=calls)


# How much more than the prompt budget is read back: stored counts are in o200k_base, and an
# older model's encoding may count the same text somewhat higher. The exact cut is the prompt
# builder's; this only spares reading rows that cannot possibly fit.
_READ_MARGIN = 2
_MESSAGE_OVERHEAD = 8


def _first_needed(
    heads: Sequence[Any], run_id: str, token_budget: int | None, last_messages: int | None
) -> int | None:
    """The pk of the oldest message the prompt may need (None: the thread is empty).

    Walks back from the newest message. The run's own messages and everything up to the newest
    user message are always read (truncation never drops them); older ones only while their
    stored counts fit in the budget with margin, or, for last_messages, while within N.
    """
    total = kept = 0
    first = None
    user_seen = False
    for pk, role, owner, tokens in reversed(heads):
        if owner != run_id and user_seen:
            over_budget = (
                token_budget is not None
                and total + tokens + _MESSAGE_OVERHEAD > _READ_MARGIN * token_budget
            )
            if over_budget or (last_messages is not None and kept >= last_messages):
                break
        if owner != run_id:
            total += tokens + _MESSAGE_OVERHEAD
            kept += 1
            user_seen = user_seen or role == "user"
        first = pk
    return first


def load_turn_context(
    connection: Connection,
    thread_id: str,
    run_id: str,
    *,
    token_budget: int | None = None,
    last_messages: int | None = None,
) -> TurnContext:
    """The thread's messages from before the run, then the run's own steps in their order: a
    message it wrote, or a tool round with the outputs submitted for it.

    Long threads are read in two passes: the small columns of every message first, to find the
    oldest message the prompt can use, then the content of that message and the newer ones only.
    A 10,000-message thread then costs its truncated size, not its whole size, at every turn.
    """
    heads = list(connection.execute(_HEADS, {"_thread_id": thread_id}))
    first = _first_needed(heads, run_id, token_budget, last_messages)
    rows: Sequence[RowMapping] = []
    if first is not None:
        parameters = {"_thread_id": thread_id, "_first": first}
        rows = list(connection.execute(_MESSAGES_FROM, parameters).mappings())
    own = {row["id"]: row for row in rows if row["run_id"] == run_id}
    messages = [_thread_message(row) for row in rows if row["run_id"] != run_id]
    rounds: list[ToolRound] = []
    prompt_used = completion_used = 0
    steps = connection.execute(_STEPS, {"_run_id": run_id}).mappings()
    for step in steps:
        details = step["step_details"]
        if step["type"] == "message_creation":
            row = own.get(details["message_creation"]["message_id"])
            if row is not None:
                messages.append(_thread_message(row))
        else:
            rounds.append(_round(len(messages), details))
        if step["usage"]:
            prompt_used += step["usage"]["prompt_tokens"]
            completion_used += step["usage"]["completion_tokens"]
    return TurnContext(messages, rounds, prompt_used, completion_used)


__all__ = ["TurnContext", "load_turn_context"]
