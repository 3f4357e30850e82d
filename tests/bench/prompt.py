"""Long threads: the prompt of a 10,000-message thread with `auto` truncation.

In process, on the server's own code: `build_prompt` over 10,000 `ThreadMessage`s carrying
their stored token counts; the same thread with one 100,000-token pasted document in it (as its
opening, and among the newest messages), which `auto` sends shortened (issue 15: under 20 ms);
then end to end from the database: a 10,000-message thread created through the server (one
CreateThread), read back with `load_turn_context` from the same SQLite file and built, as a
worker does before each model turn."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

from assistants_grpc_client.v1 import message_pb2, thread_pb2

from assistants_grpc.engine.context import load_turn_context
from assistants_grpc.engine.models import DEFAULT_CONTEXT_WINDOW, known_context_window
from assistants_grpc.engine.prompt import Prompt, PromptRequest, ThreadMessage, build_prompt
from assistants_grpc.engine.tokens import O200K_BASE, TokenCounter
from assistants_grpc.store.database import Database
from tests.bench.common import Stubs, ms

T = TypeVar("T")

MODEL: Final = "gpt-4o"
COMPLETION_RESERVE: Final = 4096  # what the executor keeps free when a run sets no budget
INSTRUCTIONS: Final = "You are a helpful assistant. Answer briefly."
NO_RUN: Final = "run_bench_none"  # load_turn_context for a run that has no steps yet


def message_text(i: int) -> str:
    return (
        f"Message {i}: the quarterly report for region {i % 17} shows revenue of "
        f"{1000 + i * 7} thousand, up {i % 9} percent; please compare it with last year."
    )


def role(i: int, count: int) -> str:
    # Alternating, with the newest one from the user (as when a run starts).
    return "user" if (count - 1 - i) % 2 == 0 else "assistant"


def _request(messages: list[ThreadMessage]) -> PromptRequest:
    return PromptRequest(
        model=MODEL,
        instructions=INSTRUCTIONS,
        messages=messages,
        rounds=[],
        tools=[],
        truncation="auto",
        last_messages=None,
        context_window=known_context_window(MODEL) or DEFAULT_CONTEXT_WINDOW,
        completion_reserve=COMPLETION_RESERVE,
    )


def _timed(work: Callable[[], T], repeats: int) -> tuple[list[float], T]:
    times: list[float] = []
    result = work()  # warm-up
    for _ in range(repeats):
        began = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - began)
    return times, result


def _describe(prompt: Prompt, count: int) -> dict[str, Any]:
    return {
        "messages_in_thread": count,
        "messages_kept": count - prompt.dropped,
        "prompt_tokens": prompt.prompt_tokens,
        "fits": prompt.fits,
    }


DOCUMENT_TOKENS: Final = 100_000


def document_text(counter: TokenCounter) -> str:
    """About DOCUMENT_TOKENS tokens of numbered report paragraphs."""
    paragraph = "Section {}: the auditors reviewed the ledger entries for region {} and approved. "
    sample = "".join(paragraph.format(i, i % 17) for i in range(100))
    per_paragraph = counter.count_text(MODEL, sample) / 100
    return "".join(paragraph.format(i, i % 17) for i in range(int(DOCUMENT_TOKENS / per_paragraph)))


def with_document(
    messages: list[ThreadMessage], at: int, repeats: int, counter: TokenCounter
) -> dict[str, Any]:
    """`build_prompt` of the thread with its message `at` replaced by the document."""
    text = document_text(counter)
    document = ThreadMessage(
        role=messages[at].role,
        text=text,
        images=(),
        token_count=counter.count_text(MODEL, text),
        token_encoding=O200K_BASE,
    )
    thread = [*messages[:at], document, *messages[at + 1 :]]
    times, prompt = _timed(lambda: build_prompt(_request(thread), counter), repeats)
    return {
        **_describe(prompt, len(thread)),
        "document_tokens": document.token_count,
        "document_at": at,
        "shortened": prompt.shortened,
        "build_ms_p50": ms(statistics.median(times)),
        "build_ms_max": ms(max(times)),
    }


def in_process(count: int, repeats: int, counter: TokenCounter) -> dict[str, Any]:
    messages = []
    for i in range(count):
        text = message_text(i)
        messages.append(
            ThreadMessage(
                role=role(i, count),
                text=text,
                images=(),
                token_count=counter.count_text(MODEL, text),
                token_encoding=O200K_BASE,
            )
        )
    request = _request(messages)
    times, prompt = _timed(lambda: build_prompt(request, counter), repeats)
    first_user = next(i for i in range(count) if messages[i].role == "user")
    return {
        **_describe(prompt, count),
        "repeats": repeats,
        "build_ms_p50": ms(statistics.median(times)),
        "build_ms_max": ms(max(times)),
        # The document as the thread's opening (kept, shortened) and as the 10th newest message.
        "document_first": with_document(messages, first_user, repeats, counter),
        "document_recent": with_document(messages, count - 10, repeats, counter),
    }


async def create_long_thread(stubs: Stubs, count: int) -> tuple[str, float]:
    """A thread of `count` messages, made with one CreateThread; returns its id and seconds."""
    roles = {"user": message_pb2.MESSAGE_ROLE_USER, "assistant": message_pb2.MESSAGE_ROLE_ASSISTANT}
    request = thread_pb2.CreateThreadRequest(
        messages=[
            message_pb2.MessageInput(
                role=roles[role(i, count)],
                content=[message_pb2.MessageContentInput(text=message_text(i))],
            )
            for i in range(count)
        ]
    )
    began = time.perf_counter()
    thread = await stubs.threads.CreateThread(request, timeout=300)
    return thread.id, time.perf_counter() - began


def from_database(
    database_url: str, thread_id: str, count: int, repeats: int, counter: TokenCounter
) -> dict[str, Any]:
    database = Database(database_url)
    try:
        window = known_context_window(MODEL) or DEFAULT_CONTEXT_WINDOW
        budget = window - COMPLETION_RESERVE

        def load() -> list[ThreadMessage]:
            # With the budget the executor passes (model_request.read_limits): only the messages
            # that can fit are read back.
            context = database.transaction_sync(
                lambda c: load_turn_context(c, thread_id, NO_RUN, token_budget=budget)
            )
            return context.messages

        load_times, messages = _timed(load, repeats)
        if not messages or len(messages) > count:
            raise RuntimeError(f"loaded {len(messages)} messages of {count}")
        request = _request(messages)
        build_times, prompt = _timed(lambda: build_prompt(request, counter), repeats)

        def both() -> Prompt:
            # With the budget the executor passes (model_request.read_limits): only the messages
            # that can fit are read back.
            context = database.transaction_sync(
                lambda c: load_turn_context(c, thread_id, NO_RUN, token_budget=budget)
            )
            return build_prompt(_request(context.messages), counter)

        total_times, _ = _timed(both, repeats)
    finally:
        database.dispose()
    return {
        **_describe(prompt, count),
        "repeats": repeats,
        "messages_read": len(messages),
        "load_ms_p50": ms(statistics.median(load_times)),
        "build_ms_p50": ms(statistics.median(build_times)),
        "load_and_build_ms_p50": ms(statistics.median(total_times)),
        "load_and_build_ms_max": ms(max(total_times)),
    }


async def measure(
    service_port: int, database_url: str, count: int, repeats: int, db_repeats: int
) -> dict[str, Any]:
    counter = TokenCounter()
    counter.preload()
    out: dict[str, Any] = {"in_process": in_process(count, repeats, counter)}
    stubs = Stubs.connect(service_port)
    try:
        thread_id, seconds = await create_long_thread(stubs, count)
    finally:
        await stubs.close()
    out["create_thread_seconds"] = round(seconds, 2)
    out["from_database"] = from_database(database_url, thread_id, count, db_repeats, counter)
    return out


__all__ = ["measure"]
