"""Executes one turn of a run: build the prompt, stream the model, turn what it says into steps,
messages and events, and leave the run completed, incomplete, failed, cancelled, expired or
waiting for tool outputs.

Two tasks cooperate. A reader task only reads the model stream and puts what it gets into the
turn's inbox; the turn loop takes from the inbox and writes. A cancel or an expiry is one more item
in the same inbox, so the loop reacts to it between writes (never half-way through a transaction)
and stops the reader, which closes the HTTP stream at once.

Deltas are coalesced: the first text goes out as soon as it arrives (latency to the first token is
what callers feel), later ones are written at most every `flush_interval` seconds, each write one
transaction holding the rows and the events, published after it commits. Each gRPC event costs
far more CPU than a row, so this is what makes runs cheap.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import Connection, RowMapping, bindparam, update

from assistants_grpc.contract.openai_json import render_value
from assistants_grpc.contract.pb import common_pb2, message_pb2, run_pb2
from assistants_grpc.engine import transitions as tr
from assistants_grpc.engine.context import TurnContext, load_turn_context
from assistants_grpc.engine.model_stream import (
    Finished,
    ModelError,
    ModelEvent,
    RefusalDelta,
    TextDelta,
    ToolCallArguments,
    ToolCallStarted,
    UsageReport,
    stream_completion,
)
from assistants_grpc.engine.models import ModelRoute, ModelRouter
from assistants_grpc.engine.prompt import (
    DEFAULT_SHORTEN_FRACTION,
    Prompt,
    PromptRequest,
    build_prompt,
    chat_tools,
    check_shorten_fraction,
    shorten_limit,
)
from assistants_grpc.engine.tokens import COUNTING_ENCODING, COUNTING_MODEL, TokenCounter
from assistants_grpc.events import log
from assistants_grpc.events.bus import EventBus
from assistants_grpc.services.deps import Dependencies
from assistants_grpc.store import repository as repo
from assistants_grpc.store.mapping import (
    message_from_row,
    message_values,
    run_from_row,
    step_values,
)

# Why a turn is interrupted. "handback": the replica is stopping; the run keeps its state and its
# lease is released so another replica (or the next start) takes it over.
# "deleted": the run went with its thread; nothing is left to write.
Reason = Literal["cancel", "expire", "handback", "deleted"]
RunEvent = run_pb2.RunEvent
# A run's columns: its row as read, or the values its creating transaction just wrote.
RunRow = Mapping[Any, Any]

# How long a turn waits, after its first text, for the local streams to send it.
FIRST_DELIVERY_WAIT = 0.01
# Tokens kept free for the answer when the run sets no completion budget.
DEFAULT_COMPLETION_RESERVE = 4096


@dataclass(frozen=True)
class Interrupt:
    reason: Reason


@dataclass(frozen=True)
class _StreamEnd:
    error: ModelError | None = None


@dataclass
class RunControl:
    """The line into a running turn: the scheduler interrupts it here (cancel, expiry, handback).

    `owner` is this replica's lease name; a turn starts only if it can take the run's lease.
    """

    run_id: str
    owner: str
    lease_seconds: float
    inbox: asyncio.Queue[object] = field(default_factory=asyncio.Queue)
    reason: Reason | None = None

    def lease_values(self, wall_clock: float) -> dict[str, Any]:
        """The run's columns that say this replica holds it, from `wall_clock` on."""
        return {"lease_owner": self.owner, "lease_expires_at": wall_clock + self.lease_seconds}

    def interrupt(self, reason: Reason) -> None:
        if self.reason is None:
            self.reason = reason
            self.inbox.put_nowait(Interrupt(reason))


_ENDINGS: dict[Reason, tr.Ending] = {"cancel": tr.CANCELLED, "expire": tr.EXPIRED}

Started = tuple[RunRow, TurnContext]
"""A run moved to in_progress by this replica, with what its turn's prompt is built from."""


