"""`assistant`: top level, in the project it is imported into. The Files and vector stores of
its `tool_resources` may be absent (deleted since), never another project's."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from assistants_grpc.contract.pb import assistant_pb2
from assistants_grpc.services import validation as check
from assistants_grpc.store import repository as repo
from assistants_grpc.store.mapping import assistant_from_row, assistant_values
from assistants_grpc.transfer.kinds._base import Context, Kind, resource_references


class AssistantKind(Kind):
    object = "assistant"
    message_type = assistant_pb2.Assistant
    table = repo.ASSISTANTS
    top_level = True
    required = ("id", "created_at", "model")

    def check(self, obj: assistant_pb2.Assistant, v: check.Violations) -> None:
        super().check(obj, v)
        check.check_model(v, "model", obj.model, required=True)
        check.check_length(v, "name", obj.name, check.MAX_NAME)
        check.check_length(v, "description", obj.description, check.MAX_DESCRIPTION)
        check.check_length(v, "instructions", obj.instructions, check.MAX_INSTRUCTIONS)

    def references(self, obj: assistant_pb2.Assistant) -> Iterator[tuple[str, str, str]]:
        return resource_references(obj.tool_resources)

    def values(self, obj: assistant_pb2.Assistant, context: Context) -> dict[str, Any]:
        # reasoning_effort is request-only (CONTRACT §3): no dump has it, runs use the model's.
        return assistant_values(obj) | {"project": context.project, "reasoning_effort": None}

    def from_row(self, row: Mapping[str, Any]) -> assistant_pb2.Assistant:
        return assistant_from_row(row)
