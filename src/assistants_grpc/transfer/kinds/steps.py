"""`thread.run.step`: under its run (and the run's thread)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection

from assistants_grpc.contract.pb import run_pb2
from assistants_grpc.services import validation as check
from assistants_grpc.store import repository as repo
from assistants_grpc.store.mapping import step_from_row, step_values
from assistants_grpc.transfer.kinds._base import Context, Kind, Parent

R = run_pb2


class StepKind(Kind):
    object = "thread.run.step"
    message_type = R.RunStep
    table = repo.RUN_STEPS
    parent = Parent("thread.run", "run_id")
    under_thread = True
    group_field = "run_id"
    required = ("id", "created_at", "run_id", "thread_id", "assistant_id", "type", "status")
    id_fields = ("id", "run_id", "thread_id", "assistant_id")
    soft_references = (("assistant_id", "assistant"),)

    def check(self, obj: R.RunStep, v: check.Violations) -> None:
        super().check(obj, v)
        details = obj.step_details.WhichOneof("details")
        kind = R.RunStepType.Name(obj.type).removeprefix("RUN_STEP_TYPE_").lower()
        if details is not None and details != kind:
            v.add("step_details.type", f"must be the step's type {kind!r}, not {details!r}.")

    def prepare(self, obj: R.RunStep, connection: Connection, context: Context) -> R.RunStep:
        if obj.status != R.RUN_STEP_STATUS_IN_PROGRESS:
            return obj
        ended = context.run_ended_at(connection, obj.run_id)
        if ended is None:
            return obj
        # Its run was active in the dump and has been ended: the step expires with it
        # (CONTRACT §7, §11.7), as transitions.finish_run expires the open steps.
        out = R.RunStep()
        out.CopyFrom(obj)
        out.status = R.RUN_STEP_STATUS_EXPIRED
        out.expired_at = ended
        return out

    def values(self, obj: R.RunStep, context: Context) -> dict[str, Any]:
        return step_values(obj)

    def from_row(self, row: Mapping[str, Any]) -> R.RunStep:
        # A dump keeps everything: file_search results keep the content that only `include[]`
        # shows through the API, so an export imports back whole.
        return step_from_row(row, include_result_content=True)
