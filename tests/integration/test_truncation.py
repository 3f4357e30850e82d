"""`auto` truncation end to end: a real server with a small context window in its models config,
and what the model server received (issue 15). The expected prompts are built with the prompt
builder from the same texts, so these tests check what reaches the model, the usage reported
for it, and that the engine hands the builder the opening and earlier runs' rounds."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from assistants_grpc.clock import ManualClock
from assistants_grpc.contract.pb import message_pb2, run_pb2, thread_pb2
from assistants_grpc.engine.prompt import (
    Prompt,
    PromptRequest,
    ThreadMessage,
    ToolCallRecord,
    ToolRound,
    build_prompt,
)
from assistants_grpc.engine.tokens import O200K_BASE, TokenCounter
from assistants_grpc.fake_model import FakeModelServer, TextReply, ToolCallsReply
from tests.conftest import RunningServer, serving, start_server
from tests.integration.helpers import function_tool, text_input
from tests.integration.runs_helpers import collect, make_assistant, names

R = run_pb2
MODEL = "small"
WINDOW = 4_096
BUDGET = WINDOW - WINDOW // 2  # the executor keeps half of a small window for the answer
MARKER = re.compile(r"\n\[… \d+ tokens omitted …\]\n")
ASSISTANT = message_pb2.MESSAGE_ROLE_ASSISTANT


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    tc = TokenCounter()
    tc.preload()
    return tc


@pytest.fixture
async def small(
    database_url: str, fake_model: FakeModelServer, tmp_path: Path
) -> AsyncIterator[RunningServer]:
    config = tmp_path / "models.toml"
    config.write_text(
        f'[models."{MODEL}"]\ncontext_window = {WINDOW}\n'
        '[models."medium"]\ncontext_window = 16384\n'
    )
    async with serving(database_url, fake_model, models_config=str(config)) as server:
        yield server


def document(counter: TokenCounter, tokens: int) -> str:
    paragraphs: list[str] = []
    count = i = 0
    while count < tokens:
        paragraph = f"Paragraph {i}. The committee reviewed section {i} and approved it. "
        paragraphs.append(paragraph)
        count += counter.count_text("gpt-4o", paragraph)
        i += 1
    return "".join(paragraphs)


def expected_prompt(
    counter: TokenCounter,
    turns: list[tuple[str, str]],
    *,
    instructions: str | None = None,
    window: int = WINDOW,
    earlier: tuple[ToolRound, ...] = (),
    tools: list[dict[str, Any]] | None = None,
) -> Prompt:
    """The prompt the builder makes of `turns` (role, text), counted as the store counts."""
    messages = [
        ThreadMessage(role, text, (), counter.count_text("gpt-4o", text), O200K_BASE)
        for role, text in turns
    ]
    request = PromptRequest(
        model=MODEL,
        instructions=instructions,
        messages=messages,
        rounds=(),
        tools=tools or [],
        truncation="auto",
        last_messages=None,
        context_window=window,
        completion_reserve=min(4_096, window // 2),
        earlier_rounds=earlier,
    )
    return build_prompt(request, counter)


async def run_on(
    server: RunningServer, thread_id: str, assistant_id: str, **fields: Any
) -> list[R.RunEvent]:
    return await collect(
        server.stubs.runs.CreateRunStream(
            R.CreateRunRequest(thread_id=thread_id, assistant_id=assistant_id, **fields)
        )
    )


async def new_thread(server: RunningServer, turns: list[tuple[str, str]]) -> str:
    roles = {"user": message_pb2.MESSAGE_ROLE_USER, "assistant": ASSISTANT}
    thread = await server.stubs.threads.CreateThread(
        thread_pb2.CreateThreadRequest(
            messages=[text_input(text, roles[role]) for role, text in turns]
        )
    )
    return thread.id


async def test_the_opening_and_the_newest_messages_reach_the_model(
    small: RunningServer, counter: TokenCounter
) -> None:
    task = (
        "Task: audit invoice batch 7731 and flag every invoice whose VAT rate differs from the "
        "supplier's contract rate; answer as a table."
    )
    turns = [("user", task), ("assistant", "Understood: batch 7731, VAT mismatches.")]
    turns += [
        ("user" if i % 2 == 0 else "assistant", f"Filler {i}: nothing to report on item {i}.")
        for i in range(300)
    ]
    turns.append(("user", "Which invoices did you flag so far?"))
    thread_id = await new_thread(small, turns)
    assistant = await make_assistant(small.stubs, model=MODEL, instructions="Be careful.")
    small.model.push(TextReply("None yet.", report_usage=False))
    events = await run_on(small, thread_id, assistant.id)

    assert names(events)[-2:] == ["thread.run.completed", "done"]
    expected = expected_prompt(counter, turns, instructions="Be careful.")
    sent = small.model.requests[-1]["messages"]
    assert sent == expected.messages
    assert [m["content"] for m in sent[:3]] == ["Be careful.", task, turns[1][1]]
    assert sent[-1]["content"] == "Which invoices did you flag so far?"
    assert 0 < expected.dropped < 300 and expected.fits
    # The endpoint reported no usage: the run reports the count of the prompt that was sent.
    run = events[-2].run
    assert run.usage.prompt_tokens == expected.prompt_tokens <= BUDGET


async def test_an_old_document_is_sent_shortened(
    small: RunningServer, counter: TokenCounter
) -> None:
    doc = document(counter, 30_000)
    turns = [
        ("user", "I will paste the minutes."),
        ("assistant", "Go ahead."),
        ("user", doc),
        ("assistant", "Got them."),
        ("user", "Which section came last?"),
    ]
    thread_id = await new_thread(small, turns)
    assistant = await make_assistant(small.stubs, model="medium")
    small.model.push(TextReply("The last one."))
    events = await run_on(small, thread_id, assistant.id)

    assert names(events)[-2:] == ["thread.run.completed", "done"]
    expected = expected_prompt(counter, turns, window=16_384)
    sent = small.model.requests[-1]["messages"]
    assert sent == expected.messages
    assert expected.dropped == 0 and expected.shortened == 1
    head, tail = MARKER.split(sent[2]["content"])
    assert doc.startswith(head) and doc.endswith(tail)
    assert [m["content"] for i, m in enumerate(sent) if i != 2] == [
        text for i, (_, text) in enumerate(turns) if i != 2
    ]
    # The endpoint's own count is what the run reports: the fake model's is the characters of
    # what it received over 4, here of the shortened prompt.
    received = sum(len(m["content"]) for m in sent) // 4
    assert events[-2].run.usage.prompt_tokens == received < len(doc) // 8


async def test_earlier_runs_tool_calls_reach_the_model_paired_and_shortened(
    small: RunningServer, counter: TokenCounter
) -> None:
    stubs, model = small.stubs, small.model
    lookup = function_tool("lookup", type="object", properties={"q": {"type": "string"}})
    assistant = await make_assistant(stubs, model=MODEL, tools=[lookup])
    thread_id = await new_thread(small, [("user", "Look up the minutes.")])
    arguments = json.dumps({"q": "minutes"})
    model.push(ToolCallsReply([("lookup", arguments)]), TextReply("Found them."))
    paused = (await run_on(small, thread_id, assistant.id))[-2].run
    call_id = paused.required_action.submit_tool_outputs.tool_calls[0].id
    output = document(counter, 3_000)
    finished = await collect(
        stubs.runs.SubmitToolOutputsStream(
            R.SubmitToolOutputsRequest(
                thread_id=thread_id,
                run_id=paused.id,
                tool_outputs=[R.ToolOutput(tool_call_id=call_id, output=output)],
            )
        )
    )
    assert names(finished)[-2:] == ["thread.run.completed", "done"]
    # The run's own second turn: its round is kept always, and its output shortened as a last
    # resort, since it alone does not fit the window.
    own_turn = model.requests[-1]["messages"]
    assert own_turn[-1]["tool_call_id"] == call_id
    assert MARKER.search(own_turn[-1]["content"])

    await stubs.messages.CreateMessage(
        message_pb2.CreateMessageRequest(
            thread_id=thread_id,
            role=message_pb2.MESSAGE_ROLE_USER,
            content=[message_pb2.MessageContentInput(text="Summarise them.")],
        )
    )
    model.push(TextReply("Summary."))
    events = await run_on(small, thread_id, assistant.id)
    assert names(events)[-2:] == ["thread.run.completed", "done"]

    sent = model.requests[-1]["messages"]
    assert [(m["role"], m.get("tool_call_id")) for m in sent] == [
        ("user", None),
        ("assistant", None),
        ("tool", call_id),
        ("assistant", None),
        ("user", None),
    ]
    assert sent[1]["tool_calls"] == [
        {"id": call_id, "type": "function", "function": {"name": "lookup", "arguments": arguments}}
    ]
    head, tail = MARKER.split(sent[2]["content"])
    assert output.startswith(head) and output.endswith(tail)
    earlier = (ToolRound(1, None, (ToolCallRecord(call_id, "lookup", arguments, output),)),)
    turns = [("user", "Look up the minutes."), ("assistant", "Found them.")]
    turns.append(("user", "Summarise them."))
    tools = model.requests[-1]["tools"]
    assert sent == expected_prompt(counter, turns, earlier=earlier, tools=tools).messages


async def test_a_giant_newest_message_is_sent_shortened(
    small: RunningServer, counter: TokenCounter
) -> None:
    doc = document(counter, 20_000)
    thread_id = await new_thread(small, [("user", "old"), ("assistant", "older"), ("user", doc)])
    assistant = await make_assistant(small.stubs, model=MODEL)
    small.model.push(TextReply("Read it.", report_usage=False))
    events = await run_on(small, thread_id, assistant.id)

    assert names(events)[-2:] == ["thread.run.completed", "done"]
    sent = small.model.requests[-1]["messages"]
    assert len(sent) == 1
    head, tail = MARKER.split(sent[0]["content"])
    assert doc.startswith(head) and doc.endswith(tail)
    turns = [("user", "old"), ("assistant", "older"), ("user", doc)]
    expected = expected_prompt(counter, turns)
    assert sent == expected.messages
    assert events[-2].run.usage.prompt_tokens == expected.prompt_tokens <= BUDGET


async def test_instructions_over_the_budget_end_the_run_incomplete(small: RunningServer) -> None:
    thread_id = await new_thread(small, [("user", "hi")])
    assistant = await make_assistant(small.stubs, model=MODEL, instructions="rule " * 2_100)
    before = len(small.model.requests)
    events = await run_on(small, thread_id, assistant.id)
    assert names(events)[-2:] == ["thread.run.incomplete", "done"]
    reason = events[-2].run.incomplete_details.reason
    assert reason == R.RUN_INCOMPLETE_REASON_MAX_PROMPT_TOKENS
    assert len(small.model.requests) == before  # nothing was sent


async def test_a_server_refuses_a_shorten_fraction_out_of_range(
    database_url: str, fake_model: FakeModelServer
) -> None:
    with pytest.raises(ValueError, match="truncation_shorten_fraction"):
        await start_server(database_url, ManualClock(), fake_model, truncation_shorten_fraction=0)
