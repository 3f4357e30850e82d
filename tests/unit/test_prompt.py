"""Prompt building and truncation, counted with the real tiktoken encodings."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import pytest

from assistants_grpc.config import Settings
from assistants_grpc.engine import prompt
from assistants_grpc.engine.prompt import (
    IMAGE_TOKENS,
    MIN_SHORTENED_TOKENS,
    ImageRef,
    PromptRequest,
    ThreadMessage,
    ToolCallRecord,
    ToolRound,
    build_prompt,
    chat_tools,
    check_shorten_fraction,
    shorten_limit,
)
from assistants_grpc.engine.tokens import (
    CL100K_BASE,
    O200K_BASE,
    REPLY_PRIMING_TOKENS,
    TOKENS_PER_MESSAGE,
    TokenCounter,
)

O200K_MODEL = "gpt-4o"
CL100K_MODEL = "gpt-4"
MULTILINGUAL = "Привет мир, こんにちは世界, naïve façade — déjà vu"


class SpyCounter(TokenCounter):
    """A real counter that remembers which texts it was asked to count."""

    def __init__(self) -> None:
        super().__init__()
        self.counted: list[str] = []

    def count_text(self, model: str, text: str) -> int:
        self.counted.append(text)
        return super().count_text(model, text)


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    tc = TokenCounter()
    tc.preload()
    return tc


def stored(
    counter: TokenCounter, role: str, text: str, images: tuple[ImageRef, ...] = ()
) -> ThreadMessage:
    """A message as the store hands it over: counted once, with o200k_base, at creation."""
    n = counter.count_text(O200K_MODEL, text) + IMAGE_TOKENS * len(images)
    return ThreadMessage(role, text, images, n, O200K_BASE)


def request(
    messages: Sequence[ThreadMessage],
    *,
    model: str = O200K_MODEL,
    instructions: str | None = None,
    rounds: Sequence[ToolRound] = (),
    tools: Sequence[dict[str, Any]] = (),
    truncation: str = "auto",
    last_messages: int | None = None,
    context_window: int = 128_000,
    completion_reserve: int = 0,
    max_prompt_tokens: int | None = None,
    earlier_rounds: Sequence[ToolRound] = (),
    shorten_fraction: float = prompt.DEFAULT_SHORTEN_FRACTION,
) -> PromptRequest:
    return PromptRequest(
        model=model,
        instructions=instructions,
        messages=messages,
        rounds=rounds,
        tools=tools,
        truncation=truncation,
        last_messages=last_messages,
        context_window=context_window,
        completion_reserve=completion_reserve,
        max_prompt_tokens=max_prompt_tokens,
        earlier_rounds=earlier_rounds,
        shorten_fraction=shorten_fraction,
    )


def recount(counter: TokenCounter, model: str, messages: list[dict[str, Any]]) -> int:
    """The cookbook count of rendered messages, computed from the dicts alone."""
    total = REPLY_PRIMING_TOKENS
    for m in messages:
        total += TOKENS_PER_MESSAGE + counter.count_text(model, m["role"])
        content = m["content"]
        if isinstance(content, str):
            total += counter.count_text(model, content)
        elif isinstance(content, list):
            for part in content:
                if part["type"] == "text":
                    total += counter.count_text(model, part["text"])
                else:
                    total += IMAGE_TOKENS
        for call in m.get("tool_calls", []):
            fn = call["function"]
            total += counter.count_text(model, fn["name"]) + counter.count_text(
                model, fn["arguments"]
            )
    return total


def message_cost(counter: TokenCounter, model: str, m: ThreadMessage) -> int:
    content = counter.count_text(model, m.text) + IMAGE_TOKENS * len(m.images)
    return TOKENS_PER_MESSAGE + counter.count_text(model, m.role) + content


def roles_and_text(messages: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    return [(m["role"], m["content"]) for m in messages]


def test_public_names() -> None:
    assert sorted(prompt.__all__) == [
        "DEFAULT_SHORTEN_FRACTION",
        "IMAGE_TOKENS",
        "ImageRef",
        "MIN_SHORTENED_TOKENS",
        "Prompt",
        "PromptRequest",
        "ThreadMessage",
        "ToolCallRecord",
        "ToolRound",
        "build_prompt",
        "chat_tools",
        "check_shorten_fraction",
        "omitted_marker",
        "shorten_limit",
    ]


def test_order_system_messages_and_rounds_at_their_place(counter: TokenCounter) -> None:
    msgs = [
        stored(counter, "user", "first question"),
        stored(counter, "assistant", "first answer"),
        stored(counter, "user", "second question"),
    ]
    early = ToolRound(
        after_message=1,
        text="looking it up",
        calls=(
            ToolCallRecord("call_a", "lookup", '{"q":"x"}', "found x"),
            ToolCallRecord("call_b", "lookup", '{"q":"y"}', "found y"),
        ),
    )
    late = ToolRound(
        after_message=3, text=None, calls=(ToolCallRecord("call_c", "now", "{}", "12:00"),)
    )

    # Rounds are given out of order on purpose: their place comes from after_message.
    result = build_prompt(request(msgs, instructions="Be brief.", rounds=[late, early]), counter)

    assert result.messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "first question"},
        {
            "role": "assistant",
            "content": "looking it up",
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q":"x"}'},
                },
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q":"y"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "found x"},
        {"role": "tool", "tool_call_id": "call_b", "content": "found y"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_c", "type": "function", "function": {"name": "now", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_c", "content": "12:00"},
    ]
    assert result.dropped == 0
    assert result.fits


def test_no_system_message_without_instructions(counter: TokenCounter) -> None:
    msgs = [stored(counter, "user", "hi")]
    for instructions in (None, ""):
        result = build_prompt(request(msgs, instructions=instructions), counter)
        assert result.messages == [{"role": "user", "content": "hi"}]


def test_missing_output_renders_as_empty_string(counter: TokenCounter) -> None:
    msgs = [stored(counter, "user", "hi")]
    rnd = ToolRound(1, None, (ToolCallRecord("call_x", "f", "{}", None),))
    result = build_prompt(request(msgs, rounds=[rnd]), counter)
    assert result.messages[-1] == {"role": "tool", "tool_call_id": "call_x", "content": ""}


def test_images_render_as_url_parts_and_file_placeholders(counter: TokenCounter) -> None:
    images = (
        ImageRef(url="https://example.com/cat.png", file_id=None, detail="low"),
        ImageRef(url="https://example.com/dog.png", file_id=None, detail=None),
        ImageRef(url=None, file_id="file-abc123", detail="high"),
    )
    user = stored(counter, "user", "What is in these?", images)
    image_only = stored(counter, "user", "", images[:1])
    result = build_prompt(request([user, image_only]), counter)

    assert result.messages == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is in these?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "https://example.com/cat.png", "detail": "low"},
                },
                {"type": "image_url", "image_url": {"url": "https://example.com/dog.png"}},
                {"type": "text", "text": "[image file file-abc123]"},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "image_url",
                    "image_url": {"url": "https://example.com/cat.png", "detail": "low"},
                }
            ],
        },
    ]
    # Every image part weighs IMAGE_TOKENS, as the stored count says.
    assert result.prompt_tokens == REPLY_PRIMING_TOKENS + sum(
        message_cost(counter, O200K_MODEL, m) for m in (user, image_only)
    )


def test_images_in_assistant_messages_become_text(counter: TokenCounter) -> None:
    images = (
        ImageRef(url="https://example.com/chart.png", file_id=None, detail=None),
        ImageRef(url="data:image/png;base64,iVBORw0KGgo=", file_id=None, detail=None),
    )
    result = build_prompt(request([stored(counter, "assistant", "Here:", images)]), counter)
    assert result.messages == [
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Here:"},
                {"type": "text", "text": "[image https://example.com/chart.png]"},
                {"type": "text", "text": "[image inline data]"},
            ],
        }
    ]


def test_last_messages_keeps_the_n_newest_and_every_round(counter: TokenCounter) -> None:
    msgs = [stored(counter, "user" if i % 2 == 0 else "assistant", f"m{i}") for i in range(6)]
    lost_place = ToolRound(2, None, (ToolCallRecord("call_1", "f", "{}", "one"),))
    in_place = ToolRound(5, None, (ToolCallRecord("call_2", "f", "{}", "two"),))
    result = build_prompt(
        request(
            msgs,
            instructions="sys",
            rounds=[lost_place, in_place],
            truncation="last_messages",
            last_messages=2,
        ),
        counter,
    )

    assert result.dropped == 4
    assert [(m["role"], m.get("content"), m.get("tool_call_id")) for m in result.messages] == [
        ("system", "sys", None),
        # its message was dropped: the round goes right after the system message
        ("assistant", None, None),
        ("tool", "one", "call_1"),
        ("user", "m4", None),
        ("assistant", None, None),
        ("tool", "two", "call_2"),
        ("assistant", "m5", None),
    ]
    assert result.fits
    assert result.prompt_tokens == recount(counter, O200K_MODEL, result.messages)


def test_last_messages_does_not_drop_more_when_over_budget(counter: TokenCounter) -> None:
    msgs = [stored(counter, "user", "word " * 50) for _ in range(4)]
    result = build_prompt(
        request(msgs, truncation="last_messages", last_messages=3, context_window=100), counter
    )
    assert result.dropped == 1
    assert len(result.messages) == 3
    assert not result.fits
    assert result.prompt_tokens > 100


def test_last_messages_larger_than_the_thread_keeps_everything(counter: TokenCounter) -> None:
    msgs = [stored(counter, "user", "a"), stored(counter, "assistant", "b")]
    result = build_prompt(request(msgs, truncation="last_messages", last_messages=10), counter)
    assert result.dropped == 0
    assert roles_and_text(result.messages) == [("user", "a"), ("assistant", "b")]


def test_auto_drops_the_oldest_after_the_opening_until_it_fits(counter: TokenCounter) -> None:
    msgs = [
        stored(counter, "user" if i % 2 == 0 else "assistant", f"message number {i} " * (i + 1))
        for i in range(8)
    ]
    costs = [message_cost(counter, O200K_MODEL, m) for m in msgs]
    fixed = REPLY_PRIMING_TOKENS + message_cost(
        counter, O200K_MODEL, ThreadMessage("system", "sys", (), 0, "")
    )
    # Room for the opening (0, 1) and exactly the 3 newest messages, one token short of the 4th.
    budget = fixed + costs[0] + costs[1] + sum(costs[5:]) + costs[4] - 1
    result = build_prompt(
        request(msgs, instructions="sys", context_window=budget + 500, completion_reserve=500),
        counter,
    )

    assert result.dropped == 3
    assert roles_and_text(result.messages) == [("system", "sys")] + [
        (m.role, m.text) for m in msgs[:2] + msgs[5:]
    ]
    assert result.prompt_tokens == fixed + costs[0] + costs[1] + sum(costs[5:]) <= budget
    assert result.fits
    assert result.shortened == 0


def test_auto_never_drops_the_newest_user_message(counter: TokenCounter) -> None:
    msgs = [
        stored(counter, "user", "old question"),
        stored(counter, "assistant", "old answer"),
        stored(counter, "user", "a very long question " * 100),
        stored(counter, "assistant", "partial answer of this run"),
    ]
    rnd = ToolRound(4, None, (ToolCallRecord("call_1", "f", "{}", "out"),))
    result = build_prompt(
        request(msgs, instructions="sys", rounds=[rnd], context_window=50), counter
    )

    # The minimum: system, the newest user message and what follows it, and the round.
    assert result.dropped == 2
    assert [m["role"] for m in result.messages] == [
        "system",
        "user",
        "assistant",
        "assistant",
        "tool",
    ]
    assert not result.fits
    assert result.prompt_tokens == recount(counter, O200K_MODEL, result.messages) > 50


def test_auto_keeps_everything_when_it_fits(counter: TokenCounter) -> None:
    msgs = [stored(counter, "user", "q"), stored(counter, "assistant", "a")]
    result = build_prompt(request(msgs), counter)
    assert result.dropped == 0
    assert result.fits


def test_fits_is_false_when_even_the_instructions_do_not_fit(counter: TokenCounter) -> None:
    msgs = [stored(counter, "user", "hi")]
    result = build_prompt(
        request(msgs, instructions="rule " * 300, context_window=1_000, completion_reserve=900),
        counter,
    )
    assert not result.fits
    assert [m["role"] for m in result.messages] == ["system", "user"]
    assert result.dropped == 0


def test_max_prompt_tokens_below_the_context_budget_wins(counter: TokenCounter) -> None:
    msgs = [
        stored(counter, "user" if i % 2 == 0 else "assistant", "filler " * 40) for i in range(9)
    ]
    roomy = build_prompt(request(msgs, context_window=100_000, completion_reserve=4_000), counter)
    tight = build_prompt(
        request(msgs, context_window=100_000, completion_reserve=4_000, max_prompt_tokens=300),
        counter,
    )
    assert roomy.dropped == 0
    assert tight.dropped > 0
    assert (
        tight.prompt_tokens
        <= 300
        < tight.prompt_tokens + message_cost(counter, O200K_MODEL, msgs[tight.dropped - 1])
    )
    assert tight.fits

    # ... and the context budget wins when it is the lower one.
    small_window = build_prompt(
        request(msgs, context_window=400, completion_reserve=100, max_prompt_tokens=100_000),
        counter,
    )
    assert small_window.prompt_tokens <= 300
    assert small_window.dropped == tight.dropped


def test_cl100k_model_recounts_o200k_messages(counter: TokenCounter) -> None:
    msgs = [stored(counter, "user", MULTILINGUAL), stored(counter, "assistant", MULTILINGUAL * 2)]
    assert counter.count_text(CL100K_MODEL, MULTILINGUAL) != counter.count_text(
        O200K_MODEL, MULTILINGUAL
    )
    result = build_prompt(request(msgs, model=CL100K_MODEL), counter)
    fresh = REPLY_PRIMING_TOKENS + sum(message_cost(counter, CL100K_MODEL, m) for m in msgs)
    assert result.prompt_tokens == fresh
    assert result.prompt_tokens == recount(counter, CL100K_MODEL, result.messages)


def test_matching_encoding_uses_the_stored_count() -> None:
    spy = SpyCounter()
    # A stored count that is plainly not the text's: used as is, since the encodings agree.
    msgs = [ThreadMessage("user", "lots of words " * 50, (), 7, O200K_BASE)]
    result = build_prompt(request(msgs), spy)
    assert result.prompt_tokens == REPLY_PRIMING_TOKENS + TOKENS_PER_MESSAGE + 1 + 7
    assert spy.counted == ["user"]


def test_recount_only_for_messages_the_cut_looks_at() -> None:
    spy = SpyCounter()
    msgs = [
        ThreadMessage("user" if i % 2 == 0 else "assistant", f"text {i}", (), 1, CL100K_BASE)
        for i in range(100)
    ]
    result = build_prompt(request(msgs, context_window=100), spy)
    assert 2 < result.dropped < 98
    kept = [m["content"] for m in result.messages]
    assert kept[:2] == ["text 0", "text 1"]  # the opening
    oldest_kept = int(kept[2].split()[1])
    assert kept[2:] == [f"text {i}" for i in range(oldest_kept, 100)]
    recounted = [t for t in spy.counted if t.startswith("text ")]
    # The kept messages plus the one that was found not to fit, each once.
    assert sorted(recounted) == sorted([*kept, f"text {oldest_kept - 1}"])

    spy.counted.clear()
    build_prompt(request(msgs, truncation="last_messages", last_messages=3), spy)
    assert [t for t in spy.counted if t.startswith("text ")] == ["text 97", "text 98", "text 99"]


def test_prompt_tokens_match_an_independent_count(counter: TokenCounter) -> None:
    tools = chat_tools(
        [
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather for a city — in °C",
                    "parameters": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    },
                    "strict": None,
                },
            }
        ]
    )
    msgs = [
        stored(
            counter,
            "user",
            "Weather in Paris? And what is this?",
            (ImageRef("https://example.com/a.png", None, "auto"),),
        ),
    ]
    rnd = ToolRound(
        1,
        "Checking.",
        (ToolCallRecord("call_1", "get_weather", '{"city": "Paris"}', '{"temp": 21}'),),
    )
    result = build_prompt(
        request(msgs, instructions="You are a weather bot.", rounds=[rnd], tools=tools), counter
    )

    tools_json = json.dumps(tools, ensure_ascii=False, separators=(",", ":"))
    expected = recount(counter, O200K_MODEL, result.messages) + counter.count_text(
        O200K_MODEL, tools_json
    )
    assert result.prompt_tokens == expected


def test_ten_thousand_messages_keep_the_opening_and_the_newest_that_fit(
    counter: TokenCounter,
) -> None:
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]
    # Stored counts are what the store would hold; a handful of distinct texts keeps this quick.
    texts = [" ".join(words[: 1 + i % 6]) * (1 + i % 5) for i in range(30)]
    counts = [counter.count_text(O200K_MODEL, t) for t in texts]
    msgs = [
        ThreadMessage(
            "user" if i % 2 == 0 else "assistant", texts[i % 30], (), counts[i % 30], O200K_BASE
        )
        for i in range(10_000)
    ]
    budget = 8_000
    result = build_prompt(
        request(msgs, instructions="sys", context_window=budget + 1_000, completion_reserve=1_000),
        counter,
    )

    oldest_kept = result.dropped + 2  # the opening, then a contiguous newest run
    kept = msgs[:2] + msgs[oldest_kept:]
    assert 0 < result.dropped < 10_000
    assert [(m["role"], m["content"]) for m in result.messages[1:]] == [
        (m.role, m.text) for m in kept
    ]
    assert result.fits
    assert result.prompt_tokens <= budget
    assert result.prompt_tokens == recount(counter, O200K_MODEL, result.messages)
    # The next older message is the one that would have gone over.
    assert result.prompt_tokens + message_cost(counter, O200K_MODEL, msgs[oldest_kept - 1]) > (
        budget
    )

    everything = build_prompt(request(msgs, context_window=10_000_000), counter)
    assert everything.dropped == 0
    assert len(everything.messages) == 10_000
    assert everything.fits


def test_unknown_truncation_is_rejected(counter: TokenCounter) -> None:
    with pytest.raises(ValueError, match="truncation"):
        build_prompt(request([], truncation="middle"), counter)


def test_empty_thread(counter: TokenCounter) -> None:
    result = build_prompt(request([], instructions="sys"), counter)
    assert result.messages == [{"role": "system", "content": "sys"}]
    assert result.dropped == 0
    assert result.fits


def test_chat_tools_keeps_function_tools_only() -> None:
    assistants_tools: list[dict[str, Any]] = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "Find a thing.",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
                "strict": True,
            },
        },
        {"type": "file_search", "file_search": {"max_num_results": 5}},
        {"type": "code_interpreter"},
        {
            "type": "function",
            "function": {"name": "ping", "description": None, "parameters": None, "strict": None},
        },
        {
            "type": "function",
            "function": {"name": "loose", "description": "x", "parameters": None, "strict": False},
        },
    ]
    converted = chat_tools(assistants_tools)
    assert converted == [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "description": "Find a thing.",
                "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
                "strict": True,
            },
        },
        {
            "type": "function",
            "function": {"name": "ping", "parameters": {"type": "object", "properties": {}}},
        },
        {
            "type": "function",
            "function": {
                "name": "loose",
                "description": "x",
                "strict": False,
                "parameters": {"type": "object", "properties": {}},
            },
        },
    ]
    # Each default schema is its own dict, so one request's edits can't leak into another.
    converted[1]["function"]["parameters"]["properties"]["x"] = {}
    assert chat_tools(assistants_tools)[1]["function"]["parameters"] == {
        "type": "object",
        "properties": {},
    }
    assert chat_tools([]) == []


# --- truncation as the seed describes it (issue 15) ------------------------------------------

# "Unicode" in mathematical fraktur: 4-byte characters.
FRAKTUR = "\U0001d518\U0001d52b\U0001d526\U0001d520\U0001d52c\U0001d521\U0001d522"
MARKER = re.compile(r"\n\[… (\d+) tokens omitted …\]\n")
WINDOW_4K = 4_096
RESERVE_4K = 2_048  # what the executor keeps free on a 4,096 window when a run sets no budget


def filler(i: int) -> str:
    return f"Filler message {i}: the weather was fine, nothing happened, moving on to item {i}."


def document(counter: TokenCounter, tokens: int) -> str:
    """A pasted document of about `tokens` tokens, each paragraph numbered (so a cut shows)."""
    paragraphs: list[str] = []
    count = 0
    i = 0
    while count < tokens:
        paragraph = f"Paragraph {i}. The committee reviewed section {i} and approved it. "
        paragraphs.append(paragraph)
        count += counter.count_text(O200K_MODEL, paragraph)
        i += 1
    return "".join(paragraphs)


def split_shortened(text: str) -> tuple[str, int, str]:
    """Head, omitted count and tail of a shortened text (exactly one marker)."""
    found = MARKER.findall(text)
    assert len(found) == 1, text[:200]
    head, tail = MARKER.split(text)[0], MARKER.split(text)[2]
    return head, int(found[0]), tail


def assert_shortened(original: str, sent: str, limit: int, counter: TokenCounter) -> None:
    head, omitted, tail = split_shortened(sent)
    assert original.startswith(head) and original.endswith(tail)
    assert head and tail
    assert counter.count_text(O200K_MODEL, sent) <= limit
    whole = counter.count_text(O200K_MODEL, original)
    kept = counter.count_text(O200K_MODEL, head) + counter.count_text(O200K_MODEL, tail)
    assert abs(omitted - (whole - kept)) <= 4  # the marker tells the truth, to a token or so


def assert_calls_paired(messages: list[dict[str, Any]]) -> None:
    """Every tool message answers a call of the assistant message right before its run of
    tool messages, and every call is answered."""
    open_calls: list[str] = []
    for m in messages:
        if m["role"] == "tool":
            assert open_calls and m["tool_call_id"] == open_calls.pop(0), messages
            continue
        assert not open_calls, f"calls {open_calls} left without outputs"
        if m["role"] == "assistant" and "tool_calls" in m:
            open_calls = [c["id"] for c in m["tool_calls"]]
    assert not open_calls


def test_opening_task_survives_300_fillers_under_a_4k_window(counter: TokenCounter) -> None:
    task = (
        "Task: you are auditing invoice batch 7731. Flag every invoice whose VAT rate differs "
        "from the supplier's contract rate, and answer in a table with the invoice number, the "
        "rate charged and the contract rate. Be strict about rounding."
    )
    msgs = [
        stored(counter, "user", task),
        stored(counter, "assistant", "Understood: I will flag VAT mismatches in batch 7731."),
    ]
    msgs += [stored(counter, "user" if i % 2 == 0 else "assistant", filler(i)) for i in range(300)]
    msgs.append(stored(counter, "user", "Which invoices did you flag so far?"))
    result = build_prompt(
        request(
            msgs,
            instructions="You are a careful auditor.",
            context_window=WINDOW_4K,
            completion_reserve=RESERVE_4K,
        ),
        counter,
    )

    sent = [m["content"] for m in result.messages]
    assert sent[:3] == ["You are a careful auditor.", task, msgs[1].text]
    assert sent[-1] == "Which invoices did you flag so far?"
    # The middle is gone, what is left of it is its newest contiguous part.
    kept_fillers = sent[3:-1]
    assert 0 < len(kept_fillers) < 300
    assert kept_fillers == [filler(i) for i in range(300 - len(kept_fillers), 300)]
    assert result.dropped == 300 - len(kept_fillers)
    assert result.fits and result.shortened == 0
    assert result.prompt_tokens == recount(counter, O200K_MODEL, result.messages)
    assert result.prompt_tokens <= WINDOW_4K - RESERVE_4K
    next_older = msgs[2 + 300 - len(kept_fillers) - 1]
    assert result.prompt_tokens + message_cost(counter, O200K_MODEL, next_older) > 2_048


def test_old_pasted_document_is_shortened_not_everything_pushed_out(
    counter: TokenCounter,
) -> None:
    doc = document(counter, 30_000)
    msgs = [
        stored(counter, "user", "Hi, I will paste the minutes."),
        stored(counter, "assistant", "Go ahead."),
        stored(counter, "user", doc),
        stored(counter, "assistant", "Got the minutes: 30 sections approved."),
        stored(counter, "user", "Which section came last?"),
    ]
    window, reserve = 16_384, 4_096
    result = build_prompt(request(msgs, context_window=window, completion_reserve=reserve), counter)

    limit = shorten_limit(window - reserve)
    assert limit == (window - reserve) // 8
    assert result.fits and result.dropped == 0 and result.shortened == 1
    sent = [m["content"] for m in result.messages]
    assert [s for i, s in enumerate(sent) if i != 2] == [
        m.text for i, m in enumerate(msgs) if i != 2
    ]
    assert_shortened(doc, sent[2], limit, counter)
    head, omitted, tail = split_shortened(sent[2])
    assert head.startswith("Paragraph 0.") and tail.endswith("approved it. ")
    assert omitted > counter.count_text(O200K_MODEL, doc) - limit - 20
    assert (
        result.prompt_tokens == recount(counter, O200K_MODEL, result.messages) <= window - reserve
    )


def test_only_as_many_long_texts_are_shortened_as_needed_oldest_first(
    counter: TokenCounter,
) -> None:
    old, newer = document(counter, 3_000), document(counter, 3_000) + "Addendum."
    msgs = [
        stored(counter, "user", "start"),
        stored(counter, "assistant", "ok"),
        stored(counter, "user", old),
        stored(counter, "assistant", "noted"),
        stored(counter, "user", newer),
        stored(counter, "assistant", "noted again"),
        stored(counter, "user", "question"),
    ]
    whole = build_prompt(request(msgs), counter).prompt_tokens
    # 100 tokens short: shortening one of the documents (to an eighth) is enough.
    result = build_prompt(request(msgs, context_window=whole - 100), counter)
    assert result.fits and result.dropped == 0 and result.shortened == 1
    sent = [m["content"] for m in result.messages]
    assert_shortened(old, sent[2], (whole - 100) // 8, counter)
    assert sent[4] == newer


def test_the_marker_cut_keeps_utf8_valid_on_emoji_and_cjk(counter: TokenCounter) -> None:
    # Rare characters and emoji sequences: tiktoken splits many of them into several byte
    # tokens, so a token boundary can fall inside one character.
    text = "".join(
        f"{i}:漢字仮名交じり文、鬱蒼とした森🧑🏽‍🚀👩‍🔬🏳️‍🌈 عربى ℵ₀ {FRAKTUR} " for i in range(400)
    )
    encoding = counter.encoding(O200K_BASE)
    ids = encoding.encode(text)
    raw_cuts = 0
    for k in range(1, 400):
        try:
            encoding.decode_bytes(ids[:k]).decode("utf-8")
        except UnicodeDecodeError:
            raw_cuts += 1
    assert raw_cuts > 50, "the text must have token boundaries inside characters"

    whole = stored(counter, "user", text)
    for limit in range(MIN_SHORTENED_TOKENS, 400, 7):
        budget = limit * 8
        msgs = [stored(counter, "user", "go"), stored(counter, "assistant", "ok"), whole]
        msgs += [stored(counter, "assistant", "x"), stored(counter, "user", "and?")]
        result = build_prompt(request(msgs, context_window=budget), counter)
        sent = result.messages[2]["content"]
        assert result.fits and result.shortened == 1, limit
        sent.encode("utf-8")  # no lone surrogates
        assert "\ufffd" not in sent
        head, _, tail = split_shortened(sent)
        assert text.startswith(head) and text.endswith(tail)
        assert counter.count_text(O200K_MODEL, sent) <= limit
        assert result.prompt_tokens == recount(counter, O200K_MODEL, result.messages)


def earlier_round(after: int, call_id: str, output: str, name: str = "lookup") -> ToolRound:
    return ToolRound(after, None, (ToolCallRecord(call_id, name, '{"q":"x"}', output),))


def test_earlier_runs_rounds_are_dropped_first_and_whole(counter: TokenCounter) -> None:
    msgs = [
        stored(counter, "user" if i % 2 == 0 else "assistant", f"message {i} " * 20)
        for i in range(9)
    ]
    # Earlier runs: each answer (odd index) preceded by the calls it made.
    two_calls = ToolRound(
        3,
        "checking",
        (
            ToolCallRecord("call_a", "lookup", '{"q":"a"}', "result a " * 30),
            ToolCallRecord("call_b", "lookup", '{"q":"b"}', "result b " * 30),
        ),
    )
    earlier = [earlier_round(1, "call_0", "zero " * 30), two_calls]
    earlier.append(earlier_round(5, "call_5", "five " * 30))
    earlier.append(earlier_round(7, "call_7", "seven " * 30))
    everything = build_prompt(request(msgs, earlier_rounds=earlier), counter)
    assert everything.dropped == 0 and everything.dropped_rounds == 0
    assert_calls_paired(everything.messages)
    assert everything.prompt_tokens == recount(counter, O200K_MODEL, everything.messages)

    # Room for every message but not every round: the oldest rounds go, messages stay.
    budget = everything.prompt_tokens - 50
    result = build_prompt(request(msgs, earlier_rounds=earlier, context_window=budget), counter)
    assert result.dropped == 0 and 0 < result.dropped_rounds < 4
    assert_calls_paired(result.messages)
    ids = [m["tool_call_id"] for m in result.messages if m["role"] == "tool"]
    by_round = [["call_0"], ["call_a", "call_b"], ["call_5"], ["call_7"]]
    assert ids == [i for r in by_round[result.dropped_rounds :] for i in r]  # oldest went first
    assert result.prompt_tokens == recount(counter, O200K_MODEL, result.messages) <= budget

    # No room for the rounds at all: every round goes before the first message does.
    no_rounds = build_prompt(request(msgs), counter)
    small = build_prompt(
        request(msgs, earlier_rounds=earlier, context_window=no_rounds.prompt_tokens), counter
    )
    assert small.dropped == 0 and small.dropped_rounds == 4
    assert small.messages == no_rounds.messages

    # Tighter still: messages go too; what is left stays paired.
    for window in range(120, no_rounds.prompt_tokens, 37):
        tight = build_prompt(request(msgs, earlier_rounds=earlier, context_window=window), counter)
        assert_calls_paired(tight.messages)
        assert tight.prompt_tokens == recount(counter, O200K_MODEL, tight.messages)
        assert tight.dropped_rounds == 4 or tight.dropped == 0


def test_a_long_earlier_tool_output_is_shortened_before_anything_is_dropped(
    counter: TokenCounter,
) -> None:
    output = document(counter, 5_000)
    msgs = [stored(counter, "user", "look it up"), stored(counter, "assistant", "found it")]
    msgs.append(stored(counter, "user", "thanks, now summarise"))
    earlier = [earlier_round(1, "call_1", output)]
    result = build_prompt(request(msgs, earlier_rounds=earlier, context_window=4_000), counter)
    assert result.fits and result.dropped == 0 and result.dropped_rounds == 0
    assert result.shortened == 1
    assert_calls_paired(result.messages)
    tool = next(m for m in result.messages if m["role"] == "tool")
    assert_shortened(output, tool["content"], 500, counter)
    assert result.prompt_tokens == recount(counter, O200K_MODEL, result.messages) <= 4_000


def test_the_current_runs_rounds_stay_after_earlier_ones(counter: TokenCounter) -> None:
    msgs = [stored(counter, "user", "q1"), stored(counter, "assistant", "a1")]
    msgs.append(stored(counter, "user", "q2"))
    earlier = [earlier_round(1, "call_old", "old")]
    current = [earlier_round(3, "call_new", "new")]
    result = build_prompt(request(msgs, rounds=current, earlier_rounds=earlier), counter)
    assert [(m["role"], m.get("tool_call_id")) for m in result.messages] == [
        ("user", None),
        ("assistant", None),
        ("tool", "call_old"),
        ("assistant", None),
        ("user", None),
        ("assistant", None),
        ("tool", "call_new"),
    ]


def test_a_giant_newest_message_is_shortened_as_a_last_resort(counter: TokenCounter) -> None:
    doc = document(counter, 20_000)
    msgs = [
        stored(counter, "user", "an older question"),
        stored(counter, "assistant", "an older answer"),
        stored(counter, "user", doc),
    ]
    current = [earlier_round(3, "call_now", "the current run's output")]
    result = build_prompt(
        request(
            msgs,
            instructions="Summarise.",
            rounds=current,
            context_window=WINDOW_4K,
            completion_reserve=RESERVE_4K,
        ),
        counter,
    )
    assert result.fits
    assert result.dropped == 2  # everything else went first
    assert [m["role"] for m in result.messages] == ["system", "user", "assistant", "tool"]
    head, _, tail = split_shortened(result.messages[1]["content"])
    assert doc.startswith(head) and doc.endswith(tail)
    assert result.messages[-1]["content"] == "the current run's output"  # short: kept whole
    budget = WINDOW_4K - RESERVE_4K
    assert result.prompt_tokens == recount(counter, O200K_MODEL, result.messages) <= budget
    assert result.prompt_tokens > budget - 20  # it uses what there is room for


def test_instructions_alone_over_budget_still_do_not_fit(counter: TokenCounter) -> None:
    doc = document(counter, 5_000)
    msgs = [stored(counter, "user", doc)]
    result = build_prompt(
        request(
            msgs,
            instructions="rule " * 2_100,
            context_window=WINDOW_4K,
            completion_reserve=RESERVE_4K,
        ),
        counter,
    )
    assert not result.fits
    assert result.shortened == 0  # nothing is encoded for a prompt that is not sent
    assert [m["content"] for m in result.messages][1] == doc


def test_the_opening_answer_goes_before_the_opening(counter: TokenCounter) -> None:
    msgs = [
        stored(counter, "user", "the task " * 10),  # too short to be shortened
        stored(counter, "assistant", "the answer " * 10),
        stored(counter, "assistant", "more"),
        stored(counter, "user", "now " * 200),
    ]
    costs = [message_cost(counter, O200K_MODEL, m) for m in msgs]
    # Room for the newest message and the opening's question only.
    budget = REPLY_PRIMING_TOKENS + costs[3] + costs[0] + costs[1] // 2
    result = build_prompt(request(msgs, context_window=budget), counter)
    assert roles_and_text(result.messages) == [
        ("user", msgs[0].text),
        ("user", msgs[3].text),
    ]
    assert result.fits and result.dropped == 2


def test_last_messages_shortens_the_newest_n_when_they_do_not_fit(counter: TokenCounter) -> None:
    doc = document(counter, 3_000)
    msgs = [stored(counter, "user", "old"), stored(counter, "assistant", "older answer")]
    msgs += [stored(counter, "user", doc), stored(counter, "assistant", "read it")]
    msgs.append(stored(counter, "user", "so?"))
    result = build_prompt(
        request(msgs, truncation="last_messages", last_messages=3, context_window=2_000), counter
    )
    assert result.dropped == 2 and result.fits and result.shortened == 1
    sent = [m["content"] for m in result.messages]
    assert sent[1:] == ["read it", "so?"]
    assert_shortened(doc, sent[0], 250, counter)
    assert result.prompt_tokens == recount(counter, O200K_MODEL, result.messages) <= 2_000

    # N = 1 on the document itself: the last resort shortens it to what there is room for.
    alone = build_prompt(
        request(msgs[:3], truncation="last_messages", last_messages=1, context_window=1_000),
        counter,
    )
    assert alone.fits and alone.dropped == 2
    assert 900 < alone.prompt_tokens <= 1_000


def test_images_stay_with_their_shortened_text(counter: TokenCounter) -> None:
    doc = document(counter, 3_000)
    images = (ImageRef("https://example.com/scan.png", None, None),)
    msgs = [stored(counter, "user", doc, images), stored(counter, "assistant", "a")]
    msgs.append(stored(counter, "user", "q"))
    result = build_prompt(request(msgs, context_window=2_000), counter)
    assert result.fits and result.shortened == 1
    parts = result.messages[0]["content"]
    assert [p["type"] for p in parts] == ["text", "image_url"]
    assert_shortened(doc, parts[0]["text"], 250, counter)
    assert result.prompt_tokens == recount(counter, O200K_MODEL, result.messages)


def test_only_the_shortened_text_is_encoded_whole(counter: TokenCounter) -> None:
    spy = SpyCounter()
    doc = document(counter, 20_000)
    msgs = [stored(counter, "user", doc), stored(counter, "assistant", "ok")]
    msgs += [stored(counter, "user", f"q{i}") for i in range(50)]
    result = build_prompt(request(msgs, context_window=8_000), spy)
    assert result.shortened == 1
    assert doc not in spy.counted  # its stored count is used; only the result is counted
    assert result.messages[0]["content"] in spy.counted


def test_shorten_fraction_sets_the_limit(counter: TokenCounter) -> None:
    doc = document(counter, 3_000)
    msgs = [stored(counter, "user", doc), stored(counter, "assistant", "a")]
    msgs += [stored(counter, "user", "filler " * 50) for _ in range(40)]
    for fraction in (0.05, 0.125, 0.25):
        result = build_prompt(
            request(msgs, context_window=4_000, shorten_fraction=fraction), counter
        )
        limit = shorten_limit(4_000, fraction)
        assert limit == max(int(4_000 * fraction), MIN_SHORTENED_TOKENS)
        assert_shortened(doc, result.messages[0]["content"], limit, counter)
        assert counter.count_text(O200K_MODEL, result.messages[0]["content"]) > limit - 20


def test_the_shorten_fraction_setting() -> None:
    env = {"ASSISTANTS_TRUNCATION_SHORTEN_FRACTION": "0.25"}
    assert Settings.load(env=env).truncation_shorten_fraction == 0.25
    assert Settings.load(env={}).truncation_shorten_fraction == prompt.DEFAULT_SHORTEN_FRACTION
    assert (
        Settings.load({"truncation_shorten_fraction": 0.5}, env=env).truncation_shorten_fraction
        == 0.5
    )
    assert check_shorten_fraction(1.0) == 1.0
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="truncation_shorten_fraction"):
            check_shorten_fraction(bad)
