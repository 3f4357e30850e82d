"""Builds the chat-completions ``messages`` list of one model turn, truncated to fit its budget.

Pure: no I/O, no database, no model calls. The only work besides building dicts is counting
tokens, and that is kept small on purpose (DESIGN.md "Tokens"): thread messages carry the token
count stored when they were created, so finding where a long thread must be cut is one reverse
pass that adds integers, and only the messages that are kept become dicts. A stored count is
recounted only when it was made with another encoding than the run model's, and only for the
messages the pass actually looks at.

Prompt tokens are estimated the way OpenAI's cookbook counts chat messages: per message
:data:`~assistants_grpc.engine.tokens.TOKENS_PER_MESSAGE` + role + content, plus
:data:`~assistants_grpc.engine.tokens.REPLY_PRIMING_TOKENS` for the whole prompt, plus the tool
definitions (their compact JSON).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from assistants_grpc.engine.tokens import (
    REPLY_PRIMING_TOKENS,
    TOKENS_PER_MESSAGE,
    TokenCounter,
    encoding_name_for_model,
)

__all__ = [
    "IMAGE_TOKENS",
    "ImageRef",
    "Prompt",
    "PromptRequest",
    "ThreadMessage",
    "ToolCallRecord",
    "ToolRound",
    "build_prompt",
    "chat_tools",
]

#: What an image part weighs in the budget (OpenAI's charge for a low-detail image). Stored
#: message counts include it once per image part, so a recount must add it the same way.
IMAGE_TOKENS: Final = 85


@dataclass(frozen=True, slots=True)
class ImageRef:
    """An image part of a thread message: exactly one of ``url`` and ``file_id`` is set."""

    url: str | None
    file_id: str | None
    detail: str | None


@dataclass(frozen=True, slots=True)
class ThreadMessage:
    """A thread message as the prompt needs it.

    ``token_count`` is the content's weight stored at creation (text tokens in
    ``token_encoding`` plus :data:`IMAGE_TOKENS` per image), without the per-message overhead.
    """

    role: str  # "user" | "assistant"
    text: str
    images: tuple[ImageRef, ...]
    token_count: int
    token_encoding: str


@dataclass(frozen=True, slots=True)
class ToolCallRecord:
    """One function call of a tool round and the output the client submitted for it."""

    id: str
    name: str
    arguments: str
    output: str | None


@dataclass(frozen=True, slots=True)
class ToolRound:
    """A model turn of the current run that called tools, with the outputs.

    ``after_message`` is how many of the request's thread messages precede it.
    """

    after_message: int
    text: str | None
    calls: tuple[ToolCallRecord, ...]


@dataclass(frozen=True, slots=True)
class PromptRequest:
    """Everything one model turn's prompt is built from."""

    model: str
    instructions: str | None
    messages: Sequence[ThreadMessage]  # oldest first
    rounds: Sequence[ToolRound]  # chronological
    tools: Sequence[dict[str, Any]]  # chat-completions definitions (see chat_tools)
    truncation: str  # "auto" | "last_messages"
    last_messages: int | None
    context_window: int
    completion_reserve: int  # tokens kept free for the answer
    max_prompt_tokens: int | None = None  # what is left of the run's prompt budget


@dataclass(frozen=True, slots=True)
class Prompt:
    """The messages to send, their estimated size, and whether they fit the budget."""

    messages: list[dict[str, Any]]
    prompt_tokens: int
    dropped: int  # thread messages left out (oldest first)
    fits: bool


def build_prompt(request: PromptRequest, counter: TokenCounter) -> Prompt:
    """Turn ``request`` into chat-completions messages, dropping the oldest thread messages
    (``auto``) or all but the newest N (``last_messages``).

    The system message and the current run's tool rounds are never dropped, nor is the newest
    user message or anything after it. When even that minimum is over budget, the minimum is
    returned with ``fits=False``: the caller ends the run ``incomplete`` instead of sending it.
    """
    cost = _Costs(counter, request.model)
    budget = request.context_window - request.completion_reserve
    if request.max_prompt_tokens is not None:
        budget = min(budget, request.max_prompt_tokens)

    fixed = REPLY_PRIMING_TOKENS
    if request.instructions:
        fixed += cost.message("system", request.instructions)
    if request.tools:
        fixed += cost.text(_tools_json(request.tools))
    # Sorting is stable, so rounds at the same place stay in the order they happened.
    rounds = sorted(request.rounds, key=lambda r: r.after_message)
    fixed += sum(cost.round(r) for r in rounds)

    messages = request.messages
    if request.truncation == "last_messages":
        keep = len(messages) if request.last_messages is None else request.last_messages
        cut = max(0, len(messages) - keep)
        # last_messages decides what is kept on its own; the budget only decides `fits`.
        total = fixed + sum(cost.thread_message(messages[i]) for i in range(cut, len(messages)))
    elif request.truncation == "auto":
        cut, total = _auto_cut(messages, fixed, budget, cost)
    else:
        raise ValueError(f"unknown truncation strategy {request.truncation!r}")

    return Prompt(
        messages=_render(request.instructions, messages, cut, rounds),
        prompt_tokens=total,
        dropped=cut,
        fits=total <= budget,
    )


