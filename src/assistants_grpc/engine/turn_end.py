"""How a model turn ends, decided from what the turn folded. Pure: the run loop acts on it.

A turn ends in one of three ways:
- `Ended`: the run ends here (answered, token budget spent, content filtered, the model failed,
  or a runaway loop of server-side calls reached the cap);
- `Calls`: the model called tools; the server-side ones run first, then the run either goes on to
  its next turn or, if functions were called too, waits for their outputs (`requires_action`);
- `Interrupted`: a cancel, an expiry, a handback or the thread's deletion stopped the turn; it
  writes nothing new (see store/run_states.py for why a cancel wins over what the turn had).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from assistants_grpc.engine import transitions as tr
from assistants_grpc.engine.accumulator import CallDraft, TurnAccumulator
from assistants_grpc.engine.model_stream import ModelError
from assistants_grpc.engine.server_tools import ToolExecutor
from assistants_grpc.store.run_states import RunStatus

__all__ = [
    "INTERRUPT_ENDINGS",
    "Calls",
    "Ended",
    "Interrupted",
    "Outcome",
    "Reason",
    "decide",
    "tool_rounds_message",
]

# Why a turn is interrupted. "handback": the replica is stopping; the run keeps its state and its
# lease is released so another replica (or the next start) takes it over.
# "deleted": the run went with its thread; nothing is left to write.
Reason = Literal["cancel", "expire", "handback", "deleted"]
# How the run ends when a cancel or an expiry interrupts it (the other two leave it as it is).
INTERRUPT_ENDINGS: dict[Reason, tr.Ending] = {"cancel": tr.CANCELLED, "expire": tr.EXPIRED}


@dataclass(frozen=True, slots=True)
class Ended:
    ending: tr.Ending
    with_usage: bool = True
    """Whether the turn's usage is known and belongs to its last step (not for a failed call)."""


@dataclass(frozen=True, slots=True)
class Calls:
    server: tuple[tuple[CallDraft, ToolExecutor], ...]
    functions: tuple[CallDraft, ...]


@dataclass(frozen=True, slots=True)
class Interrupted:
    reason: Reason


Outcome = Ended | Calls | Interrupted


def tool_rounds_message(cap: int) -> str:
    return (
        f"The run made {cap} rounds of server-side tool calls without answering "
        "(the limit set by --max-tool-rounds)."
    )


def decide(
    turn: TurnAccumulator,
    *,
    error: ModelError | None = None,
    interrupt: Reason | None = None,
    server_functions: Mapping[str, ToolExecutor],
    server_rounds: int,
    max_tool_rounds: int,
) -> Outcome:
    """How the turn ends. `server_functions` maps the function names the run offered for its
    built-in tools to their executors; `server_rounds` counts the run's earlier turns that made
    server-side calls.

    A turn cut by its completion budget ends `incomplete` even if it was writing calls (they may
    be cut short). A call of a server-side function while the run already made `max_tool_rounds`
    such rounds ends the run `failed`: a model looping on its tools would otherwise run until
    the run expires, with nobody able to tell why (`incomplete` has no reason for it, and its
    `incomplete_details` cannot carry a message; `failed` carries `last_error.message`).
    """
    if interrupt is not None:
        return Interrupted(interrupt)
    if error is not None:
        return Ended(tr.failed(error.code, error.message), with_usage=False)
    reason = turn.finish_reason
    if reason == "length":
        return Ended(tr.incomplete("max_completion_tokens"))
    calls = turn.ordered_calls()
    if calls:
        server = tuple(
            (call, server_functions[call.name]) for call in calls if call.name in server_functions
        )
        functions = tuple(call for call in calls if call.name not in server_functions)
        if server and server_rounds >= max_tool_rounds:
            return Ended(tr.failed("server_error", tool_rounds_message(max_tool_rounds)))
        return Calls(server, functions)
    if reason == "content_filter":
        return Ended(tr.Ending(RunStatus.COMPLETED, message_reason="content_filter"))
    return Ended(tr.COMPLETED)
