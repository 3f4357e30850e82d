"""The run loop: model turn → server-side calls → model turn … → an answer, or the caller's
function calls (`requires_action`), all under the lease the run was started with.

One turn (`Turn.run`):
1. builds the prompt and the request (engine/model_request.py) and streams the model. A reader
   task only reads the model stream into the run's inbox; the turn takes from the inbox, folds
   each event into its accumulator (engine/accumulator.py) and writes. A cancel or an expiry is
   one more item in the same inbox, so the turn reacts to it between writes and stops the
   reader, which closes the HTTP stream at once.
2. coalesces deltas: the first text goes out as soon as it arrives (latency to the first token
   is what callers feel), later ones at most every `flush_interval` seconds, each write one
   transaction holding the rows and the events, published after it commits. Each gRPC event
   costs far more CPU than a row, so this is what makes runs cheap. A turn whose first call is
   a server-side tool's goes live (engine/accumulator.py): its message so far is completed and
   its `tool_calls` step opened at once, and the calls' deltas are written as they come, with
   the same coalescing (`_live_writes`).
3. decides how it ends (engine/turn_end.py) and writes that: the run's end; or the tool round's
   step, then the server-side calls executed by their ToolExecutor (engine/server_calls.py),
   their results, and either the next turn or `requires_action` for the function calls.

Every write of a turn is guarded (`status = in_progress AND lease_owner = <this replica>`): a
write that finds the run `cancelling` writes nothing new and ends the run `cancelled`; one that
finds the lease elsewhere stops (LeaseLostError); one that finds it gone (its thread deleted)
stops quietly. See store/run_states.py for the rule.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, RowMapping, bindparam, update

from assistants_grpc.clock import Clock
from assistants_grpc.contract.openai_json import render_value
from assistants_grpc.contract.pb import common_pb2, run_pb2
from assistants_grpc.engine import transitions as tr
from assistants_grpc.engine.accumulator import TurnAccumulator
from assistants_grpc.engine.context import TurnContext
from assistants_grpc.engine.control import Interrupt, RunControl
from assistants_grpc.engine.deps import Dependencies
from assistants_grpc.engine.model_request import model_params, offered_tools, turn_prompt
from assistants_grpc.engine.model_stream import (
    ModelError,
    RefusalDelta,
    TextDelta,
    stream_completion,
)
from assistants_grpc.engine.models import DEFAULT_OPENAI_BASE_URL, ModelRouter
from assistants_grpc.engine.prompt import DEFAULT_SHORTEN_FRACTION
from assistants_grpc.engine.server_calls import (
    PlannedCall,
    execute_round,
    merge_tool_resources,
    plan_calls,
)
from assistants_grpc.engine.server_tools import ToolCallRefused, ToolRegistry, ToolRunContext
from assistants_grpc.engine.tokens import COUNTING_MODEL
from assistants_grpc.engine.turn_end import (
    INTERRUPT_ENDINGS,
    Calls,
    Ended,
    Interrupted,
    Outcome,
    decide,
)
from assistants_grpc.engine.turn_writer import TurnWriter
from assistants_grpc.events import log
from assistants_grpc.events.bus import EventBus
from assistants_grpc.observability import logs, metrics, tracing
from assistants_grpc.store import repository as repo
from assistants_grpc.store.mapping import run_from_row
from assistants_grpc.store.run_states import LeaseLostError, RunMoved, RunStatus

logger = logging.getLogger(__name__)

RunEvent = run_pb2.RunEvent
RunRow = Mapping[Any, Any]
LoadContext = Callable[[RunRow], Awaitable[TurnContext]]

__all__ = ["RunLoop", "TurnHooks", "release_lease"]

# How long a turn waits, after its first text, for the local streams to send it.
FIRST_DELIVERY_WAIT = 0.01
# What the first write of a turn is made of: the reader pauses after it (see Turn._read).
_FIRST_WRITE = (TextDelta, RefusalDelta)


@dataclass(frozen=True)
class TurnHooks:
    """Seams for tests, passed to the executor when it is built (never patched in).

    `model_finished(run_id)` is awaited after the model's last chunk and before the turn's final
    write, for every turn that was not interrupted: a test pauses a turn there to race it."""

    model_finished: Callable[[str], Awaitable[None]] | None = None


@dataclass(frozen=True)
class _StreamEnd:
    error: ModelError | None = None


@dataclass
class RunLoop:
    """What every turn of every run shares."""

    deps: Dependencies
    router: ModelRouter
    bus: EventBus
    tools: ToolRegistry
    lease_clock: Clock
    load_context: LoadContext
    flush_interval: float = 0.025
    max_tool_rounds: int = 20
    hooks: TurnHooks = TurnHooks()
    shorten_fraction: float = DEFAULT_SHORTEN_FRACTION

    async def write(self, run_id: str, work: Callable[[Connection], Any]) -> Any:
        """Run `work(connection) -> (result, events)` in one transaction, then publish."""
        result, events = await self.deps.database.transaction(work)
        self.bus.publish(run_id, events)
        return result

    async def run(self, run_row: RunRow, context: TurnContext, control: RunControl) -> None:
        """Turns of the run, from `context`, until it ends or waits for the caller."""
        thread = context.thread
        project = thread.project if thread is not None else control.project
        with logs.bound(thread_id=run_row["thread_id"], project=project):
            while await Turn(self, run_row, context, control).run():
                context = await self.load_context(run_row)


class Turn:
    """The state of one model turn between writes."""

    def __init__(
        self, loop: RunLoop, run_row: RunRow, context: TurnContext, control: RunControl
    ) -> None:
        self.loop = loop
        self.run_row = run_row
        self.run_id: str = run_row["id"]
        self.thread_id: str = run_row["thread_id"]
        self.context = context
        self.control = control
        self.owner = control.owner
        self.offered = offered_tools(run_row["tools"], loop.tools)
        self.tool_contexts = self._tool_contexts()
        annotators = [
            annotator
            for executor in self.offered.server.values()
            if (annotator := executor.annotator(self.tool_contexts[executor.tool_type])) is not None
        ]
        # A turn whose first call is a server-side one streams its calls as they are written
        # (engine/accumulator.py); not once the round cap is reached: that call fails the run.
        live = self.offered.server if context.server_rounds < loop.max_tool_rounds else None
        self.turn = TurnAccumulator(context.lead_parts, annotators, live)
        self.writer = TurnWriter(run_row, loop.deps.new_id)
        self.prompt_tokens = 0
        # Set once the first write's events are on their way to the local streams; the reader
        # waits for it after the first thing worth writing (see _read).
        self.first_out = asyncio.Event()
        # For the metrics and spans (observability/): when the turn began, and its model
        # endpoint as a label (set only while either is on).
        self.began = time.perf_counter()
        self.endpoint = ""

    def _tool_contexts(self) -> dict[str, ToolRunContext]:
        if not self.offered.by_type:
            return {}
        thread = self.context.thread
        run = self.run_row
        resources = merge_tool_resources(
            run["tool_resources"], thread.tool_resources if thread is not None else None
        )
        return {
            kind: ToolRunContext(
                project=thread.project if thread is not None else "",
                run_id=self.run_id,
                thread_id=self.thread_id,
                assistant_id=run["assistant_id"],
                model=run["model"],
                tool=tool,
                tool_resources=resources,
                include=frozenset(run["include"] or ()),
                earlier_calls=tuple(self.context.earlier_calls),
            )
            for kind, tool in self.offered.by_type.items()
        }

    # --- driving --------------------------------------------------------------------------

    async def run(self) -> bool:
        """The turn; True when the run goes on with another turn (after server-side calls)."""
        recorded, tracer = metrics.active(), tracing.tracer()
        if recorded is None and tracer is None:
            return await self._guarded()
        base_url = self.loop.router.route(self.run_row["model"]).base_url
        self.endpoint = metrics.endpoint_label(base_url or DEFAULT_OPENAI_BASE_URL)
        try:
            if tracer is None:
                return await self._guarded()
            # The run's creating call is the parent, wherever (and whenever) the turn runs.
            parent = tracing.context_from_traceparent(self.run_row.get("trace_context"))
            attributes = {
                "assistants.run_id": self.run_id,
                "assistants.thread_id": self.thread_id,
                "gen_ai.request.model": str(self.run_row["model"]),
                "server.address": self.endpoint,
            }
            with tracer.start_as_current_span("run turn", context=parent, attributes=attributes):
                return await self._guarded()
        finally:
            if recorded is not None:
                seconds = time.perf_counter() - self.began
                recorded.turn_duration.labels(self.endpoint).observe(seconds)

    async def _guarded(self) -> bool:
        try:
            return await self._run()
        except LeaseLostError:
            raise  # another replica holds the run now (or it is gone): the scheduler says so
        except RunMoved as moved:
            await self._after_moved(moved)
            return False

    async def _run(self) -> bool:
        loop = self.loop
        if not self.context.rounds and not await self._preflight():
            return False
        route = loop.router.route(self.run_row["model"])
        definitions = self.offered.definitions
        prompt, completion_left = turn_prompt(
            self.run_row,
            self.context,
            route,
            definitions,
            loop.deps.tokens,
            shorten_fraction=loop.shorten_fraction,
        )
        if not prompt.fits:
            await self._end(tr.incomplete("max_prompt_tokens"))
            return False
        if completion_left is not None and completion_left <= 0:
            await self._end(tr.incomplete("max_completion_tokens"))
            return False
        self.prompt_tokens = prompt.prompt_tokens
        params = model_params(
            self.run_row,
            prompt,
            completion_left,
            route,
            self.offered,
            first_turn=not self.context.rounds,
        )
        reader = asyncio.create_task(self._read(params), name=f"model-stream-{self.run_id}")
        try:
            end = await self._stream()
        finally:
            if not reader.done():
                reader.cancel()
            # Wait for the reader so the HTTP stream is closed before the turn goes on.
            await asyncio.gather(reader, return_exceptions=True)
        return await self._finish(end)

    async def _preflight(self) -> bool:
        """Before the run's first turn, the offered executors' own checks (server_tools.py):
        False when one refused the run, which has ended `failed`."""
        for executor in self.offered.server.values():
            check = getattr(executor, "preflight", None)
            if check is None:
                continue
            try:
                await check(self.tool_contexts[executor.tool_type])
            except ToolCallRefused as refused:
                logger.info("run %s: refused before its first turn: %s", self.run_id, refused)
                await self._end(tr.failed(refused.code, refused.message))
                return False
        return True

    async def _read(self, params: dict[str, Any]) -> None:
        recorded, tracer = metrics.active(), tracing.tracer()
        if recorded is None and tracer is None:
            await self._read_model(params)
            return
        began = time.perf_counter()
        error: ModelError | None = None
        try:
            if tracer is None:
                error = await self._read_model(params)
                return
            from opentelemetry.trace import SpanKind, Status, StatusCode

            with tracer.start_as_current_span(
                "chat.completions",
                kind=SpanKind.CLIENT,
                attributes={
                    "gen_ai.request.model": str(params.get("model", "")),
                    "server.address": self.endpoint,
                },
            ) as span:
                error = await self._read_model(params)
                if error is not None:
                    span.set_status(Status(StatusCode.ERROR, error.code))
        finally:
            if recorded is not None:
                seconds = time.perf_counter() - began
                recorded.model_duration.labels(self.endpoint).observe(seconds)
                if error is not None:
                    recorded.model_errors.labels(self.endpoint, error.code).inc()

    async def _read_model(self, params: dict[str, Any]) -> ModelError | None:
        """Read the model's stream into the inbox; the error it ended with, if it failed."""
        inbox = self.control.inbox
        try:
            async with stream_completion(
                self.loop.router.client_for(self.run_row["model"]), params
            ) as stream:
                async for item in stream:
                    inbox.put_nowait(item)
                    if not self.first_out.is_set() and isinstance(item, _FIRST_WRITE):
                        # Parsing the rest of the answer now would hold the event loop while
                        # the first text waits to be sent: what callers feel is the time to it.
                        await self.first_out.wait()
        except ModelError as error:
            # The endpoint, the code and what went wrong ("model endpoint unreachable", "…
            # returned HTTP 500"), without the endpoint's own words after it: they may quote the
            # prompt. Never the key (observability.logs).
            logger.warning(
                "model request failed: %s",
                error.code,
                extra={
                    "endpoint": error.endpoint,
                    "model": self.run_row["model"],
                    "reason": error.message.split(":", 1)[0],
                },
            )
            inbox.put_nowait(_StreamEnd(error))
            return error
        inbox.put_nowait(_StreamEnd())
        return None

    async def _stream(self) -> _StreamEnd | Interrupt:
        """Fold the model's stream and write it as it comes, until it ends or is interrupted."""
        inbox = self.control.inbox
        last_flush: float | None = None
        while True:
            end = self._fold([await inbox.get()])
            # Coalesce: the message's first content is written at once; later deltas wait for
            # the rest of the flush interval, gathering what arrives meanwhile.
            urgent = self.turn.opens_message or self.turn.opens_live_step
            if end is None and not urgent and last_flush is not None:
                deadline = last_flush + self.loop.flush_interval
                while end is None and (remaining := deadline - time.monotonic()) > 0:
                    try:
                        end = self._fold([await asyncio.wait_for(inbox.get(), remaining)])
                    except TimeoutError:
                        break
            if end is not None:
                return end
            if self.turn.has_pending:
                written = await self.loop.write(self.run_id, self._flush)
                if last_flush is None and written:
                    if (recorded := metrics.active()) is not None:
                        seconds = time.perf_counter() - self.began
                        recorded.first_delta.labels(self.endpoint).observe(seconds)
                    # The first text is out: let the caller's stream send it before the rest
                    # of the answer is processed.
                    await self.loop.bus.delivered(self.run_id, written, FIRST_DELIVERY_WAIT)
                last_flush = time.monotonic()
            self.first_out.set()

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
                self.turn.feed(item)  # type: ignore[arg-type]
        return end

    def _flush(self, connection: Connection) -> tuple[int, list[RunEvent]]:
        """Write what is pending, while the run is in progress and ours; returns the last
        sequence written (0 for nothing)."""
        now = self._now()
        if self.turn.live:
            written = self._live_writes(connection, now)
        else:
            written = self.writer.content(connection, self.turn, now)
        events = self._append(connection, written)
        return (events[-1].sequence if events else 0), events

    def _live_writes(
        self, connection: Connection, now: int, calls: list[PlannedCall] | None = None
    ) -> list[RunEvent]:
        """A live turn's write: at its first, the message so far completed and the step
        opened; then what the calls streamed since the last write (`calls`: as planned, when
        the turn has ended)."""
        events: list[RunEvent] = []
        if self.writer.tool_step is None:
            tokens = self.loop.deps.tokens.count_text(COUNTING_MODEL, self.turn.answer_text())
            events += self.writer.complete_message(connection, self.turn, now, tokens)
            events += self.writer.open_live_step(connection, now)
        if calls is None:
            calls = plan_calls(self.turn.ordered_calls(), self.offered.server, self.turn.inputs)
        events += self.writer.live_deltas(connection, calls, self.turn.take_call_deltas())
        return events

    def _append(self, connection: Connection, events: list[RunEvent]) -> list[RunEvent]:
        """Append a turn's events, guarded: the run in progress, its lease ours."""
        return log.append(
            connection,
            self.run_id,
            self.thread_id,
            events,
            owner=self.owner,
            expected=RunStatus.IN_PROGRESS,
        )

    # --- ending ---------------------------------------------------------------------------

    async def _finish(self, end: _StreamEnd | Interrupt) -> bool:
        if isinstance(end, _StreamEnd):
            self.turn.end()
        outcome: Outcome = decide(
            self.turn,
            error=end.error if isinstance(end, _StreamEnd) else None,
            interrupt=end.reason if isinstance(end, Interrupt) else None,
            server_functions=self.offered.server,
            server_rounds=self.context.server_rounds,
            max_tool_rounds=self.loop.max_tool_rounds,
        )
        hook = self.loop.hooks.model_finished
        if hook is not None and not isinstance(outcome, Interrupted):
            await hook(self.run_id)
        if isinstance(outcome, Interrupted):
            await self._interrupted(outcome)
            return False
        if isinstance(outcome, Ended):
            await self._answer(outcome)
            return False
        return await self._round(outcome)

    async def _interrupted(self, outcome: Interrupted) -> None:
        """Nothing new is written: what was not sent yet is dropped."""
        self.turn.drop_pending()
        if outcome.reason == "deleted":
            return  # the model stream closed with the turn; the rows are gone
        if outcome.reason == "handback":
            # The run keeps its state; whoever takes it over continues or ends it.
            await self.loop.deps.database.transaction(
                lambda c: release_lease(c, self.run_id, self.owner)
            )
            return
        await self._end(INTERRUPT_ENDINGS[outcome.reason])

    async def _end(self, ending: tr.Ending) -> None:
        """End the run, from whatever active status it is in now (ours to end)."""

        def work(connection: Connection) -> tuple[None, list[RunEvent]]:
            row = self._own_run(connection, expected=None)
            return None, tr.finish_run(connection, row, ending, self._now(), owner=self.owner)

        await self.loop.write(self.run_id, work)

    async def _after_moved(self, moved: RunMoved) -> None:
        """A write found the run elsewhere. A committed cancel wins: the run ends cancelled,
        with nothing more of this turn. Anything else (it ended, it expired) is not ours."""
        if moved.found != RunStatus.CANCELLING:
            return
        self.turn.drop_pending()
        try:
            await self._end(tr.CANCELLED)
        except LeaseLostError:
            raise
        except RunMoved:
            return  # moved again meanwhile (expired): nothing left for this turn

    def _own_run(self, connection: Connection, *, expected: RunStatus | None) -> RowMapping:
        """The run's row, locked, provided this replica still holds its lease (and, with
        `expected`, it is in that status). If another replica took the run over (this one was
        thought dead), or its thread went, nothing more is written here."""
        row = tr.load_run(connection, self.run_id, lock=True)
        if row is None or row["lease_owner"] != self.owner:
            raise LeaseLostError(
                self.run_id,
                found=None if row is None else row["status"],
                owner=self.owner,
                found_owner=None if row is None else row["lease_owner"],
            )
        if expected is not None and row["status"] != expected:
            raise RunMoved(
                self.run_id,
                expected=expected,
                found=row["status"],
                owner=self.owner,
                found_owner=self.owner,
            )
        return row

    async def _answer(self, outcome: Ended) -> None:
        ending = outcome.ending
        usage = self._turn_usage() if outcome.with_usage else None
        _count_tokens(usage)
        # The answer's tokens, counted before the transaction: a long one off the event loop.
        tokens = self.loop.deps.tokens
        final_tokens = await tokens.count_text_off_loop(COUNTING_MODEL, self.turn.answer_text())

        def work(connection: Connection) -> tuple[None, list[RunEvent]]:
            row = self._own_run(connection, expected=RunStatus.IN_PROGRESS)
            now = self._now()
            if self.turn.live:
                # The calls will not run: what they streamed is written, their step ends with
                # the run.
                events = self._live_writes(connection, now)
            else:
                events = self.writer.content(connection, self.turn, now)
            if (
                ending.status == RunStatus.COMPLETED
                and self.writer.message is None
                and self.writer.tool_step is None
            ):
                # The model said nothing at all: the run still answers with an (empty) message.
                events += self.writer.empty_message(connection, self.turn, now)
            self.writer.save_final(connection, self.turn, final_tokens)
            return None, tr.finish_run(
                connection,
                row,
                ending,
                now,
                step_usage=usage,
                run_usage=self._run_usage(usage),
                leading=events,
                owner=self.owner,
            )

        await self.loop.write(self.run_id, work)

    # --- a tool round -----------------------------------------------------------------------

    async def _round(self, outcome: Calls) -> bool:
        """Write the round's step; execute its server-side calls; then the next turn, or
        `requires_action` for its function calls (the step stays open until their outputs)."""
        live = self.turn.live
        calls = plan_calls(
            self.turn.ordered_calls(), self.offered.server, self.turn.inputs if live else None
        )
        trailing = self.turn.trailing_parts()
        if trailing:
            # The text written after the calls started opens the run's next message.
            next(call for call in reversed(calls) if call.server).trailing = trailing
        usage = self._turn_usage()
        _count_tokens(usage)
        tokens = self.loop.deps.tokens
        final_tokens = await tokens.count_text_off_loop(COUNTING_MODEL, self.turn.answer_text())
        functions = [call for call in calls if not call.server]

        def open_step(connection: Connection) -> tuple[None, list[RunEvent]]:
            now = self._now()
            if live:
                events = self._live_writes(connection, now, calls)
                self.writer.finish_live_step(connection, calls, usage)
            else:
                events = self.writer.complete_message(connection, self.turn, now, final_tokens)
                events += self.writer.open_tool_step(connection, calls, now, usage)
            if not outcome.server:
                return None, self._pause(connection, functions, events)
            return None, self._append(connection, events)

        await self.loop.write(self.run_id, open_step)
        if not outcome.server:
            return False
        if not await self._execute(calls):
            return False

        def close_step(connection: Connection) -> tuple[None, list[RunEvent]]:
            events = self.writer.record_results(connection)
            if functions:
                return None, self._pause(connection, functions, events)
            events += self.writer.complete_tool_step(connection, self._now(), usage)
            return None, self._append(connection, events)

        await self.loop.write(self.run_id, close_step)
        return not functions

    async def _execute(self, calls: list[PlannedCall]) -> bool:
        """Run the server-side calls, watching the inbox: a cancel, an expiry, a handback or a
        deletion cancels them. True when they all finished."""
        inbox = self.control.inbox

        async def emit(call: PlannedCall, body: dict[str, Any]) -> None:
            event = self.writer.emitted(call, body)
            await self.loop.write(self.run_id, lambda c: (None, self._append(c, [event])))

        work = asyncio.create_task(
            execute_round(calls, self.tool_contexts, emit), name=f"tool-round-{self.run_id}"
        )
        interrupt = asyncio.create_task(inbox.get(), name=f"tool-round-inbox-{self.run_id}")
        try:
            await asyncio.wait({work, interrupt}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (work, interrupt):
                if not task.done():
                    task.cancel()
            await asyncio.gather(work, interrupt, return_exceptions=True)
        if interrupt.done() and not interrupt.cancelled():
            item = interrupt.result()
            if isinstance(item, Interrupt):
                await self._interrupted(Interrupted(item.reason))
                return False
        if work.cancelled():
            return False
        error = work.exception()
        if isinstance(error, RunMoved):
            raise error
        if isinstance(error, ToolCallRefused):
            logger.info("run %s: a tool call was refused: %s", self.run_id, error.message)
            await self._end(tr.failed(error.code, error.message))
            return False
        if error is not None:
            failed = next((c for c in calls if c.server and c.result is None), calls[0])
            logger.error(
                "run %s: the %s tool failed", self.run_id, failed.tool_type, exc_info=error
            )
            await self._end(
                tr.failed("server_error", f"The {failed.tool_type} tool failed on the server.")
            )
            return False
        return True

    def _pause(
        self, connection: Connection, functions: list[PlannedCall], leading: list[RunEvent]
    ) -> list[RunEvent]:
        """The run waits for the caller's outputs of `functions` (only those: server-side calls
        of the same step have theirs). The step stays in progress with `output: null` until they
        are submitted (CONTRACT.md §11.5)."""
        row = self._own_run(connection, expected=RunStatus.IN_PROGRESS)
        required = run_pb2.RequiredAction(
            submit_tool_outputs=run_pb2.SubmitToolOutputsAction(
                tool_calls=[
                    run_pb2.RequiredToolCall(
                        id=call.draft.id,
                        function=run_pb2.FunctionCall(
                            name=call.draft.name, arguments=call.draft.arguments
                        ),
                    )
                    for call in functions
                ]
            )
        )
        values = {
            "required_action": render_value(required),
            "lease_owner": None,
            "lease_expires_at": None,
        }
        run = run_from_row({**row, **values, "status": RunStatus.REQUIRES_ACTION.value})
        events = [
            *leading,
            tr.event(RunStatus.REQUIRES_ACTION.event, run=run),
            tr.event("done"),
        ]
        return tr.transition(connection, row, "pause", events, values, owner=self.owner)

    # --- usage ------------------------------------------------------------------------------

    def _now(self) -> int:
        return self.loop.deps.now()

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
        reported = self.turn.usage
        if reported is not None:
            prompt, completion = reported.prompt_tokens, reported.completion_tokens
        else:
            prompt = self.prompt_tokens
            completion = self.loop.deps.tokens.count_text(
                self.run_row["model"], self.turn.written_text()
            )
        return common_pb2.Usage(
            prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
        )


def _count_tokens(usage: common_pb2.Usage | None) -> None:
    if usage is not None and (recorded := metrics.active()) is not None:
        recorded.tokens.labels("prompt").inc(usage.prompt_tokens)
        recorded.tokens.labels("completion").inc(usage.completion_tokens)


_RELEASE_LEASE = (
    update(repo.RUNS)
    .where(repo.RUNS.c.id == bindparam("_run_id"), repo.RUNS.c.lease_owner == bindparam("_owner"))
    .values(lease_owner=None, lease_expires_at=None)
)


def release_lease(connection: Connection, run_id: str, owner: str) -> None:
    connection.execute(_RELEASE_LEASE, {"_run_id": run_id, "_owner": owner})
