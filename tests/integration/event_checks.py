"""Checks a run's event log against CONTRACT.md §7, §9 and §11, with the run's path checked
against the state machine's own table (store/run_states.py), not a copy of it.

`check_run_log(events)` takes a run's whole log (from sequence 1) and raises AssertionError naming
the first event that breaks a rule:
- sequences 1, 2, 3 … without gaps; `thread.created` only first;
- every `thread.run.<status>` event is a move of the table from the status before it (the first
  is `create`; `thread.run.queued` right after `thread.run.created` repeats its status);
- content (steps and messages created, started, deltas) only while the run is in the table's
  turn status, `in_progress`: never after `thread.run.cancelling`;
- while the run is cancelling, only the cancel's closings (a message `incomplete`, steps
  `cancelled`) or an expiry's;
- snapshots before deltas: a created message has no content, a created tool step no calls; one
  step at a time, one message at a time, deltas only for the open ones; a call's `id` in its
  first delta only;
- `done` only after `thread.run.requires_action` or the run's terminal event; the log ends there.
"""

from __future__ import annotations

from collections.abc import Sequence

from assistants_grpc.contract.pb import run_pb2
from assistants_grpc.store.run_states import (
    TERMINAL,
    TURN_STATUS,
    RunStatus,
    move_between,
)

R = run_pb2
_STATUS_BY_EVENT = {status.event: status for status in RunStatus}
_CONTENT = {
    "thread.run.step.created",
    "thread.run.step.in_progress",
    "thread.run.step.delta",
    "thread.message.created",
    "thread.message.in_progress",
    "thread.message.delta",
}
_STEP_ENDS = {
    "thread.run.step.completed",
    "thread.run.step.cancelled",
    "thread.run.step.failed",
    "thread.run.step.expired",
}
_MESSAGE_ENDS = {"thread.message.completed", "thread.message.incomplete"}
_CANCEL_CLOSINGS = {
    "thread.message.incomplete",
    "thread.run.step.cancelled",
    "thread.run.step.expired",
}


def check_run_log(events: Sequence[R.RunEvent], *, whole: bool = True) -> list[RunStatus]:
    """The statuses the run went through; AssertionError at the first broken rule."""
    path: list[RunStatus] = []
    status: RunStatus | None = None
    previous = ""
    message: str | None = None  # the open message
    steps: dict[str, str] = {}  # open step id -> type
    calls_seen: dict[str, set[int]] = {}
    ended = False
    for position, event in enumerate(events):
        name = event.event
        where = f"event {event.sequence} ({name}) after {previous or 'nothing'}"
        assert event.sequence == position + 1, f"{where}: a gap in the sequence"
        assert not ended, f"{where}: after the run's final done"
        if name == "thread.created":
            assert position == 0, f"{where}: thread.created is only first"
        elif name == "thread.run.created":
            assert status is None and move_between(None, RunStatus.QUEUED) is not None, where
            assert event.run.status == R.RUN_STATUS_QUEUED, f"{where}: not queued"
            status = RunStatus.QUEUED
            path.append(status)
        elif name in _STATUS_BY_EVENT:
            target = _STATUS_BY_EVENT[name]
            if target == status:
                assert previous == "thread.run.created", f"{where}: {target} again"
            else:
                assert status is not None, f"{where}: before thread.run.created"
                move = move_between(status, target)
                assert move is not None, f"{where}: no move from {status} to {target}"
                status = target
                path.append(status)
                if target in TERMINAL:
                    assert message is None, f"{where}: message {message} left open"
                    assert not steps, f"{where}: steps {sorted(steps)} left open"
        elif name in _CONTENT:
            assert status == TURN_STATUS, f"{where}: content while the run is {status}"
            _check_content(event, where, steps, calls_seen, message)
            if name == "thread.message.created":
                message = event.message.id
            elif name == "thread.run.step.created":
                steps[event.run_step.id] = R.RunStepType.Name(event.run_step.type)
        elif name in _STEP_ENDS or name in _MESSAGE_ENDS:
            assert status is not None and status not in TERMINAL, f"{where}: after the end"
            if status == RunStatus.CANCELLING:
                assert name in _CANCEL_CLOSINGS, f"{where}: not a cancel's closing"
            if name in _MESSAGE_ENDS:
                assert event.message.id == message, f"{where}: not the open message"
                message = None
            else:
                assert event.run_step.id in steps, f"{where}: not an open step"
                del steps[event.run_step.id]
        elif name == "done":
            assert status == RunStatus.REQUIRES_ACTION or status in TERMINAL, (
                f"{where}: done while the run is {status}"
            )
            assert previous in _STATUS_BY_EVENT, f"{where}: done not right after a run event"
            ended = status in TERMINAL
        else:
            raise AssertionError(f"{where}: unknown event")
        previous = name
    if whole:
        assert ended, f"the log ends at {previous}, before the run's final done"
    return path


def _check_content(
    event: R.RunEvent,
    where: str,
    steps: dict[str, str],
    calls_seen: dict[str, set[int]],
    message: str | None,
) -> None:
    name = event.event
    if name == "thread.run.step.created":
        step = event.run_step
        assert not steps, f"{where}: step {sorted(steps)} is still open (one step at a time)"
        if step.type == R.RUN_STEP_TYPE_TOOL_CALLS:
            assert not step.step_details.tool_calls.tool_calls, f"{where}: calls in a snapshot"
        calls_seen[step.id] = set()
    elif name == "thread.run.step.in_progress":
        assert event.run_step.id in steps, f"{where}: step not created"
    elif name == "thread.run.step.delta":
        delta = event.run_step_delta
        assert delta.id in steps, f"{where}: delta of a step not open"
        for call in delta.delta.step_details.tool_calls.tool_calls:
            first = call.index not in calls_seen[delta.id]
            assert call.HasField("id") == first, f"{where}: call {call.index}'s id not once, first"
            assert call.WhichOneof("call") is not None, f"{where}: call {call.index} without type"
            calls_seen[delta.id].add(call.index)
    elif name == "thread.message.created":
        assert message is None, f"{where}: message {message} still open (no interleaving)"
        assert not event.message.content, f"{where}: content in the created snapshot"
    elif name == "thread.message.in_progress":
        assert event.message.id == message or message is None, where
    elif name == "thread.message.delta":
        assert event.message_delta.id == message, f"{where}: delta of a message not open"
