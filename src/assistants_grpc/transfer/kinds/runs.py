"""`thread.run`: under its thread. A run active in the dump is imported ended, `expired`.

Nothing here can continue a run that was under way on another service: its model turn, its
lease and its deadline were there. Left active, it would hold its thread's lock (no message or
run could be added), and a worker might even claim a queued one. So it is written ended, the
way a run whose deadline passes ends here (CONTRACT §7, `transitions.finish_run`): status
`expired`, `expires_at` null and `required_action` null, its open steps `expired` and its open
message `incomplete` with `run_expired`. `expires_at` is null rather than the past deadline
because CONTRACT §6 and §11.7 say an ended run has none, and every run that expires here shows
null; an imported run and a native one then read alike. The end is dated at the run's deadline
(`expires_at`, or `created_at` + 600 as CONTRACT §7 sets it, at the latest now), which depends
only on the dump, so importing the same dump twice gives the same objects.

Imported runs have no event history (the dump has none). Their log is their terminal event and
`done`, so `WatchRun` of an imported run gives its final snapshot and ends, as it ends for a run
that finished here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from sqlalchemy import Connection, RowMapping

from assistants_grpc.contract.openai_json import enum_name
from assistants_grpc.contract.pb import run_pb2
from assistants_grpc.events import log
from assistants_grpc.services import validation as check
from assistants_grpc.store import repository as repo
from assistants_grpc.store import run_states
from assistants_grpc.store.mapping import run_from_row, run_values
from assistants_grpc.transfer.kinds._base import Context, Kind, Parent

R = run_pb2

# CONTRACT §7: a run's deadline is created_at + 600 when it is created.
DEADLINE_SECONDS: Final = 600
# The run state machine's active statuses (store/run_states.py), as the proto's enum values.
ACTIVE: Final = frozenset(
    R.RunStatus.Value("RUN_STATUS_" + status.value.upper()) for status in run_states.ACTIVE
)
# The log of an imported run: its terminal event and done.
LOGGED_EVENTS: Final = 2


def deadline(created_at: int, expires_at: int | None, now: int) -> int:
    """When a run active in the dump is taken as ended."""
    return min(expires_at if expires_at is not None else created_at + DEADLINE_SECONDS, now)


class RunKind(Kind):
    object = "thread.run"
    message_type = R.Run
    table = repo.RUNS
    parent = Parent("thread", "thread_id")
    under_thread = True
    group_field = "thread_id"
    required = ("id", "created_at", "thread_id", "assistant_id", "status", "model")
    id_fields = ("id", "thread_id", "assistant_id")
    soft_references = (("assistant_id", "assistant"),)

    def check(self, obj: R.Run, v: check.Violations) -> None:
        super().check(obj, v)
        check.check_model(v, "model", obj.model, required=True)
        check.check_length(v, "instructions", obj.instructions, check.MAX_INSTRUCTIONS)

    def ends_at(self, obj: R.Run, now: int) -> int | None:
        if obj.status not in ACTIVE:
            return None
        expires_at = obj.expires_at if obj.HasField("expires_at") else None
        return deadline(obj.created_at, expires_at, now)

    def prepare(self, obj: R.Run, connection: Connection, context: Context) -> R.Run:
        if obj.status not in ACTIVE:
            return obj
        out = R.Run()
        out.CopyFrom(obj)
        out.status = R.RUN_STATUS_EXPIRED
        out.ClearField("expires_at")
        out.ClearField("required_action")
        return out

    def values(self, obj: R.Run, context: Context) -> dict[str, Any]:
        return run_values(obj) | {
            "tool_resources": None,
            "reasoning_effort": None,
            "last_sequence": LOGGED_EVENTS,
            "lease_owner": None,
            "lease_expires_at": None,
        }

    def from_row(self, row: Mapping[str, Any]) -> R.Run:
        return run_from_row(row)

    def written(
        self, connection: Connection, obj: R.Run, context: Context, *, previous: RowMapping | None
    ) -> None:
        if previous is not None:
            repo.delete_run_events(connection, obj.id)
        status = enum_name(R.RunStatus, obj.status)
        events = [R.RunEvent(event=f"thread.run.{status}", run=obj), R.RunEvent(event="done")]
        log.start(connection, obj.id, obj.thread_id, events)