def chat_tools(tools: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The run's tools (Assistants JSON) as chat-completions tool definitions.

    Only function tools survive: file_search and code_interpreter are hosted tools that a chat
    endpoint cannot execute, so offering them would only invite calls nobody can answer.
    """
    converted: list[dict[str, Any]] = []
    for tool in tools:
        if tool.get("type") != "function":
            continue
        function = {k: v for k, v in (tool.get("function") or {}).items() if v is not None}
        if "parameters" not in function:
            # Some chat endpoints reject a function without a schema; an empty object schema
            # means "no arguments". A fresh literal each time, so no two tools share a dict.
            function["parameters"] = {"type": "object", "properties": {}}
        converted.append({"type": "function", "function": function})
    return converted


def _tools_json(tools: Sequence[dict[str, Any]]) -> str:
    # Compact and unescaped, which is closer to what the model is shown than indented ASCII JSON.
    return json.dumps(list(tools), ensure_ascii=False, separators=(",", ":"))


class _Costs:
    """Token costs in the run model's encoding, with the per-role overhead computed once."""

    __slots__ = ("_counter", "_encoding", "_model", "_role")

    def __init__(self, counter: TokenCounter, model: str) -> None:
        self._counter = counter
        self._model = model
        self._encoding = encoding_name_for_model(model)
        self._role: dict[str, int] = {}

    def text(self, text: str) -> int:
        return self._counter.count_text(self._model, text)

    def overhead(self, role: str) -> int:
        """What a message costs before its content: the fixed framing plus the role."""
        n = self._role.get(role)
        if n is None:
            n = self._role[role] = TOKENS_PER_MESSAGE + self.text(role)
        return n

    def message(self, role: str, text: str) -> int:
        return self.overhead(role) + self.text(text)

    def thread_message(self, m: ThreadMessage) -> int:
        if m.token_encoding == self._encoding:
            content = m.token_count
        else:
            # Counted with another encoding (o200k for current models; a cl100k run differs).
            content = self.text(m.text) + IMAGE_TOKENS * len(m.images)
        return self.overhead(m.role) + content

    def round(self, r: ToolRound) -> int:
        # A tool call is sent as its name and JSON arguments inside the assistant message.
        calls = sum(self.text(c.name) + self.text(c.arguments) for c in r.calls)
        outputs = sum(self.message("tool", c.output or "") for c in r.calls)
        return self.message("assistant", r.text or "") + calls + outputs


def _auto_cut(
    messages: Sequence[ThreadMessage], fixed: int, budget: int, cost: _Costs
) -> tuple[int, int]:
    """Index of the oldest kept message and the prompt's total, walking from the newest back.

    Only the messages the walk reaches are costed (and recounted if need be), so a long thread
    of which little fits costs little. The kept messages are always a contiguous newest run.
    """
    protected = len(messages)  # nothing is protected in a thread without a user message
    for i in range(len(messages) - 1, -1, -1):
        if messages[i].role == "user":
            protected = i
            break
    total = fixed
    cut = len(messages)
    for i in range(len(messages) - 1, -1, -1):
        n = cost.thread_message(messages[i])
        if i < protected and total + n > budget:
            break
        total += n
        cut = i
    return cut, total


def _render(
    instructions: str | None,
    messages: Sequence[ThreadMessage],
    cut: int,
    rounds: Sequence[ToolRound],
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if instructions:
        out.append({"role": "system", "content": instructions})
    pending = iter(rounds)
    next_round = next(pending, None)
    # A round that followed a dropped message has lost its place; it goes before the first
    # kept message, which is where its context now starts.
    while next_round is not None and next_round.after_message <= cut:
        out.extend(_render_round(next_round))
        next_round = next(pending, None)
    for i in range(cut, len(messages)):
        out.append(_render_message(messages[i]))
        while next_round is not None and next_round.after_message <= i + 1:
            out.extend(_render_round(next_round))
            next_round = next(pending, None)
    # after_message past the end (should not happen) still keeps the round, at the end.
    while next_round is not None:
        out.extend(_render_round(next_round))
        next_round = next(pending, None)
    return out


def _render_message(m: ThreadMessage) -> dict[str, Any]:
    if not m.images:
        return {"role": m.role, "content": m.text}
    parts: list[dict[str, Any]] = []
    if m.text:
        parts.append({"type": "text", "text": m.text})
    # Chat endpoints take image parts in user messages only; elsewhere they are rejected, so an
    # image in an assistant message is described in text instead.
    images_allowed = m.role == "user"
    parts.extend(_image_part(image, images_allowed) for image in m.images)
    return {"role": m.role, "content": parts}


def _image_part(image: ImageRef, images_allowed: bool) -> dict[str, Any]:
    if image.url is None:
        # Uploaded files have no storage here to serve them from, so the model only learns one
        # was attached.
        return {"type": "text", "text": f"[image file {image.file_id}]"}
    if not images_allowed:
        # A data: URL would put the whole base64 image into the text.
        shown = "inline data" if image.url.startswith("data:") else image.url
        return {"type": "text", "text": f"[image {shown}]"}
    url: dict[str, Any] = {"url": image.url}
    if image.detail is not None:
        url["detail"] = image.detail
    return {"type": "image_url", "image_url": url}


def _render_round(r: ToolRound) -> list[dict[str, Any]]:
    call: dict[str, Any] = {"role": "assistant", "content": r.text or None}
    if r.calls:  # an empty tool_calls list is rejected by chat endpoints
        call["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in r.calls
        ]
    else:
        call["content"] = r.text or ""
    outputs = [{"role": "tool", "tool_call_id": c.id, "content": c.output or ""} for c in r.calls]
    return [call, *outputs]