# What the first write of a turn is made of: the reader pauses after it (see _Turn._read).
_FIRST_WRITE = (TextDelta, RefusalDelta, ToolCallStarted)


@dataclass
class _Call:
    index: int
    id: str
    name: str
    arguments: str = ""


class RunExecutor:
    def __init__(
        self,
        deps: Dependencies,
        router: ModelRouter,
        bus: EventBus,
        *,
        flush_interval: float = 0.025,
        shorten_fraction: float = DEFAULT_SHORTEN_FRACTION,
    ) -> None:
        self._deps = deps
        self._router = router
        self._bus = bus
        self._flush_interval = flush_interval
        self._shorten_fraction = check_shorten_fraction(shorten_fraction)

    @property
    def tokens(self) -> TokenCounter:
        return self._deps.tokens

    async def _write(self, run_id: str, work: Any) -> Any:
        """Run `work(connection) -> (result, events)` in one transaction, then publish."""
        result, events = await self._deps.database.transaction(work)
        self._bus.publish(run_id, events)
        return result

    async def execute(self, run_id: str, control: RunControl) -> None:
        start = await self._write(run_id, lambda c: self._start(c, control))
        if start is not None:
            await self.continue_started(start, control)

    async def continue_started(self, start: Started, control: RunControl) -> None:
        """The rest of a turn once its run is in progress and its context loaded."""
        run_id = control.run_id
        run_row, context = start
        if control.reason == "deleted":
            return
        if control.reason == "handback":
            await self._deps.database.transaction(lambda c: release_lease(c, run_id, control.owner))
            return
        if control.reason is not None:
            await self._end(run_id, _ENDINGS[control.reason], control.owner)
            return
        turn = _Turn(self, run_row, context, control)
        await turn.run()

    def _start(
        self, connection: Connection, control: RunControl
    ) -> tuple[Started | None, list[RunEvent]]:
        """Take the run's lease and move it to in_progress (or end it, if it is cancelling or
        was left half-written by a replica that died). Nothing, if another replica holds it."""
        run_id = control.run_id
        row = tr.load_run(connection, run_id, lock=True)
        if row is None or row["status"] not in ("queued", "in_progress", "cancelling"):
            return None, []
        wall = time.time()
        if tr.held_elsewhere(row, control.owner, wall):
            return None, []
        lease = control.lease_values(wall)
        status, now = row["status"], self._deps.now()
        if status != "queued":
            repo.update_by_id(connection, repo.RUNS, run_id, lease)
        if status == "cancelling":
            return None, tr.finish_run(connection, row, tr.CANCELLED, now)
        if status == "in_progress" and tr.open_steps(connection, run_id):
            # A worker died half-way through writing a step: what the model said next is lost.
            ending = tr.failed("server_error", "The run was interrupted by a server restart.")
            return None, tr.finish_run(connection, row, ending, now)
        events: list[RunEvent] = []
        if status == "queued":
            values: dict[str, Any] = {"status": "in_progress", "started_at": now, **lease}
            row = {**row, **values}  # type: ignore[assignment]
            run = run_from_row(row)
            events = log.append(
                connection,
                run_id,
                row["thread_id"],
                [tr.event("thread.run.in_progress", run=run)],
                values,
            )
        return (row, self.load_context(connection, row)), events

    def load_context(self, connection: Connection, run_row: RunRow) -> TurnContext:
        """What the next turn of this run builds its prompt from."""
        budget, last_messages = self._read_limits(run_row)
        return load_turn_context(
            connection,
            run_row["thread_id"],
            run_row["id"],
            token_budget=budget,
            last_messages=last_messages,
            shorten_at=(
                shorten_limit(budget, self._shorten_fraction) if last_messages is None else None
            ),
        )

    def _read_limits(self, run_row: RunRow) -> tuple[int, int | None]:
        """The most prompt tokens a turn of this run can send, and its last_messages: what the
        context loader needs to skip messages that cannot be in the prompt."""
        window = self._router.route(run_row["model"]).context_window
        budget = window - _completion_reserve(window, run_row["max_completion_tokens"])
        if run_row["max_prompt_tokens"] is not None:
            budget = min(budget, run_row["max_prompt_tokens"])
        strategy = run_row["truncation_strategy"] or {}
        last = strategy.get("last_messages") if strategy.get("type") == "last_messages" else None
        return budget, last

    async def _end(self, run_id: str, ending: tr.Ending, owner: str) -> None:
        await self._write(
            run_id, lambda c: (None, tr.end_if_active(c, run_id, ending, self._deps.now(), owner))
        )

    # --- the model call's parameters ------------------------------------------------------

    def prompt_for(
        self, run_row: RunRow, context: TurnContext, route: ModelRoute, tools: list[Any]
    ) -> tuple[Prompt, int | None]:
        """The prompt, and the completion budget left (None when the run sets none)."""
        completion_left = None
        if run_row["max_completion_tokens"] is not None:
            completion_left = run_row["max_completion_tokens"] - context.completion_tokens_used
        prompt_left = None
        if run_row["max_prompt_tokens"] is not None:
            prompt_left = run_row["max_prompt_tokens"] - context.prompt_tokens_used
        strategy = run_row["truncation_strategy"] or {"type": "auto", "last_messages": None}
        request = PromptRequest(
            model=run_row["model"],
            instructions=run_row["instructions"],
            messages=context.messages,
            rounds=context.rounds,
            tools=tools,
            truncation=strategy["type"],
            last_messages=strategy.get("last_messages"),
            context_window=route.context_window,
            completion_reserve=_completion_reserve(route.context_window, completion_left),
            max_prompt_tokens=prompt_left,
            earlier_rounds=context.earlier_rounds,
            shorten_fraction=self._shorten_fraction,
        )
        return build_prompt(request, self.tokens), completion_left

    def params_for(
        self,
        run_row: RunRow,
        prompt: Prompt,
        completion_left: int | None,
        route: ModelRoute,
        tools: list[Any],
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"model": route.upstream_model, "messages": prompt.messages}
        for name in ("temperature", "top_p"):
            if run_row[name] is not None:
                params[name] = run_row[name]
        if tools:
            params["tools"] = tools
            params["parallel_tool_calls"] = run_row["parallel_tool_calls"]
            choice = _chat_tool_choice(run_row["tool_choice"])
            if choice is not None:
                params["tool_choice"] = choice
        response_format = _chat_response_format(run_row["response_format"])
        if response_format is not None:
            params["response_format"] = response_format
        if completion_left is not None:
            params["max_completion_tokens"] = completion_left
        if run_row["reasoning_effort"]:
            params["reasoning_effort"] = run_row["reasoning_effort"]
        return params

    def route(self, model: str) -> ModelRoute:
        return self._router.route(model)

    def client_for(self, model: str) -> Any:
        return self._router.client_for(model)


