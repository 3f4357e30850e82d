"""The run state machine (CONTRACT.md §7), owned here and nowhere else.

A run's status is one of :class:`RunStatus` (stored as the OpenAI string). It changes only by one
of the named :data:`MOVES`, and only through one guarded write (`engine.transitions.transition`:
`UPDATE runs … WHERE id = :id AND status = :expected [AND lease_owner = :owner]`). A writer whose
UPDATE finds the run elsewhere gets :class:`RunMoved`: services answer FAILED_PRECONDITION, the
engine reads it as "someone else moved this run" and stops writing.

Every set of statuses the code needs is derived from the table, so a new move cannot leave one of
them behind: the active statuses (those a run can still leave, the thread lock), the terminal ones
(no way out), the claimable ones (a worker has something to do), and the SQL of the thread lock's
partial unique index.

Cancel racing the end of a turn is decided here, by the table and the guard (see `cancel` and
`stop`): a cancel moves an active run to `cancelling` only while it is still active; a turn writes
(every delta flush, its final write) only while the run is `in_progress` and its lease is the
turn's own. Whichever of the two commits first on the run's row wins:
- the cancel first: the turn's next write finds `cancelling`, writes nothing new, and ends the run
  `cancelled` (`stop`: the open message `incomplete` with `run_cancelled`, open steps `cancelled`);
- the turn's terminal write first: the cancel finds the run `completed` (or `failed`…) and is
  refused, FAILED_PRECONDITION "Cannot cancel run with status 'completed'.".
So a stream never shows content after `thread.run.cancelling`, and never a `cancelling` run
ending any way but `cancelled` or `expired`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

__all__ = [
    "ACTIVE",
    "ACTIVE_SQL",
    "CLAIMABLE",
    "MOVES",
    "TERMINAL",
    "TURN_STATUS",
    "LeaseLostError",
    "Move",
    "RunMoved",
    "RunStatus",
    "can_move",
    "move_between",
    "target_of",
]


class RunStatus(StrEnum):
    """A run's status, valued as the OpenAI string (`requires_action`)."""

    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    REQUIRES_ACTION = "requires_action"
    CANCELLING = "cancelling"
    COMPLETED = "completed"
    INCOMPLETE = "incomplete"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"

    @property
    def event(self) -> str:
        """The stream event that announces the run in this status (`thread.run.queued`)."""
        return f"thread.run.{self.value}"


Actor = Literal["service", "worker", "sweep"]


@dataclass(frozen=True, slots=True)
class Move:
    """One allowed change of status: its name, the statuses it leaves, the one it reaches, and
    who makes it (a service call, the worker executing the run, or the expiry sweep)."""

    name: str
    sources: frozenset[RunStatus]
    target: RunStatus
    by: Actor


S = RunStatus
_ACTIVE_ORDER = (S.QUEUED, S.IN_PROGRESS, S.REQUIRES_ACTION, S.CANCELLING)

MOVES: dict[str, Move] = {
    move.name: move
    for move in (
        # CreateRun / CreateThreadAndRun insert the run queued (no UPDATE: nothing to guard).
        Move("create", frozenset(), S.QUEUED, "service"),
        Move("start", frozenset({S.QUEUED}), S.IN_PROGRESS, "worker"),
        # The model called functions: the caller answers them.
        Move("pause", frozenset({S.IN_PROGRESS}), S.REQUIRES_ACTION, "worker"),
        # SubmitToolOutputs: the whole set of outputs arrived.
        Move("resume", frozenset({S.REQUIRES_ACTION}), S.QUEUED, "service"),
        Move("complete", frozenset({S.IN_PROGRESS}), S.COMPLETED, "worker"),
        # A token budget ran out.
        Move("run_out", frozenset({S.IN_PROGRESS}), S.INCOMPLETE, "worker"),
        # The model failed, the run was left half-written by a dead replica, or a runaway loop
        # of server-side tool calls reached its cap. Not from `cancelling`: a cancel that has
        # committed wins, whatever the turn meets afterwards.
        Move("fail", frozenset({S.QUEUED, S.IN_PROGRESS}), S.FAILED, "worker"),
        Move(
            "cancel",
            frozenset({S.QUEUED, S.IN_PROGRESS, S.REQUIRES_ACTION}),
            S.CANCELLING,
            "service",
        ),
        # The worker saw the cancel (its next write, an interrupt, or the heartbeat).
        Move("stop", frozenset({S.CANCELLING}), S.CANCELLED, "worker"),
        Move("expire", frozenset(_ACTIVE_ORDER), S.EXPIRED, "sweep"),
    )
}

