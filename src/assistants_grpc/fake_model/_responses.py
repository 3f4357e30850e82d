"""Scripted replies for the fake chat-completions server, and the default responder."""

from __future__ import annotations

import asyncio
import json
import random
import re
import string
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias

__all__ = [
    "ErrorReply",
    "HangReply",
    "MalformedReply",
    "Reply",
    "Responder",
    "TextReply",
    "ToolCallsReply",
    "default_responder",
    "new_call_id",
    "prompt_token_estimate",
    "split_even",
    "split_words",
]

_BASE62 = string.ascii_letters + string.digits


@dataclass(frozen=True, slots=True)
class TextReply:
    """A plain assistant text answer.

    ``chunks=None`` streams one fragment per word (each word keeps its trailing whitespace);
    ``chunks=N`` streams exactly N roughly equal fragments, possibly cut mid-word (some are
    empty when the text is shorter than N). The first content chunk also carries
    ``role: "assistant"``. ``chunk_delay`` seconds pass between fragments. Usage defaults to
    the server's estimate (prompt) and the number of fragments (completion). ``report_usage=False``
    leaves the usage chunk out of a stream even when asked for, as some self-hosted servers do.
    """

    text: str
    chunks: int | None = None
    chunk_delay: float = 0.0
    finish_reason: str = "stop"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    report_usage: bool = True

    def __post_init__(self) -> None:
        if self.chunks is not None and self.chunks < 1:
            raise ValueError("TextReply.chunks must be >= 1")
        if self.chunk_delay < 0:
            raise ValueError("TextReply.chunk_delay must be >= 0")

    def fragments(self) -> list[str]:
        if self.chunks is None:
            return split_words(self.text)
        return split_even(self.text, self.chunks)


@dataclass(frozen=True, slots=True)
class ToolCallsReply:
    """Parallel function tool calls, ``calls=[(name, arguments_json), ...]``.

    Each call streams a first fragment ``{index, id, type, function: {name, arguments: ""}}``
    and then its arguments in exactly ``fragments`` pieces cut mid-token. With ``interleave``
    the calls' fragments alternate by index (all first fragments, then every call's piece 1,
    ...); otherwise each call is streamed to its end before the next. An optional ``text`` is
    streamed as content before the calls, ``text_between`` word by word between the call
    fragments (one word after each), ``text_after`` after them (models do all three).
    ``finish_reason`` is ``"tool_calls"``. ``hold``, when given, is awaited before the last
    call fragment is sent (the test sets it once it saw what it waits for; the event must belong
    to the loop the server runs in): a test observes what the client did with the reply's
    earlier chunks while the model has not finished. ``break_at_hold`` then breaks the stream
    there instead (a truncated chunk, the connection closed): the model fails mid-call.
    """

    calls: list[tuple[str, str]]
    fragments: int = 3
    interleave: bool = True
    chunk_delay: float = 0.0
    text: str | None = None
    text_between: str | None = None
    text_after: str | None = None
    hold: asyncio.Event | None = field(default=None, compare=False)
    break_at_hold: bool = False

    def texts(self) -> str:
        """All the content the reply writes, in order."""
        return "".join(t for t in (self.text, self.text_between, self.text_after) if t)

    def __post_init__(self) -> None:
        if not self.calls:
            raise ValueError("ToolCallsReply needs at least one call")
        if self.fragments < 1:
            raise ValueError("ToolCallsReply.fragments must be >= 1")
        if self.chunk_delay < 0:
            raise ValueError("ToolCallsReply.chunk_delay must be >= 0")


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """An HTTP error with the OpenAI error envelope ``{"error": {message, type, param, code}}``.

    ``error_type`` defaults to the usual OpenAI type for the status (``invalid_request_error``,
    ``rate_limit_error``, ``server_error``, ...). Note that an ``openai`` client with retries
    enabled retries 429/5xx, and each retry consumes the next scripted reply.
    """

    status: int
    message: str = "The fake model was scripted to fail."
    code: str | None = None
    error_type: str | None = None

    def __post_init__(self) -> None:
        if not 400 <= self.status <= 599:
            raise ValueError("ErrorReply.status must be a 4xx or 5xx status")

    def envelope(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.error_type or _default_error_type(self.status),
                "param": None,
                "code": self.code,
            }
        }


@dataclass(frozen=True, slots=True)
class MalformedReply:
    """A 200 response whose body is broken: when streaming, one SSE ``data:`` line holding
    truncated JSON, then the connection is closed without ending the chunked body; otherwise a
    truncated JSON body. Any client raises."""


