"""Loads what a run's next model turn needs from the database: the thread's messages, earlier
runs' tool rounds and the run's own earlier steps, in the shape `prompt.build_prompt` takes.

A tool round holds calls of every type. A function call goes back to the model with the output
its caller submitted; a server-side call (file_search, code_interpreter) with the tool message
its executor produced, kept in the call's stored details under `MODEL_VIEW` (store/mapping.py).
The parts a server-side round produced for the next message (images) wait for the first message
the run writes after it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import BindParameter, Connection, RowMapping, bindparam, or_, select

from assistants_grpc.engine.prompt import ImageRef, ThreadMessage, ToolCallRecord, ToolRound
from assistants_grpc.store import repository as repo
from assistants_grpc.store.mapping import MODEL_VIEW

_MESSAGE_COLUMNS = (
    repo.MESSAGES.c.id,
    repo.MESSAGES.c.created_at,
    repo.MESSAGES.c.role,
    repo.MESSAGES.c.content,
    repo.MESSAGES.c.run_id,
    repo.MESSAGES.c.token_count,
    repo.MESSAGES.c.token_encoding,
)


# Built once: a turn starts with these four reads.
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
# The newest messages from `_first` on, and the thread's opening (two pks, maybe the same one)
# when it is older than that: `auto` keeps the opening while it drops the middle.
_MESSAGES_FROM = (
    select(*_MESSAGE_COLUMNS)
    .where(
        repo.MESSAGES.c.thread_id == _THREAD_ID,
        or_(
            repo.MESSAGES.c.pk >= bindparam("_first"),
            repo.MESSAGES.c.pk.in_([bindparam("_opening"), bindparam("_answer")]),
        ),
    )
    .order_by(repo.MESSAGES.c.pk)
)
# Earlier runs' steps on the thread since a time: their tool rounds, placed by their messages.
_EARLIER_STEPS = (
    select(repo.RUN_STEPS.c.run_id, repo.RUN_STEPS.c.type, repo.RUN_STEPS.c.step_details)
    .where(
        repo.RUN_STEPS.c.thread_id == _THREAD_ID,
        repo.RUN_STEPS.c.created_at >= bindparam("_since"),
        repo.RUN_STEPS.c.run_id != bindparam("_run_id"),
    )
    .order_by(repo.RUN_STEPS.c.pk)
)
_STEPS = (
    select(repo.RUN_STEPS.c.type, repo.RUN_STEPS.c.step_details, repo.RUN_STEPS.c.usage)
    .where(repo.RUN_STEPS.c.run_id == bindparam("_run_id"))
    .order_by(repo.RUN_STEPS.c.pk)
)
_THREAD = select(repo.THREADS.c.project, repo.THREADS.c.tool_resources).where(
    repo.THREADS.c.id == _THREAD_ID
)


@dataclass(frozen=True)
class ThreadFacts:
    """What a server-side tool may need of the run's thread."""

    project: str
    tool_resources: dict[str, Any] | None


@dataclass(frozen=True)
class TurnContext:
    messages: list[ThreadMessage]
    rounds: list[ToolRound]
    # What the run has spent so far over all its turns (budgets are per run, CONTRACT.md §6).
    prompt_tokens_used: int
    completion_tokens_used: int
    # Earlier runs' tool rounds placed among `messages` (see _earlier_rounds).
    earlier_rounds: list[ToolRound] = field(default_factory=list)
    # The run's server-side calls so far, as step details (OpenAI JSON, shown form), and how
    # many of its rounds made some (the tool-round cap counts them).
    earlier_calls: list[dict[str, Any]] = field(default_factory=list)
    server_rounds: int = 0
    # Parts the next message starts with: produced by server-side calls since the last message.
    lead_parts: list[dict[str, Any]] = field(default_factory=list)
    # Read only for runs whose tools execute here (None otherwise).
    thread: ThreadFacts | None = None


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


def _record(call: dict[str, Any]) -> ToolCallRecord | None:
    kind: str = call.get("type") or ""
    if kind == "function":
        function = call["function"]
        return ToolCallRecord(
            call["id"], function["name"], function["arguments"], function.get("output")
        )
    view = call.get(MODEL_VIEW)
    if view is None:
        return None  # not made through the model (nothing to tell it)
    return ToolCallRecord(call["id"], view["name"], view["arguments"], view.get("output"), kind)


def _round(after: int, details: dict[str, Any]) -> ToolRound:
    records = (_record(call) for call in details.get("tool_calls", []))
    calls = tuple(record for record in records if record is not None)
    return ToolRound(after_message=after, text=None, calls=calls)


# How much more than the prompt budget is read back: stored counts are in o200k_base, and an
# older model's encoding may count the same text somewhat higher. The exact cut is the prompt
# builder's; this only spares reading rows that cannot possibly fit.
_READ_MARGIN = 2
_MESSAGE_OVERHEAD = 8


