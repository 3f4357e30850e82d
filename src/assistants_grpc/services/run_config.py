"""The rules of a run request and the run's effective configuration, frozen at creation.

CONTRACT.md §6 and §11.9: fields the request leaves out come from the assistant, then from the
defaults (temperature and top_p 1, tool_choice "auto", response_format "auto", parallel tool calls
on, truncation auto), so a Run never shows null where the caller simply left a value out.
"""

from __future__ import annotations

from typing import Any

from assistants_grpc.contract.pb import assistant_pb2, common_pb2, run_pb2
from assistants_grpc.services import validation as check
from assistants_grpc.services.limits import Limits
from assistants_grpc.services.messages import check_message_inputs
from assistants_grpc.store.mapping import INCLUDE_FILE_SEARCH_CONTENT

RunRequest = run_pb2.CreateRunRequest | run_pb2.CreateThreadAndRunRequest

DEFAULT_TRUNCATION = run_pb2.TruncationStrategy(type=run_pb2.TRUNCATION_TYPE_AUTO)


def check_run_request(v: check.Violations, request: RunRequest, limits: Limits) -> None:
    """Every rule that needs only the request itself."""
    check.check_required_id(v, "assistant_id", request.assistant_id)
    if request.HasField("model"):
        check.check_model(v, "model", request.model, required=True)
    if request.HasField("instructions"):
        check.check_length(v, "instructions", request.instructions, check.MAX_INSTRUCTIONS)
    if request.HasField("tools"):
        check.check_tools(v, "tools", request.tools.tools, check.MAX_RUN_TOOLS)
    check.check_metadata(v, "metadata", request.metadata)
    if request.HasField("temperature"):
        check.check_range(v, "temperature", request.temperature, 0, 2)
    if request.HasField("top_p"):
        check.check_range(v, "top_p", request.top_p, 0, 1)
    for field in ("max_prompt_tokens", "max_completion_tokens"):
        if request.HasField(field) and getattr(request, field) < check.MIN_TOKEN_BUDGET:
            v.add(
                field,
                f"integer below minimum value. Expected a value >= {check.MIN_TOKEN_BUDGET}, "
                f"got {getattr(request, field)}.",
            )
    if request.HasField("truncation_strategy"):
        _check_truncation(v, request.truncation_strategy)
    if request.HasField("reasoning_effort"):
        check.check_enum(
            v,
            "reasoning_effort",
            request.reasoning_effort,
            common_pb2.ReasoningEffort,
            required=False,
        )
    if isinstance(request, run_pb2.CreateRunRequest):
        check.check_required_id(v, "thread_id", request.thread_id)
        if request.HasField("additional_instructions"):
            check.check_length(
                v,
                "additional_instructions",
                request.additional_instructions,
                check.MAX_INSTRUCTIONS,
            )
        check_message_inputs(v, "additional_messages", request.additional_messages, limits)
        for i, value in enumerate(request.include):
            if value != INCLUDE_FILE_SEARCH_CONTENT:
                v.add(
                    f"include[{i}]", f"the only allowed value is {INCLUDE_FILE_SEARCH_CONTENT!r}."
                )
    else:
        if request.HasField("tool_resources"):
            check.check_tool_resources(
                v, "tool_resources", request.tool_resources, create_form=False
            )


def _check_truncation(v: check.Violations, strategy: run_pb2.TruncationStrategy) -> None:
    field = "truncation_strategy"
    check.check_enum(v, f"{field}.type", strategy.type, run_pb2.TruncationType, required=True)
    if strategy.type == run_pb2.TRUNCATION_TYPE_LAST_MESSAGES:
        if not strategy.HasField("last_messages"):
            v.add(f"{field}.last_messages", "required when type is last_messages.")
        elif strategy.last_messages < 1:
            v.add(f"{field}.last_messages", "integer below minimum value. Expected >= 1.")
    elif strategy.HasField("last_messages") and strategy.last_messages < 1:
        v.add(f"{field}.last_messages", "integer below minimum value. Expected >= 1.")


def join_instructions(base: str | None, additional: str | None) -> str | None:
    """`additional_instructions` go after the effective instructions, as a new paragraph."""
    if not additional:
        return base
    if not base:
        return additional
    return f"{base}\n\n{additional}"


def effective_run(
    assistant: assistant_pb2.Assistant,
    request: RunRequest,
    *,
    run_id: str,
    thread_id: str,
    now: int,
    expires_in: int,
) -> run_pb2.Run:
    """The queued Run with every setting resolved; INVALID_ARGUMENT if the merge breaks a rule."""
    run = run_pb2.Run(
        id=run_id,
        created_at=now,
        thread_id=thread_id,
        assistant_id=assistant.id,
        status=run_pb2.RUN_STATUS_QUEUED,
        expires_at=now + expires_in,
        model=request.model if request.HasField("model") else assistant.model,
        tools=request.tools.tools if request.HasField("tools") else assistant.tools,
        metadata=request.metadata,
        temperature=_first(request, assistant, "temperature", 1.0),
        top_p=_first(request, assistant, "top_p", 1.0),
        parallel_tool_calls=(
            request.parallel_tool_calls if request.HasField("parallel_tool_calls") else True
        ),
    )
    base = (
        request.instructions
        if request.HasField("instructions")
        else (assistant.instructions if assistant.HasField("instructions") else None)
    )
    additional = (
        request.additional_instructions
        if isinstance(request, run_pb2.CreateRunRequest)
        and request.HasField("additional_instructions")
        else None
    )
    # The schema (and the openai SDK, which validates it) types a run's instructions as a
    # string: a run without any gets "", never null.
    run.instructions = join_instructions(base, additional) or ""
    for field in ("max_prompt_tokens", "max_completion_tokens"):
        if request.HasField(field):
            setattr(run, field, getattr(request, field))
    run.truncation_strategy.CopyFrom(
        request.truncation_strategy
        if request.HasField("truncation_strategy")
        else DEFAULT_TRUNCATION
    )
    if request.HasField("tool_choice"):
        run.tool_choice.CopyFrom(request.tool_choice)
    else:
        run.tool_choice.mode = common_pb2.TOOL_CHOICE_MODE_AUTO
    if request.HasField("response_format"):
        run.response_format.CopyFrom(request.response_format)
    elif assistant.HasField("response_format"):
        run.response_format.CopyFrom(assistant.response_format)
    else:
        run.response_format.auto.SetInParent()

    # Rules that span the merged values.
    v = check.Violations()
    check.check_tool_choice(v, "tool_choice", run.tool_choice, run.tools)
    check.check_response_format(v, "response_format", run.response_format, run.tools)
    v.raise_if_any()
    return run


def _first(request: Any, assistant: Any, field: str, default: float) -> float:
    """The request's value, else the assistant's, else the default."""
    if request.HasField(field):
        return float(getattr(request, field))
    if assistant.HasField(field):
        return float(getattr(assistant, field))
    return default


__all__ = [
    "INCLUDE_FILE_SEARCH_CONTENT",
    "check_run_request",
    "effective_run",
    "join_instructions",
]