ACTIVE: frozenset[RunStatus] = frozenset(s for move in MOVES.values() for s in move.sources)
"""Statuses a run can still leave: while in one, the run holds its thread (CONTRACT.md §11.8)."""
TERMINAL: frozenset[RunStatus] = frozenset(RunStatus) - ACTIVE
"""Statuses no move leaves."""
CLAIMABLE: frozenset[RunStatus] = frozenset(
    s for move in MOVES.values() if move.by == "worker" for s in move.sources
)
"""Statuses in which a worker has something to do: start, continue or end the run."""
TURN_STATUS = MOVES["start"].target
"""The one status in which a turn writes steps, messages and deltas (`in_progress`)."""

ACTIVE_SQL = "status IN ({})".format(
    ", ".join(f"'{status.value}'" for status in RunStatus if status in ACTIVE)
)
"""The predicate of the thread lock's partial unique index (and of migration 0001's)."""


def can_move(status: str, name: str) -> bool:
    """Whether the move `name` may leave `status`."""
    return status in MOVES[name].sources


def move_between(source: str | None, target: str) -> Move | None:
    """The move from `source` (None: no run yet) to `target`, if the table has one."""
    for move in MOVES.values():
        if move.target == target and (
            (source is None and not move.sources) or (source is not None and source in move.sources)
        ):
            return move
    return None


def target_of(source: str, names: Iterable[str]) -> RunStatus:
    """Where a chain of moves from `source` ends, for one write that makes several (tool outputs
    given while a worker is free: `resume` then `start`). ValueError if a move cannot follow."""
    status = RunStatus(source)
    for name in names:
        move = MOVES[name]
        if status not in move.sources:
            raise ValueError(f"{name!r} cannot leave {status.value!r}")
        status = move.target
    return status


class RunMoved(RuntimeError):
    """A guarded write found the run elsewhere than it expected: another writer moved it (a
    cancel, the expiry sweep, a submission), another replica holds its lease, or it went with
    its thread (`found` None). Nothing of the write's transaction is kept."""

    def __init__(
        self,
        run_id: str,
        *,
        expected: str | None,
        found: str | None,
        owner: str | None = None,
        found_owner: str | None = None,
    ) -> None:
        super().__init__(
            f"run {run_id} is {found or 'gone'}, not {expected or 'as expected'}"
            + (
                f" (lease held by {found_owner!r}, not {owner!r})"
                if owner is not None and owner != found_owner
                else ""
            )
        )
        self.run_id = run_id
        self.expected = expected
        self.found = RunStatus(found) if found is not None else None
        self.owner = owner
        self.found_owner = found_owner

    @property
    def deleted(self) -> bool:
        return self.found is None

    @property
    def lease_lost(self) -> bool:
        """The writer no longer holds the run: another replica does, or nobody."""
        return self.owner is not None and self.found_owner != self.owner


class LeaseLostError(RunMoved):
    """The run's lease is no longer the writer's: another replica took the run over (or its
    thread was deleted)."""

    def __init__(
        self,
        run_id: str,
        *,
        expected: str | None = None,
        found: str | None = None,
        owner: str | None = None,
        found_owner: str | None = None,
    ) -> None:
        super().__init__(
            run_id, expected=expected, found=found, owner=owner, found_owner=found_owner
        )
        self.args = (f"lost the lease of run {run_id}",)
