"""AssistantService through a real server: CRUD, partial updates, and the validation rules."""

from __future__ import annotations

import grpc

from assistants_grpc.contract.pb import assistant_pb2, common_pb2
from tests.conftest import Stubs
from tests.integration.helpers import expect_error, function_tool, violated_fields

A = assistant_pb2


async def test_create_get_update_delete(stubs: Stubs) -> None:
    created = await stubs.assistants.CreateAssistant(
        A.CreateAssistantRequest(
            model="gpt-4o",
            name="Weather bot",
            instructions="Answer about the weather.",
            tools=[
                function_tool(
                    "get_weather", type="object", properties={"city": {"type": "string"}}
                ),
                common_pb2.Tool(code_interpreter=common_pb2.CodeInterpreterTool()),
            ],
            metadata={"team": "ops"},
            temperature=0.7,
            response_format=common_pb2.ResponseFormat(auto=common_pb2.ResponseFormatAuto()),
        )
    )
    assert created.id.startswith("asst_") and len(created.id) == len("asst_") + 24
    assert created.created_at > 0
    fetched = await stubs.assistants.GetAssistant(A.GetAssistantRequest(assistant_id=created.id))
    assert fetched == created
    assert fetched.temperature == 0.7
    assert not fetched.HasField("description") and not fetched.HasField("top_p")
    assert fetched.tools[0].function.parameters["properties"]["city"]["type"] == "string"

    # Partial: only the fields present change; lists and metadata replace.
    updated = await stubs.assistants.UpdateAssistant(
        A.UpdateAssistantRequest(
            assistant_id=created.id,
            name="Renamed",
            tools=common_pb2.ToolList(tools=[function_tool("other")]),
            metadata=common_pb2.Metadata(values={"new": "1"}),
        )
    )
    assert updated.name == "Renamed"
    assert updated.instructions == "Answer about the weather."
    assert updated.temperature == 0.7
    assert [t.function.name for t in updated.tools] == ["other"]
    assert dict(updated.metadata) == {"new": "1"}
    assert (
        await stubs.assistants.GetAssistant(A.GetAssistantRequest(assistant_id=created.id))
        == updated
    )

    # An empty ToolList clears the tools; an absent one leaves them.
    cleared = await stubs.assistants.UpdateAssistant(
        A.UpdateAssistantRequest(assistant_id=created.id, tools=common_pb2.ToolList())
    )
    assert list(cleared.tools) == []
    kept = await stubs.assistants.UpdateAssistant(
        A.UpdateAssistantRequest(assistant_id=created.id, description="d")
    )
    assert list(kept.tools) == [] and kept.name == "Renamed" and kept.description == "d"

    deleted = await stubs.assistants.DeleteAssistant(
        A.DeleteAssistantRequest(assistant_id=created.id)
    )
    assert deleted == A.DeleteAssistantResponse(id=created.id, deleted=True)
    await expect_error(
        stubs.assistants.GetAssistant(A.GetAssistantRequest(assistant_id=created.id)),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_error(
        stubs.assistants.DeleteAssistant(A.DeleteAssistantRequest(assistant_id=created.id)),
        grpc.StatusCode.NOT_FOUND,
    )


async def test_unknown_ids_are_not_found(stubs: Stubs) -> None:
    error = await expect_error(
        stubs.assistants.GetAssistant(A.GetAssistantRequest(assistant_id="asst_nope")),
        grpc.StatusCode.NOT_FOUND,
    )
    assert error.details() == "No assistant found with id 'asst_nope'."
    await expect_error(
        stubs.assistants.UpdateAssistant(
            A.UpdateAssistantRequest(assistant_id="asst_nope", name="x")
        ),
        grpc.StatusCode.NOT_FOUND,
    )


async def _invalid(stubs: Stubs, request: A.CreateAssistantRequest) -> list[str]:
    error = await expect_error(
        stubs.assistants.CreateAssistant(request), grpc.StatusCode.INVALID_ARGUMENT
    )
    return violated_fields(error)


async def test_validation_rules(stubs: Stubs) -> None:
    ok = {"model": "gpt-4o"}
    cases: list[tuple[A.CreateAssistantRequest, str]] = [
        (A.CreateAssistantRequest(), "model"),
        (A.CreateAssistantRequest(**ok, name="n" * 257), "name"),
        (A.CreateAssistantRequest(**ok, description="d" * 513), "description"),
        (A.CreateAssistantRequest(**ok, instructions="i" * 256_001), "instructions"),
        (A.CreateAssistantRequest(**ok, temperature=2.01), "temperature"),
        (A.CreateAssistantRequest(**ok, temperature=-0.1), "temperature"),
        (A.CreateAssistantRequest(**ok, top_p=1.5), "top_p"),
        (A.CreateAssistantRequest(**ok, metadata={f"k{i}": "v" for i in range(17)}), "metadata"),
        (A.CreateAssistantRequest(**ok, metadata={"k" * 65: "v"}), f"metadata.{'k' * 64}…"),
        (A.CreateAssistantRequest(**ok, metadata={"k": "v" * 513}), "metadata.k"),
        (
            A.CreateAssistantRequest(**ok, tools=[function_tool("bad name")]),
            "tools[0].function.name",
        ),
        (A.CreateAssistantRequest(**ok, tools=[function_tool("f" * 65)]), "tools[0].function.name"),
        (A.CreateAssistantRequest(**ok, tools=[function_tool("")]), "tools[0].function.name"),
        (
            A.CreateAssistantRequest(**ok, tools=[function_tool("f", type="string")]),
            "tools[0].function.parameters.type",
        ),
        (A.CreateAssistantRequest(**ok, tools=[common_pb2.Tool()]), "tools[0].type"),
        (
            A.CreateAssistantRequest(**ok, tools=[function_tool(f"f{i}") for i in range(129)]),
            "tools",
        ),
        (
            A.CreateAssistantRequest(
                **ok,
                tools=[common_pb2.Tool(code_interpreter=common_pb2.CodeInterpreterTool())],
                response_format=common_pb2.ResponseFormat(
                    json_schema=common_pb2.JsonSchemaFormat(name="answer")
                ),
            ),
            "tools",
        ),
    ]
    for request, field in cases:
        assert field in await _invalid(stubs, request), field
    # Nothing of a rejected request was written.
    listed = await stubs.assistants.ListAssistants(A.ListAssistantsRequest())
    assert list(listed.data) == []
    # The limits themselves are allowed.
    at_limits = await stubs.assistants.CreateAssistant(
        A.CreateAssistantRequest(
            **ok,
            name="n" * 256,
            description="d" * 512,
            instructions="i" * 256_000,
            temperature=2,
            top_p=0,
            metadata={f"{i:064d}": "v" * 512 for i in range(16)},
            tools=[function_tool(f"f_{i}-X") for i in range(128)],
        )
    )
    assert len(at_limits.tools) == 128


async def test_update_checks_the_merged_response_format(stubs: Stubs) -> None:
    created = await stubs.assistants.CreateAssistant(
        A.CreateAssistantRequest(
            model="gpt-4o", tools=[common_pb2.Tool(file_search=common_pb2.FileSearchSettings())]
        )
    )
    error = await expect_error(
        stubs.assistants.UpdateAssistant(
            A.UpdateAssistantRequest(
                assistant_id=created.id,
                response_format=common_pb2.ResponseFormat(
                    json_schema=common_pb2.JsonSchemaFormat(name="x")
                ),
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert "tools" in violated_fields(error)
    unchanged = await stubs.assistants.GetAssistant(A.GetAssistantRequest(assistant_id=created.id))
    assert unchanged == created