def _first_needed(
    heads: Sequence[Any],
    run_id: str,
    token_budget: int | None,
    last_messages: int | None,
    shorten_at: int | None = None,
) -> int | None:
    """The pk of the oldest message the prompt may need besides the opening (None: the thread
    is empty).

    Walks back from the newest message. The run's own messages and everything up to the newest
    user message are always read (truncation never drops them); older ones only while their
    stored counts fit in the budget with margin, or, for last_messages, while within N (all of
    the N: they are kept and shortened if need be, never dropped). A count over `shorten_at`
    weighs `shorten_at`: `auto` shortens such a text to that length before it drops anything.
    """
    total = kept = 0
    first = None
    user_seen = False
    for pk, role, owner, tokens in reversed(heads):
        if shorten_at is not None and tokens > shorten_at:
            tokens = shorten_at
        if owner != run_id and user_seen:
            over_budget = (
                last_messages is None
                and token_budget is not None
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


def _opening(heads: Sequence[Any], run_id: str) -> tuple[int, int] | None:
    """The pks of the thread's first user message and of the message after it (the same pk
    twice when there is none): the opening `auto` keeps. The successor is read whatever its
    role, so the prompt builder sees which message really follows the opening."""
    others = [head for head in heads if head[2] != run_id]
    for i, (pk, role, _, _) in enumerate(others):
        if role == "user":
            return pk, (others[i + 1][0] if i + 1 < len(others) else pk)
    return None


def _earlier_rounds(
    steps: Iterable[RowMapping], positions: dict[str, int], last_of_run: dict[str, int]
) -> list[ToolRound]:
    """Earlier runs' tool rounds, each placed before the message its run wrote next (the answer
    the outputs led to). Rounds after a run's last message (it ended waiting, failed or was
    cancelled) follow that message; those of a run none of whose messages was read are left
    out: without them in the prompt the model would only see calls nobody answered."""
    rounds: list[ToolRound] = []
    waiting: dict[str, list[dict[str, Any]]] = {}
    for step in steps:
        run = step["run_id"]
        details = step["step_details"]
        if step["type"] == "message_creation":
            place = positions.get(details["message_creation"]["message_id"])
            before = waiting.pop(run, [])
            if place is not None:
                rounds += [_round(place, d) for d in before]
        else:
            waiting.setdefault(run, []).append(details)
    for run, left in waiting.items():
        place = last_of_run.get(run)
        if place is not None:
            rounds += [_round(place + 1, d) for d in left]
    rounds = [r for r in rounds if r.calls]
    rounds.sort(key=lambda r: r.after_message)  # stable: a run's rounds keep their order
    return rounds


def load_turn_context(
    connection: Connection,
    thread_id: str,
    run_id: str,
    *,
    token_budget: int | None = None,
    last_messages: int | None = None,
    shorten_at: int | None = None,
    with_thread: bool = False,
) -> TurnContext:
    """The thread's messages from before the run and earlier runs' tool rounds among them, then
    the run's own steps in their order: a message it wrote, or a tool round with the outputs
    submitted for it.

    Long threads are read in two passes: the small columns of every message first, to find the
    oldest message the prompt can use, then the content of that message and the newer ones only
    (and of the thread's opening, for `auto`). A 10,000-message thread then costs its truncated
    size, not its whole size, at every turn. Pass `last_messages` only for that strategy and
    `shorten_at` (prompt.shorten_limit) only for `auto`; `with_thread` when the run's tools
    execute here (they need the thread's project and resources).
    """
    heads = list(connection.execute(_HEADS, {"_thread_id": thread_id}))
    first = _first_needed(heads, run_id, token_budget, last_messages, shorten_at)
    rows: Sequence[RowMapping] = []
    opening = None if last_messages is not None else _opening(heads, run_id)
    if first is not None:
        head, answer = opening or (first, first)
        parameters = {"_thread_id": thread_id, "_first": first, "_opening": head, "_answer": answer}
        rows = list(connection.execute(_MESSAGES_FROM, parameters).mappings())
    own = {row["id"]: row for row in rows if row["run_id"] == run_id}
    others = [row for row in rows if row["run_id"] != run_id]
    messages = [_thread_message(row) for row in others]
    earlier: list[ToolRound] = []
    if others:
        positions = {row["id"]: i for i, row in enumerate(others)}
        last_of_run = {row["run_id"]: i for i, row in enumerate(others) if row["run_id"]}
        # From the oldest message read, when the whole thread is; else from the newest user
        # message: `auto` drops every earlier round before it drops a message, so when messages
        # are left unread, only rounds after the newest user message (kept always) can be sent.
        since = others[0]["created_at"]
        if first != heads[0][0] and last_messages is None:
            users = [row for row in others if row["role"] == "user"]
            since = users[-1]["created_at"] if users else since
        steps = connection.execute(
            _EARLIER_STEPS, {"_thread_id": thread_id, "_since": since, "_run_id": run_id}
        ).mappings()
        earlier = _earlier_rounds(steps, positions, last_of_run)
    rounds: list[ToolRound] = []
    calls: list[dict[str, Any]] = []
    lead: list[dict[str, Any]] = []
    server_rounds = 0
    prompt_used = completion_used = 0
    steps = connection.execute(_STEPS, {"_run_id": run_id}).mappings()
    for step in steps:
        details = step["step_details"]
        if step["type"] == "message_creation":
            row = own.get(details["message_creation"]["message_id"])
            if row is not None:
                messages.append(_thread_message(row))
            lead = []  # that message took them
        else:
            rounds.append(_round(len(messages), details))
            server = [c for c in details.get("tool_calls", []) if MODEL_VIEW in c]
            if server:
                server_rounds += 1
                for call in server:
                    lead += call[MODEL_VIEW].get("message_parts") or []
                    calls.append({k: v for k, v in call.items() if k != MODEL_VIEW})
        if step["usage"]:
            prompt_used += step["usage"]["prompt_tokens"]
            completion_used += step["usage"]["completion_tokens"]
    thread = None
    if with_thread:
        facts = connection.execute(_THREAD, {"_thread_id": thread_id}).first()
        if facts is not None:
            thread = ThreadFacts(facts.project, facts.tool_resources)
    return TurnContext(
        messages,
        rounds,
        prompt_used,
        completion_used,
        earlier,
        calls,
        server_rounds,
        lead,
        thread,
    )


__all__ = ["ThreadFacts", "TurnContext", "load_turn_context"]
