"""Assistant use cases: create, get, list, update (partial), delete, each within the caller's
project (the first argument): another project's assistants do not exist here."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from assistants_grpc.contract.openai_json import enum_name
from assistants_grpc.contract.pb import assistant_pb2, common_pb2
from assistants_grpc.services import validation as check
from assistants_grpc.services.deps import Dependencies
from assistants_grpc.services.errors import NotFoundError
from assistants_grpc.services.listing import list_in
from assistants_grpc.services.scope import get_assistant_row
from assistants_grpc.services.vector_stores import make_resource_stores
from assistants_grpc.store import repository as repo
from assistants_grpc.store.mapping import assistant_from_row, assistant_values

AssistantFields = assistant_pb2.CreateAssistantRequest | assistant_pb2.UpdateAssistantRequest


# The Assistant's fields a request may leave out, set as given (create and update alike).
_OPTIONAL_FIELDS = (
    "name",
    "description",
    "instructions",
    "tool_resources",
    "temperature",
    "top_p",
    "response_format",
)


def reasoning_effort(request: Any) -> str | None:
    """The request's reasoning_effort as stored and sent to the model ("low", ...); None when
    it is not set (or set to unspecified: the model's default)."""
    if not request.HasField("reasoning_effort"):
        return None
    return enum_name(common_pb2.ReasoningEffort, request.reasoning_effort)


def _has(request: Any, field: str) -> bool:
    return bool(request.HasField(field))


def _check_fields(v: check.Violations, request: AssistantFields, tools: Any) -> None:
    """The rules both create and update apply to the fields they carry."""
    creating = isinstance(request, assistant_pb2.CreateAssistantRequest)
    if creating or _has(request, "model"):
        check.check_model(v, "model", request.model, required=True)
    for field, maximum in (
        ("name", check.MAX_NAME),
        ("description", check.MAX_DESCRIPTION),
        ("instructions", check.MAX_INSTRUCTIONS),
    ):
        if _has(request, field):
            check.check_length(v, field, getattr(request, field), maximum)
    check.check_tools(v, "tools", tools, check.MAX_ASSISTANT_TOOLS)
    if _has(request, "tool_resources"):
        check.check_tool_resources(
            v, "tool_resources", request.tool_resources, create_form=creating
        )
    if _has(request, "temperature"):
        check.check_range(v, "temperature", request.temperature, 0, 2)
    if _has(request, "top_p"):
        check.check_range(v, "top_p", request.top_p, 0, 1)
    if _has(request, "response_format"):
        check.check_response_format(v, "response_format", request.response_format, tools)
    if _has(request, "reasoning_effort"):
        check.check_enum(
            v,
            "reasoning_effort",
            request.reasoning_effort,
            common_pb2.ReasoningEffort,
            required=False,
        )


class AssistantService:
    def __init__(self, deps: Dependencies) -> None:
        self._deps = deps

    async def create(
        self, project: str, request: assistant_pb2.CreateAssistantRequest
    ) -> assistant_pb2.Assistant:
        v = check.Violations()
        _check_fields(v, request, request.tools)
        check.check_metadata(v, "metadata", request.metadata)
        v.raise_if_any()
        assistant = assistant_pb2.Assistant(
            id=self._deps.new_id("assistant"),
            created_at=self._deps.now(),
            model=request.model,
            tools=request.tools,
            metadata=request.metadata,
        )
        for field in _OPTIONAL_FIELDS:
            if _has(request, field):
                _copy(request, assistant, field)

        def work(connection: Connection) -> bool:
            # The create form's vector_stores become a store named in vector_store_ids.
            queued = assistant.HasField("tool_resources") and make_resource_stores(
                connection, self._deps, project, assistant.tool_resources, expires_after_days=None
            )
            values = assistant_values(assistant) | {
                "project": project,
                "reasoning_effort": reasoning_effort(request),
            }
            repo.insert_row(connection, repo.ASSISTANTS, values)
            return bool(queued)

        if await self._deps.database.transaction(work):
            self._deps.wake_ingestion()
        return assistant

    async def get(self, project: str, assistant_id: str) -> assistant_pb2.Assistant:
        row = await self._deps.database.transaction(
            lambda c: get_assistant_row(c, project, assistant_id)
        )
        return assistant_from_row(row)

    async def list(
        self, project: str, request: assistant_pb2.ListAssistantsRequest
    ) -> assistant_pb2.ListAssistantsResponse:
        return await self._deps.database.transaction(
            lambda c: list_in(
                c,
                request,
                repo.ASSISTANTS,
                repo.in_project(repo.ASSISTANTS, project),
                assistant_from_row,
                assistant_pb2.ListAssistantsResponse(),
            )
        )

    async def update(
        self, project: str, request: assistant_pb2.UpdateAssistantRequest
    ) -> assistant_pb2.Assistant:
        v = check.Violations()
        check.check_required_id(v, "assistant_id", request.assistant_id)
        _check_fields(v, request, request.tools.tools)
        if request.HasField("metadata"):
            check.check_metadata(v, "metadata", request.metadata.values)
        v.raise_if_any()

        def work(connection: Connection) -> assistant_pb2.Assistant:
            row = get_assistant_row(connection, project, request.assistant_id)
            assistant = assistant_from_row(row)
            for field in ("model", *_OPTIONAL_FIELDS):
                if _has(request, field):
                    _copy(request, assistant, field)
            if request.HasField("tools"):
                del assistant.tools[:]
                assistant.tools.extend(request.tools.tools)
            if request.HasField("metadata"):
                assistant.metadata.clear()
                assistant.metadata.update(request.metadata.values)
            # The json_schema rule spans two fields: check the merged result.
            if assistant.HasField("response_format"):
                merged = check.Violations()
                check.check_response_format(
                    merged, "response_format", assistant.response_format, assistant.tools
                )
                merged.raise_if_any()
            values = assistant_values(assistant)
            if request.HasField("reasoning_effort"):  # unspecified clears it: the default again
                values["reasoning_effort"] = reasoning_effort(request)
            repo.update_by_id(connection, repo.ASSISTANTS, assistant.id, values)
            return assistant

        return await self._deps.database.transaction(work)

    async def delete(
        self, project: str, assistant_id: str
    ) -> assistant_pb2.DeleteAssistantResponse:
        def work(connection: Connection) -> bool:
            get_assistant_row(connection, project, assistant_id)
            return repo.delete_by_id(connection, repo.ASSISTANTS, assistant_id)

        deleted = await self._deps.database.transaction(work)
        if not deleted:
            raise NotFoundError("assistant", assistant_id)
        return assistant_pb2.DeleteAssistantResponse(id=assistant_id, deleted=True)


def _copy(source: Any, target: Any, field: str) -> None:
    value = getattr(source, field)
    if hasattr(value, "CopyFrom"):
        getattr(target, field).CopyFrom(value)
    else:
        setattr(target, field, value)


__all__ = ["AssistantService"]