def _completion_reserve(window: int, completion_left: int | None) -> int:
    """Tokens kept free for the answer: the completion budget left, or a default, and never
    more than half the context window."""
    wanted = completion_left if completion_left is not None else DEFAULT_COMPLETION_RESERVE
    return max(min(wanted, window // 2), 0)


def _chat_tool_choice(choice: Any) -> Any:
    if choice is None or isinstance(choice, str):
        return choice
    if choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice["function"]["name"]}}
    return None  # file_search / code_interpreter do not run here; let the model choose


def _chat_response_format(fmt: Any) -> Any:
    if fmt is None or fmt == "auto":
        return None
    if fmt.get("type") == "json_schema":
        schema = {k: v for k, v in fmt["json_schema"].items() if v is not None}
        return {"type": "json_schema", "json_schema": schema}
    return {"type": fmt["type"]}


class _Turn:
    """The state of one model turn between writes."""

    def __init__(
        self,
        executor: RunExecutor,
        run_row: RunRow,
        context: TurnContext,
        control: RunControl,
    ) -> None:
        self.x = executor
        self.run_row = run_row
        self.run_id: str = run_row["id"]
        self.thread_id: str = run_row["thread_id"]
        self.context = context
        self.control = control
        self.prompt_tokens = 0
        # The message being written, its step, and the text/refusal not yet written.
        self.message: message_pb2.Message | None = None
        self.message_step: run_pb2.RunStep | None = None
        self.parts: list[list[str]] = []  # per content part: [kind, text so far]
        self.pending: dict[int, str] = {}  # part index -> text not yet sent
        # The tool calls step and the calls not yet sent.
        self.tool_step: run_pb2.RunStep | None = None
        self.calls: dict[int, _Call] = {}
        self.new_calls: list[int] = []
        self.pending_arguments: dict[int, str] = {}
        self.finish_reason: str | None = None
        self.usage: common_pb2.Usage | None = None
        self.structural = False
        # Set once the first write's events are on their way to the local streams; the reader
        # waits for it after the first thing worth writing (see _read).
        self.first_out = asyncio.Event()

    # --- driving --------------------------------------------------------------------------

    async def run(self) -> None:
        x = self.x
        # Routed and converted once per turn: the prompt's budget and the request share them.
        route = x.route(self.run_row["model"])
        tools = chat_tools(self.run_row["tools"])
        prompt, completion_left = x.prompt_for(self.run_row, self.context, route, tools)
        if not prompt.fits:
            await x._end(self.run_id, tr.incomplete("max_prompt_tokens"), self.control.owner)
            return
        if completion_left is not None and completion_left <= 0:
            await x._end(self.run_id, tr.incomplete("max_completion_tokens"), self.control.owner)
            return
        self.prompt_tokens = prompt.prompt_tokens
        params = x.params_for(self.run_row, prompt, completion_left, route, tools)
        reader = asyncio.create_task(self._read(params), name=f"model-stream-{self.run_id}")
        try:
            await self._loop()
        finally:
            if not reader.done():
                reader.cancel()
            # Wait for the reader so the HTTP stream is closed before the turn is over.
            await asyncio.gather(reader, return_exceptions=True)

    async def _read(self, params: dict[str, Any]) -> None:
        inbox = self.control.inbox
        try:
            async with stream_completion(
                self.x.client_for(self.run_row["model"]), params
            ) as stream:
                async for item in stream:
                    inbox.put_nowait(item)
                    if not self.first_out.is_set() and isinstance(item, _FIRST_WRITE):
                        # Parsing the rest of the answer now would hold the event loop while
                        # the first text waits to be sent: what callers feel is the time to it.
                        await self.first_out.wait()
        except ModelError as error:
            inbox.put_nowait(_StreamEnd(error))
            return
        inbox.put_nowait(_StreamEnd())

    async def _loop(self) -> None:
        inbox = self.control.inbox
        last_flush: float | None = None
        while True:
            end = self._fold([await inbox.get()])
            # Coalesce: new steps, new calls and the very first text are written at once; later
            # deltas wait for the rest of the flush interval, gathering what arrives meanwhile.
            if end is None and not self.structural and last_flush is not None:
                deadline = last_flush + self.x._flush_interval
                while end is None and (remaining := deadline - time.monotonic()) > 0:
                    try:
                        end = self._fold([await asyncio.wait_for(inbox.get(), remaining)])
                    except TimeoutError:
                        break
            if end is not None:
                await self._finish(end)
                return
            if self._has_pending():
                written = await self.x._write(self.run_id, self._flush)
                if last_flush is None and written:
                    # The first text is out: let the caller's stream send it before the rest
                    # of the answer is processed.
                    await self.x._bus.delivered(self.run_id, written, FIRST_DELIVERY_WAIT)
                self.first_out.set()
                last_flush = time.monotonic()
            self.structural = False

    def _fold(self, items: list[object]) -> _StreamEnd | Interrupt | None:
        """Take `items` and whatever else is already waiting; return how the turn ends, if it
        does. An interrupt outranks the stream's own end."""
        inbox = self.control.inbox
        while not inbox.empty():
            items.append(inbox.get_nowait())
        end: _StreamEnd | Interrupt | None = None
        for item in items:
            if isinstance(item, Interrupt):
                end = item
            elif isinstance(item, _StreamEnd):
                end = end or item
            else:
                self.structural |= self._take(item)  # type: ignore[arg-type]
        return end

    def _take(self, item: ModelEvent) -> bool:
        """Fold one model event into the pending state; True if it opens a new step or call."""
        if isinstance(item, (TextDelta, RefusalDelta)):
            kind = "text" if isinstance(item, TextDelta) else "refusal"
            if not item.text:
                return False
            opens = self.message is None
            index = next((i for i, part in enumerate(self.parts) if part[0] == kind), None)
            if index is None:
                index = len(self.parts)
                self.parts.append([kind, ""])
            self.parts[index][1] += item.text
            self.pending[index] = self.pending.get(index, "") + item.text
            return opens
        if isinstance(item, ToolCallStarted):
            self.calls[item.index] = _Call(item.index, item.call_id, item.name)
            self.new_calls.append(item.index)
            return True
        if isinstance(item, ToolCallArguments):
            call = self.calls.get(item.index)
            if call is not None:
                call.arguments += item.fragment
                self.pending_arguments[item.index] = (
                    self.pending_arguments.get(item.index, "") + item.fragment
                )
            return False
        if isinstance(item, Finished):
            self.finish_reason = item.reason
        elif isinstance(item, UsageReport):
            self.usage = common_pb2.Usage(
                prompt_tokens=item.prompt_tokens,
                completion_tokens=item.completion_tokens,
                total_tokens=item.prompt_tokens + item.completion_tokens,
            )
        return False

    def _has_pending(self) -> bool:
        return bool(self.pending or self.new_calls or self.pending_arguments)

    # --- writing --------------------------------------------------------------------------

    def _flush(self, connection: Connection) -> tuple[int, list[RunEvent]]:
        """Write what is pending; returns the last sequence written (0 for nothing)."""
        events = log.append(
            connection,
            self.run_id,
            self.thread_id,
            self._pending_events(connection),
            owner=self.control.owner,
        )
        return (events[-1].sequence if events else 0), events

    def _pending_events(self, connection: Connection) -> list[RunEvent]:
        events: list[RunEvent] = []
        now = self.x._deps.now()
        if self.pending and self.tool_step is None:
            if self.message is None:
                events += self._open_message(connection, now)  # written with its content
            else:
                self._save_message(connection)
            events.append(self._message_delta())
        if self.new_calls or self.pending_arguments:
            if self.message is not None:
                events += self._complete_message(connection, now)
            if self.tool_step is None:
                events += self._open_tool_step(connection, now)
            events += self._tool_deltas()
            repo.update_by_id(
                connection,
                repo.RUN_STEPS,
                self.tool_step.id,  # type: ignore[union-attr]
                {"step_details": self._tool_details(with_output=True)},
            )
        return events

    def _open_message(self, connection: Connection, now: int) -> list[RunEvent]:
        new_id = self.x._deps.new_id
        run = self.run_row
        self.message = message_pb2.Message(
            id=new_id("message"),
            created_at=now,
            thread_id=self.thread_id,
            status=message_pb2.MESSAGE_STATUS_IN_PROGRESS,
            role=message_pb2.MESSAGE_ROLE_ASSISTANT,
            assistant_id=run["assistant_id"],
            run_id=self.run_id,
        )
        self.message_step = self._new_step(new_id("step"), now, "message_creation")
        self.message_step.step_details.message_creation.message_id = self.message.id
        repo.insert_row(connection, repo.RUN_STEPS, step_values(self.message_step))
        repo.insert_row(
            connection,
            repo.MESSAGES,
            message_values(self.message)
            | {"content": self._content_json(), "token_encoding": COUNTING_ENCODING},
        )
        return [
            tr.event("thread.run.step.created", run_step=self.message_step),
            tr.event("thread.run.step.in_progress", run_step=self.message_step),
            tr.event("thread.message.created", message=self.message),
            tr.event("thread.message.in_progress", message=self.message),
        ]

    def _new_step(self, step_id: str, now: int, kind: str) -> run_pb2.RunStep:
        return run_pb2.RunStep(
            id=step_id,
            created_at=now,
            run_id=self.run_id,
            assistant_id=self.run_row["assistant_id"],
            thread_id=self.thread_id,
            type=run_pb2.RunStepType.Value("RUN_STEP_TYPE_" + kind.upper()),
            status=run_pb2.RUN_STEP_STATUS_IN_PROGRESS,
        )

    def _message_delta(self) -> RunEvent:
        content = []
        for index, text in sorted(self.pending.items()):
            if self.parts[index][0] == "text":
                content.append(
                    message_pb2.MessageContentDelta(
                        index=index, text=message_pb2.TextDelta(value=text)
                    )
                )
            else:
                content.append(message_pb2.MessageContentDelta(index=index, refusal=text))
        self.pending.clear()
        delta = message_pb2.MessageDelta(
            id=self.message.id,  # type: ignore[union-attr]
            delta=message_pb2.MessageDeltaBody(content=content),
        )
        return tr.event("thread.message.delta", message_delta=delta)

    def _content_json(self) -> list[dict[str, Any]]:
        return [
            {"type": "text", "text": {"value": text, "annotations": []}}
            if kind == "text"
            else {"type": "refusal", "refusal": text}
            for kind, text in self.parts
        ]

    def _text(self) -> str:
        return "".join(text for kind, text in self.parts if kind == "text")

    def _save_message(self, connection: Connection, *, final_tokens: int | None = None) -> None:
        """Keep the row's content equal to what was streamed, so a reader (or a crash) never
        sees less than the deltas said. Tokens are counted once, when the text is final, and
        given here as `final_tokens`."""
        values: dict[str, Any] = {"content": self._content_json()}
        if final_tokens is not None:
            values["token_count"] = final_tokens
        repo.update_by_id(
            connection,
            repo.MESSAGES,
            self.message.id,  # type: ignore[union-attr]
            values,
        )

    def _complete_message(self, connection: Connection, now: int) -> list[RunEvent]:
        """The model moved on from text to tool calls: finish the message and its step first
        (one step at a time, CONTRACT.md §9)."""
        assert self.message is not None and self.message_step is not None
        events = [self._message_delta()] if self.pending else []
        # Counted here, on the loop: text that precedes tool calls is short in practice.
        final_tokens = self.x.tokens.count_text(COUNTING_MODEL, self._text())
        self._save_message(connection, final_tokens=final_tokens)
        row = repo.get_by_id(connection, repo.MESSAGES, self.message.id)
        repo.update_by_id(
            connection, repo.MESSAGES, self.message.id, {"status": "completed", "completed_at": now}
        )
        message = message_from_row({**row, "status": "completed", "completed_at": now})  # type: ignore[dict-item]
        step = self.message_step
        step.status = run_pb2.RUN_STEP_STATUS_COMPLETED
        step.completed_at = now
        step.usage.SetInParent()  # the turn's usage goes to its last step
        repo.update_by_id(connection, repo.RUN_STEPS, step.id, step_values(step))
        events += [
            tr.event("thread.message.completed", message=message),
            tr.event("thread.run.step.completed", run_step=step),
        ]
        self.message = None
        self.message_step = None
        return events

    def _open_tool_step(self, connection: Connection, now: int) -> list[RunEvent]:
        self.tool_step = self._new_step(self.x._deps.new_id("step"), now, "tool_calls")
        self.tool_step.step_details.tool_calls.SetInParent()
        repo.insert_row(connection, repo.RUN_STEPS, step_values(self.tool_step))
        return [
            tr.event("thread.run.step.created", run_step=self.tool_step),
            tr.event("thread.run.step.in_progress", run_step=self.tool_step),
        ]

    def _tool_deltas(self) -> list[RunEvent]:
        """A call's first delta carries its id and name with empty arguments; later ones only
        argument fragments (CONTRACT.md §9, §11.3)."""
        assert self.tool_step is not None
        events = []
        if self.new_calls:
            starts = [
                run_pb2.ToolCallDelta(
                    index=index,
                    id=self.calls[index].id,
                    function=run_pb2.FunctionToolCallDelta(
                        name=self.calls[index].name, arguments=""
                    ),
                )
                for index in self.new_calls
            ]
            events.append(self._step_delta(starts))
            self.new_calls.clear()
        if self.pending_arguments:
            fragments = [
                run_pb2.ToolCallDelta(
                    index=index, function=run_pb2.FunctionToolCallDelta(arguments=text)
                )
                for index, text in sorted(self.pending_arguments.items())
            ]
            events.append(self._step_delta(fragments))
            self.pending_arguments.clear()
        return events

    def _step_delta(self, calls: Sequence[run_pb2.ToolCallDelta]) -> RunEvent:
        delta = run_pb2.RunStepDelta(
            id=self.tool_step.id,  # type: ignore[union-attr]
            delta=run_pb2.RunStepDeltaBody(
                step_details=run_pb2.StepDetailsDelta(
                    tool_calls=run_pb2.ToolCallsDelta(tool_calls=calls)
                )
            ),
        )
        return tr.event("thread.run.step.delta", run_step_delta=delta)

    def _tool_details(self, *, with_output: bool) -> dict[str, Any]:
        calls = []
        for index in sorted(self.calls):
            call = self.calls[index]
            function: dict[str, Any] = {"name": call.name, "arguments": call.arguments}
            if with_output:
                function["output"] = None
            calls.append({"id": call.id, "type": "function", "function": function})
        return {"type": "tool_calls", "tool_calls": calls}

    def _run_usage(self, turn: common_pb2.Usage | None) -> common_pb2.Usage | None:
        """The run's usage: its earlier turns' (summed at start) plus this one's."""
        before = self.context
        if turn is None and not (before.prompt_tokens_used or before.completion_tokens_used):
            return None  # nothing known: let finish_run sum the steps
        prompt = before.prompt_tokens_used + (turn.prompt_tokens if turn else 0)
        completion = before.completion_tokens_used + (turn.completion_tokens if turn else 0)
        return common_pb2.Usage(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )

    def _turn_usage(self) -> common_pb2.Usage:
        """The model's reported usage, or an estimate when the endpoint sends none."""
        if self.usage is not None:
            return self.usage
        completion = self.x.tokens.count_text(
            self.run_row["model"],
            "".join(text for _, text in self.parts)
            + "".join(call.arguments for call in self.calls.values()),
        )
        return common_pb2.Usage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=completion,
            total_tokens=self.prompt_tokens + completion,
        )

    async def _finish(self, end: _StreamEnd | Interrupt) -> None:
        if isinstance(end, Interrupt) and end.reason == "deleted":
            return  # the model stream closes with the turn; the rows are gone
        if isinstance(end, Interrupt) and end.reason == "handback":
            await self.x._write(self.run_id, self._hand_back)
            return
        if isinstance(end, Interrupt):
            ending = _ENDINGS[end.reason]
            usage = None
        elif end.error is not None:
            ending = tr.failed(end.error.code, end.error.message)
            usage = None
        elif self.calls and self.finish_reason != "length":
            await self.x._write(self.run_id, self._requires_action)
            return
        elif self.finish_reason == "length":
            ending, usage = tr.incomplete("max_completion_tokens"), self._turn_usage()
        elif self.finish_reason == "content_filter":
            ending = tr.Ending("completed", message_reason="content_filter")
            usage = self._turn_usage()
        else:
            ending, usage = tr.COMPLETED, self._turn_usage()
        # The answer's tokens, counted before the transaction: a long one off the event loop.
        final_tokens = await self.x.tokens.count_text_off_loop(COUNTING_MODEL, self._text())

        def work(connection: Connection) -> tuple[None, list[RunEvent]]:
            events = self._pending_events(connection)
            if ending.status == "completed" and self.message is None and self.tool_step is None:
                # The model said nothing at all: the run still answers with an (empty) message.
                events += self._open_message(connection, self.x._deps.now())
            elif self.message is not None:
                self._save_message(connection, final_tokens=final_tokens)
            row = self._own_run(connection)
            return None, tr.finish_run(
                connection,
                row,
                ending,
                self.x._deps.now(),
                step_usage=usage,
                run_usage=self._run_usage(usage),
                leading=events,
            )

        await self.x._write(self.run_id, work)

    def _own_run(self, connection: Connection) -> RowMapping:
        """The run's row, locked, provided this replica still holds its lease. If another
        replica took the run over (this one was thought dead), nothing more is written here."""
        row = tr.load_run(connection, self.run_id, lock=True)
        if row is None or row["lease_owner"] != self.control.owner:
            raise log.LeaseLostError(self.run_id)
        return row

    def _hand_back(self, connection: Connection) -> tuple[None, list[RunEvent]]:
        """Write what was streamed so far and let go of the run: its state stays as committed
        and whoever takes it over next continues or ends it (see RunExecutor._start)."""
        _, events = self._flush(connection)
        release_lease(connection, self.run_id, self.control.owner)
        return None, events

    def _requires_action(self, connection: Connection) -> tuple[None, list[RunEvent]]:
        """The model called functions: the run waits for their outputs. The tool step stays
        in progress with `output: null` until they are submitted (CONTRACT.md §11.5)."""
        events = self._pending_events(connection)
        row = self._own_run(connection)
        if row["status"] == "cancelling":
            # A cancel arrived while the model was answering: honour it rather than pause.
            ending = tr.CANCELLED
            return None, tr.finish_run(connection, row, ending, self.x._deps.now(), leading=events)
        usage = self._turn_usage()
        repo.update_by_id(
            connection,
            repo.RUN_STEPS,
            self.tool_step.id,  # type: ignore[union-attr]
            # Known now, shown once the step completes (see mapping.step_from_row).
            {"usage": tr.usage_json(usage)},
        )
        required = run_pb2.RequiredAction(
            submit_tool_outputs=run_pb2.SubmitToolOutputsAction(
                tool_calls=[
                    run_pb2.RequiredToolCall(
                        id=call.id,
                        function=run_pb2.FunctionCall(name=call.name, arguments=call.arguments),
                    )
                    for call in (self.calls[i] for i in sorted(self.calls))
                ]
            )
        )
        values = {
            "status": "requires_action",
            "required_action": render_value(required),
            "lease_owner": None,
            "lease_expires_at": None,
        }
        run = run_from_row({**row, **values})
        written = log.append(
            connection,
            self.run_id,
            self.thread_id,
            [*events, tr.event("thread.run.requires_action", run=run), tr.event("done")],
            values,
        )
        return None, written


_RELEASE_LEASE = (
    update(repo.RUNS)
    .where(repo.RUNS.c.id == bindparam("_run_id"), repo.RUNS.c.lease_owner == bindparam("_owner"))
    .values(lease_owner=None, lease_expires_at=None)
)


def release_lease(connection: Connection, run_id: str, owner: str) -> None:
    connection.execute(_RELEASE_LEASE, {"_run_id": run_id, "_owner": owner})


__all__ = ["Interrupt", "RunControl", "RunExecutor", "Started", "release_lease"]
