"""What one model turn sends: the tools offered, the prompt within its budget, the parameters.

The run's tools are Assistants tools; a chat-completions model only knows functions, so each
built-in tool with a registered executor is offered as its executor's function (`file_search`,
`python`); one without an executor is not offered at all (DESIGN.md, "How a chat-completions
model sees the built-in tools").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from assistants_grpc.engine.context import TurnContext
from assistants_grpc.engine.models import ModelRoute
from assistants_grpc.engine.prompt import (
    DEFAULT_SHORTEN_FRACTION,
    Prompt,
    PromptRequest,
    build_prompt,
    chat_tools,
)
from assistants_grpc.engine.server_tools import ToolExecutor, ToolRegistry
from assistants_grpc.engine.tokens import TokenCounter

__all__ = [
    "DEFAULT_COMPLETION_RESERVE",
    "OfferedTools",
    "completion_reserve",
    "model_params",
    "offered_tools",
    "read_limits",
    "turn_prompt",
]

RunRow = Mapping[Any, Any]
JSON = dict[str, Any]

# Tokens kept free for the answer when the run sets no completion budget.
DEFAULT_COMPLETION_RESERVE = 4096


@dataclass(frozen=True, slots=True)
class OfferedTools:
    """The chat-completions tools of a turn, and the executors of the built-in ones offered,
    by the function name the model calls them by."""

    definitions: list[JSON]
    server: Mapping[str, ToolExecutor]
    by_type: Mapping[str, JSON]  # the run's built-in tool definitions offered, by type


def offered_tools(tools: Sequence[JSON], registry: ToolRegistry) -> OfferedTools:
    definitions = chat_tools(tools, registry)
    server: dict[str, ToolExecutor] = {}
    by_type: dict[str, JSON] = {}
    for tool in tools:
        executor = registry.for_type(tool.get("type", ""))
        if executor is not None and tool["type"] not in by_type:
            server[executor.function_name] = executor
            by_type[tool["type"]] = tool
    return OfferedTools(definitions, server, by_type)


def completion_reserve(window: int, completion_left: int | None) -> int:
    """Tokens kept free for the answer: the completion budget left, or a default, and never
    more than half the context window."""
    wanted = completion_left if completion_left is not None else DEFAULT_COMPLETION_RESERVE
    return max(min(wanted, window // 2), 0)


def read_limits(run_row: RunRow, route: ModelRoute) -> tuple[int, int | None]:
    """The most prompt tokens a turn of this run can send, and its last_messages: what the
    context loader needs to skip messages that cannot be in the prompt."""
    window = route.context_window
    budget = window - completion_reserve(window, run_row["max_completion_tokens"])
    if run_row["max_prompt_tokens"] is not None:
        budget = min(budget, run_row["max_prompt_tokens"])
    strategy = run_row["truncation_strategy"] or {}
    last = strategy.get("last_messages") if strategy.get("type") == "last_messages" else None
    return budget, last


def turn_prompt(
    run_row: RunRow,
    context: TurnContext,
    route: ModelRoute,
    tools: Sequence[JSON],
    tokens: TokenCounter,
    *,
    shorten_fraction: float = DEFAULT_SHORTEN_FRACTION,
) -> tuple[Prompt, int | None]:
    """The prompt, and the completion budget left (None when the run sets none)."""
    completion_left = None
    if run_row["max_completion_tokens"] is not None:
        completion_left = run_row["max_completion_tokens"] - context.completion_tokens_used
    prompt_left = None
    if run_row["max_prompt_tokens"] is not None:
        prompt_left = run_row["max_prompt_tokens"] - context.prompt_tokens_used
    strategy = run_row["truncation_strategy"] or {"type": "auto", "last_messages": None}
    request = PromptRequest(
        model=run_row["model"],
        instructions=run_row["instructions"],
        messages=context.messages,
        rounds=context.rounds,
        tools=tools,
        truncation=strategy["type"],
        last_messages=strategy.get("last_messages"),
        context_window=route.context_window,
        completion_reserve=completion_reserve(route.context_window, completion_left),
        max_prompt_tokens=prompt_left,
        earlier_rounds=context.earlier_rounds,
        shorten_fraction=shorten_fraction,
    )
    return build_prompt(request, tokens), completion_left


def model_params(
    run_row: RunRow,
    prompt: Prompt,
    completion_left: int | None,
    route: ModelRoute,
    offered: OfferedTools,
    *,
    first_turn: bool,
) -> dict[str, Any]:
    """The chat-completions request of a turn. `first_turn`: no tool round happened yet in the
    run; a forcing `tool_choice` (`required`, a named tool) applies only then, or a model made to
    call a tool would call it again after every round (and loop on a server-side one)."""
    params: dict[str, Any] = {"model": route.upstream_model, "messages": prompt.messages}
    for name in ("temperature", "top_p"):
        if run_row[name] is not None:
            params[name] = run_row[name]
    if offered.definitions:
        params["tools"] = offered.definitions
        params["parallel_tool_calls"] = run_row["parallel_tool_calls"]
        choice = _chat_tool_choice(run_row["tool_choice"], offered)
        if choice is not None and (first_turn or choice in ("none", "auto")):
            params["tool_choice"] = choice
    response_format = _chat_response_format(run_row["response_format"])
    if response_format is not None:
        params["response_format"] = response_format
    if completion_left is not None:
        params["max_completion_tokens"] = completion_left
    if run_row["reasoning_effort"]:
        params["reasoning_effort"] = run_row["reasoning_effort"]
    return params


def _chat_tool_choice(choice: Any, offered: OfferedTools) -> Any:
    if choice is None or isinstance(choice, str):
        return choice
    kind = choice.get("type")
    if kind == "function":
        return {"type": "function", "function": {"name": choice["function"]["name"]}}
    # A named built-in tool forces the function it is offered as; one without an executor is
    # not offered, so there is nothing to force.
    for name, executor in offered.server.items():
        if executor.tool_type == kind:
            return {"type": "function", "function": {"name": name}}
    return None


def _chat_response_format(fmt: Any) -> Any:
    if fmt is None or fmt == "auto":
        return None
    if fmt.get("type") == "json_schema":
        schema = {k: v for k, v in fmt["json_schema"].items() if v is not None}
        return {"type": "json_schema", "json_schema": schema}
    return {"type": fmt["type"]}
