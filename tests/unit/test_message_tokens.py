"""Token counts of new messages: long texts are counted in a worker thread, short ones on the
event loop, and either way the count is exactly the inline counter's."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistants_grpc.clock import ManualClock
from assistants_grpc.contract.pb import message_pb2
from assistants_grpc.engine.prompt import IMAGE_TOKENS
from assistants_grpc.engine.tokens import COUNTING_MODEL, OFF_LOOP_CHARS, TokenCounter
from assistants_grpc.services.deps import Dependencies
from assistants_grpc.services.messages import (
    count_tokens,
    message_text,
    new_messages,
)
from assistants_grpc.store.database import Database

M = message_pb2

# Varied text: words, digits, punctuation, other scripts, so the count is no accident of
# repetition at one length.
SAMPLE = (
    "The Assistants API lets you build AI assistants within your own applications. 12345, "
    'tool_calls[0].function.arguments = {"city": "Paris"}; Привет мир, こんにちは世界!\n'
)


def text_of_length(n: int) -> str:
    return (SAMPLE * (n // len(SAMPLE) + 1))[:n]


class RecordingCounter(TokenCounter):
    """The real counter, noting the thread each count ran on."""

    def __init__(self, cache_dir: Path) -> None:
        super().__init__(cache_dir)
        self.threads: list[int] = []

    def count_text(self, model: str, text: str) -> int:
        self.threads.append(threading.get_ident())
        return super().count_text(model, text)


@pytest.fixture(scope="module")
def counter(tmp_path_factory: pytest.TempPathFactory) -> RecordingCounter:
    counter = RecordingCounter(tmp_path_factory.mktemp("tiktoken-cache"))
    counter.preload()
    return counter


@pytest.fixture
def deps(counter: RecordingCounter, tmp_path: Path) -> Iterator[Dependencies]:
    ids = itertools.count()
    database = Database(f"sqlite:///{tmp_path / 'unused.db'}")  # counting never touches it
    counter.threads.clear()
    yield Dependencies(
        database=database,
        clock=ManualClock(),
        new_id=lambda kind: f"{kind}_{next(ids)}",
        tokens=counter,
    )
    database.dispose()


def content(*texts: str, images: int = 0) -> list[M.MessageContent]:
    parts = [M.MessageContent(text=M.TextContent(value=text)) for text in texts]
    parts += [M.MessageContent(image_url=M.ImageUrl(url="https://x/y.png"))] * images
    return parts


def inline_count(counter: TokenCounter, parts: list[M.MessageContent], images: int = 0) -> int:
    return counter.count_text(COUNTING_MODEL, message_text(parts)) + images * IMAGE_TOKENS


@pytest.mark.parametrize(
    "length", [0, 1, 100, OFF_LOOP_CHARS - 1, OFF_LOOP_CHARS, OFF_LOOP_CHARS + 1, 256_000]
)
async def test_counts_match_the_inline_counter(
    deps: Dependencies, counter: RecordingCounter, length: int
) -> None:
    parts = content(text_of_length(length), images=1)
    expected = inline_count(counter, parts, images=1)
    counter.threads.clear()
    assert await count_tokens(deps, parts) == expected
    loop_thread = threading.get_ident()
    if length < OFF_LOOP_CHARS:
        assert counter.threads == [loop_thread], "a short text is counted on the loop"
    else:
        assert counter.threads and loop_thread not in counter.threads, "a long text is not"


async def test_a_message_of_several_parts_counts_their_joined_text(
    deps: Dependencies, counter: RecordingCounter
) -> None:
    # Each part is short; joined they are long enough to be counted off the loop.
    parts = content(*(text_of_length(OFF_LOOP_CHARS // 3) for _ in range(4)), images=2)
    assert len(message_text(parts)) >= OFF_LOOP_CHARS
    assert await count_tokens(deps, parts) == inline_count(counter, parts, images=2)


async def test_new_messages_count_each_message(
    deps: Dependencies, counter: RecordingCounter
) -> None:
    lengths = (10, OFF_LOOP_CHARS * 4, 300)
    items = [
        M.MessageInput(
            role=M.MESSAGE_ROLE_USER, content=[M.MessageContentInput(text=text_of_length(n))]
        )
        for n in lengths
    ]
    counted = await new_messages(deps, "thread_1", items, 1_700_000_000)
    assert [message_text(m.content) for m, _ in counted] == [text_of_length(n) for n in lengths]
    assert [n for _, n in counted] == [inline_count(counter, m.content) for m, _ in counted]
    assert all(m.thread_id == "thread_1" and m.completed_at == 1_700_000_000 for m, _ in counted)
