"""`thread.message`: under its thread, with its token count made as the API makes it. Its
assistant and the Files of its attachments may be absent, never another project's."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import Connection

from assistants_grpc.contract.pb import message_pb2
from assistants_grpc.engine.tokens import COUNTING_ENCODING
from assistants_grpc.services import validation as check
from assistants_grpc.store import repository as repo
from assistants_grpc.store.mapping import message_from_row, message_values
from assistants_grpc.transfer.kinds._base import Context, Kind, Parent

M = message_pb2


class MessageKind(Kind):
    object = "thread.message"
    message_type = M.Message
    table = repo.MESSAGES
    parent = Parent("thread", "thread_id")
    under_thread = True
    group_field = "thread_id"
    required = ("id", "created_at", "thread_id", "role")
    id_fields = ("id", "thread_id", "run_id", "assistant_id")
    soft_references = (("assistant_id", "assistant"),)

    def check(self, obj: M.Message, v: check.Violations) -> None:
        super().check(obj, v)
        if obj.role == M.MESSAGE_ROLE_UNSPECIFIED:
            v.add("role", "required.")

    def references(self, obj: M.Message) -> Iterator[tuple[str, str, str]]:
        yield from super().references(obj)
        for i, attachment in enumerate(obj.attachments):
            yield f"attachments[{i}].file_id", "file", attachment.file_id

    def prepare(self, obj: M.Message, connection: Connection, context: Context) -> M.Message:
        status = obj.status
        # The real service has sent `status: null` for messages created through the API;
        # CONTRACT §11.11 says to store those as completed.
        if status == M.MESSAGE_STATUS_UNSPECIFIED:
            out = M.Message()
            out.CopyFrom(obj)
            out.status = M.MESSAGE_STATUS_COMPLETED
            return out
        if status != M.MESSAGE_STATUS_IN_PROGRESS or not obj.HasField("run_id"):
            return obj
        ended = context.run_ended_at(connection, obj.run_id)
        if ended is None:
            return obj
        # Its run was active in the dump and has been ended: as transitions.finish_run ends
        # the open message of an expired run.
        out = M.Message()
        out.CopyFrom(obj)
        out.status = M.MESSAGE_STATUS_INCOMPLETE
        out.incomplete_at = ended
        out.incomplete_details.reason = M.MESSAGE_INCOMPLETE_REASON_RUN_EXPIRED
        return out

    def values(self, obj: M.Message, context: Context) -> dict[str, Any]:
        return message_values(obj) | {
            "token_count": context.content_tokens(obj.content),
            "token_encoding": COUNTING_ENCODING,
        }

    def from_row(self, row: Mapping[str, Any]) -> M.Message:
        return message_from_row(row)
