"""The run state machine: its table, the sets derived from it, and the log checker built on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistants_grpc.contract.pb import message_pb2, run_pb2
from assistants_grpc.store import run_states as rs
from assistants_grpc.store.run_states import RunStatus as S
from tests.integration.event_checks import check_run_log

R = run_pb2
MIGRATION = Path(rs.__file__).parent / "migrations" / "versions" / "0001_initial_schema.py"


def test_the_sets_come_from_the_table() -> None:
    assert rs.ACTIVE == {S.QUEUED, S.IN_PROGRESS, S.REQUIRES_ACTION, S.CANCELLING}
    assert rs.TERMINAL == {S.COMPLETED, S.INCOMPLETE, S.FAILED, S.CANCELLED, S.EXPIRED}
    assert rs.CLAIMABLE == {S.QUEUED, S.IN_PROGRESS, S.CANCELLING}
    assert rs.TURN_STATUS == S.IN_PROGRESS
    # Every status is reachable, and every terminal one only by its own move.
    reached = {move.target for move in rs.MOVES.values()}
    assert reached == set(S)


def test_the_thread_lock_index_is_the_one_migration_0001_made() -> None:
    # Migrations are history and keep their literal; the table's derivation must equal it.
    assert rs.ACTIVE_SQL == "status IN ('queued', 'in_progress', 'requires_action', 'cancelling')"
    assert MIGRATION.read_text().count(f'"{rs.ACTIVE_SQL}"') == 4


def test_moves_between_statuses() -> None:
    assert rs.move_between(None, S.QUEUED) == rs.MOVES["create"]
    assert rs.move_between(S.IN_PROGRESS, S.CANCELLING) == rs.MOVES["cancel"]
    assert rs.move_between(S.CANCELLING, S.CANCELLED) == rs.MOVES["stop"]
    assert rs.move_between(S.REQUIRES_ACTION, S.EXPIRED) == rs.MOVES["expire"]
    # A committed cancel wins: a cancelling run never completes, fails or pauses.
    for target in (S.COMPLETED, S.FAILED, S.INCOMPLETE, S.REQUIRES_ACTION, S.IN_PROGRESS):
        assert rs.move_between(S.CANCELLING, target) is None
    assert rs.move_between(S.COMPLETED, S.CANCELLING) is None
    assert not rs.can_move("completed", "cancel") and rs.can_move("requires_action", "cancel")
    assert rs.target_of("requires_action", ["resume", "start"]) == S.IN_PROGRESS
    with pytest.raises(ValueError, match="cannot leave"):
        rs.target_of("queued", ["resume"])


def test_run_moved_says_where_the_run_was() -> None:
    moved = rs.RunMoved(
        "run_1", expected="in_progress", found="cancelling", owner="me", found_owner="me"
    )
    assert moved.found == S.CANCELLING and not moved.deleted and not moved.lease_lost
    lost = rs.LeaseLostError("run_1", found="in_progress", owner="me", found_owner="other")
    assert isinstance(lost, rs.RunMoved) and lost.lease_lost
    assert str(lost) == "lost the lease of run run_1"
    assert rs.RunMoved("run_1", expected="queued", found=None).deleted


# --- the log checker -------------------------------------------------------------------------


def _run(status: int) -> R.Run:
    return R.Run(id="run_1", status=status)


def _log(*items: tuple[str, object]) -> list[R.RunEvent]:
    events = []
    for i, (name, payload) in enumerate(items, start=1):
        event = R.RunEvent(event=name, sequence=i)
        if isinstance(payload, R.Run):
            event.run.CopyFrom(payload)
        elif isinstance(payload, R.RunStep):
            event.run_step.CopyFrom(payload)
        elif isinstance(payload, message_pb2.Message):
            event.message.CopyFrom(payload)
        elif isinstance(payload, message_pb2.MessageDelta):
            event.message_delta.CopyFrom(payload)
        events.append(event)
    return events


STEP = R.RunStep(id="step_1", type=R.RUN_STEP_TYPE_MESSAGE_CREATION)
MESSAGE = message_pb2.Message(id="msg_1")
DELTA = message_pb2.MessageDelta(id="msg_1")
START = [
    ("thread.run.created", _run(R.RUN_STATUS_QUEUED)),
    ("thread.run.queued", _run(R.RUN_STATUS_QUEUED)),
    ("thread.run.in_progress", _run(R.RUN_STATUS_IN_PROGRESS)),
    ("thread.run.step.created", STEP),
    ("thread.run.step.in_progress", STEP),
    ("thread.message.created", MESSAGE),
    ("thread.message.in_progress", MESSAGE),
    ("thread.message.delta", DELTA),
]


def test_the_checker_takes_legal_paths() -> None:
    completed = _log(
        *START,
        ("thread.message.completed", MESSAGE),
        ("thread.run.step.completed", STEP),
        ("thread.run.completed", _run(R.RUN_STATUS_COMPLETED)),
        ("done", None),
    )
    assert check_run_log(completed) == [S.QUEUED, S.IN_PROGRESS, S.COMPLETED]
    cancelled = _log(
        *START,
        ("thread.run.cancelling", _run(R.RUN_STATUS_CANCELLING)),
        ("thread.message.incomplete", MESSAGE),
        ("thread.run.step.cancelled", STEP),
        ("thread.run.cancelled", _run(R.RUN_STATUS_CANCELLED)),
        ("done", None),
    )
    assert check_run_log(cancelled)[-2:] == [S.CANCELLING, S.CANCELLED]


@pytest.mark.parametrize(
    ("tail", "complaint"),
    [
        # The impossible sequence of issue 11: content after cancelling, then completed.
        (
            [
                ("thread.run.cancelling", _run(R.RUN_STATUS_CANCELLING)),
                ("thread.message.delta", DELTA),
            ],
            "content while the run is cancelling",
        ),
        (
            [
                ("thread.run.cancelling", _run(R.RUN_STATUS_CANCELLING)),
                ("thread.message.completed", MESSAGE),
            ],
            "not a cancel's closing",
        ),
        (
            [
                ("thread.run.cancelling", _run(R.RUN_STATUS_CANCELLING)),
                ("thread.message.incomplete", MESSAGE),
                ("thread.run.step.cancelled", STEP),
                ("thread.run.completed", _run(R.RUN_STATUS_COMPLETED)),
            ],
            "no move from cancelling to completed",
        ),
        (
            [("thread.run.completed", _run(R.RUN_STATUS_COMPLETED))],
            "left open",
        ),
        ([("done", None)], "done while the run is in_progress"),
        ([("thread.message.created", MESSAGE)], "still open"),
    ],
)
def test_the_checker_refuses_impossible_paths(
    tail: list[tuple[str, object]], complaint: str
) -> None:
    with pytest.raises(AssertionError, match=complaint):
        check_run_log(_log(*START, *tail), whole=False)