@dataclass(frozen=True, slots=True)
class HangReply:
    """Send the headers and a first ``role: "assistant"`` chunk, then wait ``seconds`` (watching
    for the client going away) and finish with ``text``. Used by cancellation tests."""

    seconds: float
    text: str = "Done waiting."

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise ValueError("HangReply.seconds must be >= 0")


Reply: TypeAlias = TextReply | ToolCallsReply | ErrorReply | MalformedReply | HangReply
"""Any scripted reply."""

Responder: TypeAlias = Callable[[dict[str, Any]], Reply | Awaitable[Reply]]
"""A function of the request JSON body returning the reply (may be ``async``)."""


def _default_error_type(status: int) -> str:
    if status == 401:
        return "authentication_error"
    if status == 403:
        return "permission_error"
    if status == 404:
        return "not_found_error"
    if status == 429:
        return "rate_limit_error"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


_WORDS = re.compile(r"\s*\S+\s*")


def split_words(text: str) -> list[str]:
    """Split on word boundaries, each piece keeping the whitespace after its word (leading
    whitespace goes with the first word). ``"".join(result) == text``; never empty."""
    pieces = _WORDS.findall(text)
    return pieces if pieces else [text]


def split_even(text: str, n: int) -> list[str]:
    """Exactly ``n`` pieces of nearly equal length (by code points); ``"".join`` gives back
    ``text``. Pieces are empty when ``len(text) < n``."""
    if n < 1:
        raise ValueError("n must be >= 1")
    size = len(text)
    bounds = [i * size // n for i in range(n + 1)]
    return [text[bounds[i] : bounds[i + 1]] for i in range(n)]


def new_call_id() -> str:
    """``call_`` followed by 24 random base62 characters."""
    return "call_" + "".join(random.choices(_BASE62, k=24))


def new_completion_id() -> str:
    return "chatcmpl-" + "".join(random.choices(_BASE62, k=29))


def content_text(content: object) -> str:
    """The text of a message ``content``: a string, or a list of parts (text parts joined by
    newlines; other parts ignored)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                if part.get("type", "text") in ("text", "input_text", "output_text"):
                    texts.append(part["text"])
            elif isinstance(part, str):
                texts.append(part)
        return "\n".join(texts)
    return ""


def prompt_token_estimate(request: dict[str, Any]) -> int:
    """Total characters of all message contents // 4, at least 1."""
    total = 0
    messages = request.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, dict):
                total += len(content_text(message.get("content")))
    return max(1, total // 4)


def _messages(request: dict[str, Any]) -> list[dict[str, Any]]:
    messages = request.get("messages")
    if not isinstance(messages, list):
        return []
    return [m for m in messages if isinstance(m, dict)]


def _parse_tool_commands(text: str) -> list[tuple[str, str]]:
    """``/tool NAME JSON`` lines (the text must start with one) -> ``[(name, arguments)]``."""
    if not text.lstrip().startswith("/tool "):
        return []
    calls: list[tuple[str, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line.startswith("/tool "):
            continue
        rest = line[len("/tool ") :].strip()
        if not rest:
            continue
        name, _, arguments = rest.partition(" ")
        calls.append((name, arguments.strip() or "{}"))
    return calls


def _tools_enabled(request: dict[str, Any]) -> bool:
    tools = request.get("tools")
    return isinstance(tools, list) and bool(tools) and request.get("tool_choice") != "none"


def _max_tokens(request: dict[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = request.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def default_responder(request: dict[str, Any]) -> Reply:
    """The behaviour used when nothing was scripted (see the package docstring)."""
    messages = _messages(request)
    if messages and messages[-1].get("role") == "tool":
        outputs: list[str] = []
        for message in reversed(messages):
            if message.get("role") != "tool":
                break
            outputs.append(content_text(message.get("content")))
        outputs.reverse()
        return TextReply("Tool results: " + "; ".join(outputs))

    user_text = ""
    for message in reversed(messages):
        if message.get("role") == "user":
            user_text = content_text(message.get("content"))
            break

    if _tools_enabled(request):
        calls = _parse_tool_commands(user_text)
        if calls:
            return ToolCallsReply(calls)

    text = "You said: " + user_text
    limit = _max_tokens(request)
    if limit is not None:
        words = split_words(text)
        if len(words) > limit:
            return TextReply("".join(words[:limit]), finish_reason="length")
    return TextReply(text)


def compact_json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
