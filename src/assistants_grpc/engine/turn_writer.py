"""Writes one turn's rows and builds its events: the message and its `message_creation` step,
the `tool_calls` step, and the deltas of both. Each method runs inside a transaction the run
loop opened and returns the events it built, in order; the run loop appends them to the log with
its guarded write and publishes them after the commit.

The rows always hold what the events said: a message's content is saved with every delta, a
step's details with its calls (in their stored form, with the model's view of a server-side
call, see store/mapping.py), so a reader, or a replica taking the run over, never sees less than
the stream did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection

from assistants_grpc.contract.openai_json import parse
from assistants_grpc.contract.pb import common_pb2, message_pb2, run_pb2
from assistants_grpc.engine import transitions as tr
from assistants_grpc.engine.accumulator import CallDelta, PartDelta, TurnAccumulator
from assistants_grpc.engine.server_calls import PlannedCall
from assistants_grpc.engine.server_tools import JSON
from assistants_grpc.engine.tokens import COUNTING_ENCODING
from assistants_grpc.ids import IdGenerator
from assistants_grpc.store import repository as repo
from assistants_grpc.store.mapping import (
    INCLUDE_FILE_SEARCH_CONTENT,
    message_from_row,
    message_values,
    shown_step_details,
    step_values,
)

RunEvent = run_pb2.RunEvent
RunRow = Mapping[Any, Any]

__all__ = ["TurnWriter"]


class TurnWriter:
    """The message and steps one model turn writes."""

    def __init__(self, run_row: RunRow, new_id: IdGenerator) -> None:
        self.run_row = run_row
        self.run_id: str = run_row["id"]
        self.thread_id: str = run_row["thread_id"]
        self._new_id = new_id
        # Whether the run's include[] asks for file_search result content in its steps.
        self._with_content = INCLUDE_FILE_SEARCH_CONTENT in (run_row.get("include") or ())
        self.message: message_pb2.Message | None = None
        self.message_step: run_pb2.RunStep | None = None
        self.tool_step: run_pb2.RunStep | None = None
        self.calls: list[PlannedCall] = []

    # --- the message --------------------------------------------------------------------------

    def content(self, connection: Connection, turn: TurnAccumulator, now: int) -> list[RunEvent]:
        """What the turn has pending: opens the message (written with its content), or saves
        its content; then one delta of what is new."""
        pending = turn.take_pending()
        if not pending:
            return []
        events = []
        if self.message is None:
            events += self._open_message(connection, turn, now)
        else:
            self._save_message(connection, turn)
        events.append(self._message_delta(pending))
        return events

    def _open_message(
        self, connection: Connection, turn: TurnAccumulator, now: int
    ) -> list[RunEvent]:
        run = self.run_row
        self.message = message_pb2.Message(
            id=self._new_id("message"),
            created_at=now,
            thread_id=self.thread_id,
            status=message_pb2.MESSAGE_STATUS_IN_PROGRESS,
            role=message_pb2.MESSAGE_ROLE_ASSISTANT,
            assistant_id=run["assistant_id"],
            run_id=self.run_id,
        )
        self.message_step = self._new_step(now, "message_creation")
        self.message_step.step_details.message_creation.message_id = self.message.id
        repo.insert_row(connection, repo.RUN_STEPS, step_values(self.message_step))
        repo.insert_row(
            connection,
            repo.MESSAGES,
            message_values(self.message)
            | {"content": turn.content(), "token_encoding": COUNTING_ENCODING},
        )
        # The snapshots go out empty (CONTRACT.md §11.2): the content follows as deltas.
        return [
            tr.event("thread.run.step.created", run_step=self.message_step),
            tr.event("thread.run.step.in_progress", run_step=self.message_step),
            tr.event("thread.message.created", message=self.message),
            tr.event("thread.message.in_progress", message=self.message),
        ]

    def empty_message(
        self, connection: Connection, turn: TurnAccumulator, now: int
    ) -> list[RunEvent]:
        """A run that answers with nothing still answers with a message (empty)."""
        return self._open_message(connection, turn, now)

    def _save_message(
        self, connection: Connection, turn: TurnAccumulator, *, final_tokens: int | None = None
    ) -> None:
        """Keep the row's content equal to what was streamed. Tokens are counted once, when the
        text is final, and given here as `final_tokens`."""
        assert self.message is not None
        values: dict[str, Any] = {"content": turn.content()}
        if final_tokens is not None:
            values["token_count"] = final_tokens
        repo.update_by_id(connection, repo.MESSAGES, self.message.id, values)

    def save_final(self, connection: Connection, turn: TurnAccumulator, final_tokens: int) -> None:
        """The answer's last content and its token count; finish_run closes the message."""
        if self.message is not None:
            self._save_message(connection, turn, final_tokens=final_tokens)

    def _message_delta(self, pending: Sequence[PartDelta]) -> RunEvent:
        assert self.message is not None
        content = []
        for part in pending:
            if part.kind == "whole":
                assert part.whole is not None
                whole = part.whole
                if whole.get("type") == "text" and whole["text"].get("annotations"):
                    # A delta's annotations carry their index (a live turn's trailing text).
                    text = whole["text"]
                    numbered = [{"index": i, **a} for i, a in enumerate(text["annotations"])]
                    whole = {**whole, "text": {**text, "annotations": numbered}}
                delta = parse({"index": part.index, **whole}, message_pb2.MessageContentDelta)
            elif part.kind == "refusal":
                delta = message_pb2.MessageContentDelta(index=part.index, refusal=part.text)
            else:
                text = message_pb2.TextDelta(
                    annotations=[
                        parse(annotation, message_pb2.AnnotationDelta)
                        for annotation in part.annotations
                    ]
                )
                if part.text:
                    text.value = part.text
                delta = message_pb2.MessageContentDelta(index=part.index, text=text)
            content.append(delta)
        body = message_pb2.MessageDelta(
            id=self.message.id, delta=message_pb2.MessageDeltaBody(content=content)
        )
        return tr.event("thread.message.delta", message_delta=body)

    def complete_message(
        self, connection: Connection, turn: TurnAccumulator, now: int, final_tokens: int
    ) -> list[RunEvent]:
        """The answer went on to tool calls: finish the message and its step first (one step at
        a time, CONTRACT.md §9)."""
        events = self.content(connection, turn, now)
        if self.message is None:
            return events
        assert self.message_step is not None
        self._save_message(connection, turn, final_tokens=final_tokens)
        row = repo.get_by_id(connection, repo.MESSAGES, self.message.id)
        done = {"status": "completed", "completed_at": now}
        repo.update_by_id(connection, repo.MESSAGES, self.message.id, done)
        message = message_from_row({**row, **done})  # type: ignore[dict-item]
        step = self.message_step
        step.status = run_pb2.RUN_STEP_STATUS_COMPLETED
        step.completed_at = now
        step.usage.SetInParent()  # the turn's usage goes to its last step
        repo.update_by_id(connection, repo.RUN_STEPS, step.id, step_values(step))
        self.message = None
        self.message_step = None
        return [
            *events,
            tr.event("thread.message.completed", message=message),
            tr.event("thread.run.step.completed", run_step=step),
        ]

    # --- the tool calls step ------------------------------------------------------------------

    def open_tool_step(
        self,
        connection: Connection,
        calls: Sequence[PlannedCall],
        now: int,
        usage: common_pb2.Usage,
    ) -> list[RunEvent]:
        """The step of the round's calls, with their deltas coalesced: the first of each call
        (`id`, its type's first body), then what it streamed. The turn's usage is kept on the
        step, shown once it completes (see mapping.step_from_row)."""
        self.calls = list(calls)
        step = self.tool_step = self._new_step(now, "tool_calls")
        step.step_details.tool_calls.SetInParent()
        values = step_values(step) | {
            "step_details": self._details(),
            "usage": tr.usage_json(usage),
        }
        repo.insert_row(connection, repo.RUN_STEPS, values)
        starts = [self._first_delta(call) for call in self.calls]
        rest = [delta for call in self.calls if (delta := self._streamed_delta(call)) is not None]
        events = [
            tr.event("thread.run.step.created", run_step=step),
            tr.event("thread.run.step.in_progress", run_step=step),
            self._step_delta(starts),
        ]
        if rest:
            events.append(self._step_delta(rest))
        return events

    def open_live_step(self, connection: Connection, now: int) -> list[RunEvent]:
        """A live turn's step, opened as its first call starts: no calls yet, no usage (both
        come as the turn goes on, see `live_deltas` and `finish_live_step`)."""
        self.calls = []
        step = self.tool_step = self._new_step(now, "tool_calls")
        step.step_details.tool_calls.SetInParent()
        repo.insert_row(
            connection, repo.RUN_STEPS, step_values(step) | {"step_details": self._details()}
        )
        return [
            tr.event("thread.run.step.created", run_step=step),
            tr.event("thread.run.step.in_progress", run_step=step),
        ]

    def live_deltas(
        self, connection: Connection, calls: Sequence[PlannedCall], deltas: Sequence[CallDelta]
    ) -> list[RunEvent]:
        """What a live turn's calls streamed since the last write: the first delta of each call
        that started (together), then what the calls' arguments added; the step's details
        saved with the calls as they stand."""
        self.calls = list(calls)
        if not deltas:
            return []
        self._save_details(connection)
        by_index = {call.draft.index: call for call in self.calls}
        starts = [self._first_delta(by_index[d.index]) for d in deltas if d.opens]
        rest = [self._live_delta(by_index[d.index], d.body) for d in deltas if d.body]
        return [self._step_delta(group) for group in (starts, rest) if group]

    def _live_delta(self, call: PlannedCall, body: JSON) -> run_pb2.ToolCallDelta:
        if call.server:
            return self.call_delta(call, body)
        return run_pb2.ToolCallDelta(
            index=call.draft.index,
            function=run_pb2.FunctionToolCallDelta(arguments=body.get("arguments", "")),
        )

    def finish_live_step(
        self, connection: Connection, calls: Sequence[PlannedCall], usage: common_pb2.Usage
    ) -> None:
        """The live turn's answer ended: the step keeps its calls as written and the turn's
        usage (shown once it completes)."""
        assert self.tool_step is not None
        self.calls = list(calls)
        repo.update_by_id(
            connection,
            repo.RUN_STEPS,
            self.tool_step.id,
            {"step_details": self._details(), "usage": tr.usage_json(usage)},
        )

    def _first_delta(self, call: PlannedCall) -> run_pb2.ToolCallDelta:
        draft = call.draft
        if not call.server:
            return run_pb2.ToolCallDelta(
                index=draft.index,
                id=draft.id,
                function=run_pb2.FunctionToolCallDelta(name=draft.name, arguments=""),
            )
        shape = {"index": draft.index, "id": draft.id, "type": call.tool_type}
        return parse({**shape, call.tool_type: call.first}, run_pb2.ToolCallDelta)

    def _streamed_delta(self, call: PlannedCall) -> run_pb2.ToolCallDelta | None:
        draft = call.draft
        if not call.server:
            if not draft.arguments:
                return None
            return run_pb2.ToolCallDelta(
                index=draft.index, function=run_pb2.FunctionToolCallDelta(arguments=draft.arguments)
            )
        if not call.streamed:
            return None
        return self.call_delta(call, call.streamed)

    def call_delta(self, call: PlannedCall, body: JSON) -> run_pb2.ToolCallDelta:
        """A server-side call's delta: `body` under its type, at its index."""
        shape = {"index": call.draft.index, "type": call.tool_type, call.tool_type: body}
        return parse(shape, run_pb2.ToolCallDelta)

    def emitted(self, call: PlannedCall, body: JSON) -> RunEvent:
        """The step delta of what an executing call emitted."""
        return self._step_delta([self.call_delta(call, body)])

    def record_results(self, connection: Connection) -> list[RunEvent]:
        """The server-side calls' results: their final deltas, and the step's details."""
        finals = [
            self.call_delta(call, call.result.final_delta)
            for call in self.calls
            if call.result is not None and call.result.final_delta
        ]
        self._save_details(connection)
        return [self._step_delta(finals)] if finals else []

    def complete_tool_step(
        self, connection: Connection, now: int, usage: common_pb2.Usage
    ) -> list[RunEvent]:
        """Every call of the step has its output: the step completes with the turn's usage."""
        assert self.tool_step is not None
        step = self.tool_step
        details = self._details()
        values = {
            "status": "completed",
            "completed_at": now,
            "usage": tr.usage_json(usage),
            "step_details": details,
        }
        repo.update_by_id(connection, repo.RUN_STEPS, step.id, values)
        step.status = run_pb2.RUN_STEP_STATUS_COMPLETED
        step.completed_at = now
        step.usage.CopyFrom(usage)
        step.step_details.CopyFrom(
            parse(
                shown_step_details(details, include_result_content=self._with_content),
                run_pb2.StepDetails,
            )
        )
        self.tool_step = None
        return [tr.event("thread.run.step.completed", run_step=step)]

    def _save_details(self, connection: Connection) -> None:
        assert self.tool_step is not None
        repo.update_by_id(
            connection, repo.RUN_STEPS, self.tool_step.id, {"step_details": self._details()}
        )

    def _details(self) -> JSON:
        return {"type": "tool_calls", "tool_calls": [call.stored() for call in self.calls]}

    def _step_delta(self, calls: Sequence[run_pb2.ToolCallDelta]) -> RunEvent:
        assert self.tool_step is not None
        delta = run_pb2.RunStepDelta(
            id=self.tool_step.id,
            delta=run_pb2.RunStepDeltaBody(
                step_details=run_pb2.StepDetailsDelta(
                    tool_calls=run_pb2.ToolCallsDelta(tool_calls=calls)
                )
            ),
        )
        return tr.event("thread.run.step.delta", run_step_delta=delta)

    def _new_step(self, now: int, kind: str) -> run_pb2.RunStep:
        return run_pb2.RunStep(
            id=self._new_id("step"),
            created_at=now,
            run_id=self.run_id,
            assistant_id=self.run_row["assistant_id"],
            thread_id=self.thread_id,
            type=run_pb2.RunStepType.Value("RUN_STEP_TYPE_" + kind.upper()),
            status=run_pb2.RUN_STEP_STATUS_IN_PROGRESS,
        )
