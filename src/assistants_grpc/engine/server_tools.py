"""The protocol between the run loop and the tools the server executes itself.

A chat-completions model only knows function tools, so each built-in Assistants tool is offered
to it as a function (DESIGN.md, "Server-side tools"): `file_search` as `file_search`,
`code_interpreter` as `python`. When a turn ends in calls of those functions, the run loop hands
each one to the `ToolExecutor` of its tool type instead of pausing in `requires_action`, records
what the executor returns in the run's `tool_calls` step, and starts the next model turn with the
outputs, under the same lease.

The run loop owns the step, its events and the transaction boundaries; an executor only does the
work and says what happened:

- while the model writes a call's arguments, `input_stream()` turns the raw JSON fragments into
  the call's streamed delta (`code_interpreter.input` for `python`; nothing for `file_search`);
- `execute()` does the work and returns a `ToolResult`: the text the model gets back as the
  `tool` message, the call's final step details (OpenAI JSON), and what the answer may carry
  (image parts); it may report progress through `emit` (`code_interpreter.outputs` entries);
- `annotator()` gives the answer's text a `TextAnnotator` that turns markers into annotations
  (`【…†…】` into `file_citation`, `sandbox:/mnt/data/x` into `file_path`).

An executor may also define `async def preflight(context) -> None` (optional, not part of the
protocol): awaited before the run's first model turn when its tool is offered; raising
`ToolCallRefused` there fails the run before the model is asked (file_search: a store of the
run has expired, CONTRACT.md §12).

Executors are cancellation-safe: a cancel, an expiry or a handback cancels `execute()`'s task.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

JSON = dict[str, Any]

__all__ = [
    "BUILTIN_FUNCTIONS",
    "JSON",
    "EmitDelta",
    "InputStream",
    "NoInput",
    "TextAnnotator",
    "ToolCallRefused",
    "ToolCallRequest",
    "ToolExecutor",
    "ToolRegistry",
    "ToolResult",
    "ToolRunContext",
    "merge_body",
]


BUILTIN_FUNCTIONS: Mapping[str, str] = {"file_search": "file_search", "code_interpreter": "python"}
"""The function each built-in tool is offered to the model as (DESIGN.md): a run that enables
the tool may not define a function of that name too."""


@dataclass(frozen=True, slots=True)
class ToolCallRequest:
    """One call of a server-side tool, as the model made it."""

    call_id: str
    """`call_…`: the id shown in the step."""
    index: int
    """The call's position in the step's `tool_calls` (what its deltas carry)."""
    arguments: str
    """The model's raw JSON arguments (may be malformed: the executor says so in its output)."""
    ordinal: int = 0
    """The call's position among the step's calls of its own tool type (`index` counts the
    step's function calls too): what numbers a file_search call's markers."""


@dataclass(frozen=True, slots=True)
class ToolRunContext:
    """What an executor may know about the run making the call."""

    project: str
    run_id: str
    thread_id: str
    assistant_id: str
    model: str
    tool: JSON
    """The run's tool definition of this type, in Assistants JSON
    (`{"type": "file_search", "file_search": {...}}`)."""
    tool_resources: JSON
    """The resources the run may use, merged from the assistant, the thread and the run
    (object form: `{"file_search": {"vector_store_ids": [...]}, "code_interpreter":
    {"file_ids": [...]}}`)."""
    include: frozenset[str] = frozenset()
    """The `include[]` values of the request that created the run."""
    earlier_calls: Sequence[JSON] = ()
    """Every server-side call of this run already executed, as step details (OpenAI JSON)."""


EmitDelta = Callable[[JSON], Awaitable[None]]
"""Streams a part of a call's delta while it executes: the body under the call's type, e.g.
`{"outputs": [{"index": 0, "type": "logs", "logs": "..."}]}` for code_interpreter. The run loop
wraps it as a `thread.run.step.delta` of the call's index."""


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a server-side call produced."""

    output: str
    """The `tool` message the model gets back."""
    details: JSON
    """The call's body in the step, under its type: `{"input": ..., "outputs": [...]}` for
    code_interpreter, `{"ranking_options": ..., "results": [...]}` for file_search (OpenAI JSON,
    stored as is; `content` of results kept so `include[]` can show it)."""
    final_delta: JSON | None = None
    """What the step delta of the call's end carries, if anything not streamed already."""
    message_parts: Sequence[JSON] = ()
    """Content parts the run's next message starts with (`image_file` parts of shown images)."""
    files: Sequence[str] = field(default_factory=tuple)
    """Ids of Files the call created (for the annotator of later turns)."""


class ToolCallRefused(Exception):
    """Raised by `execute()` when the run cannot go on for a reason its caller must be told
    (a vector store of the run has expired): the run ends `failed` with `code` and this
    message as its `last_error`, instead of the generic "the tool failed on the server"."""

    def __init__(self, message: str, code: str = "server_error") -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class InputStream(Protocol):
    """Turns a call's argument fragments into its streamed input."""

    def first(self) -> JSON:
        """The body of the call's first delta (`{"input": "", "outputs": []}`, or `{}`)."""
        ...

    def feed(self, fragment: str) -> JSON | None:
        """The delta body for one more fragment of the arguments, or None if nothing to show."""
        ...


class NoInput:
    """An InputStream for tools whose arguments are not shown while they stream."""

    def first(self) -> JSON:
        return {}

    def feed(self, fragment: str) -> JSON | None:
        return None


class TextAnnotator(Protocol):
    """Finds a tool's markers in an answer as it streams.

    `feed` takes the next piece of text and returns the text that may be sent now and the
    annotations found in it (OpenAI JSON, `start_index`/`end_index` in code points of the whole
    message text); text that may be the start of a marker is held back until it is known.
    `finish` releases what is held at the end of the answer."""

    def feed(self, text: str) -> tuple[str, list[JSON]]: ...

    def finish(self) -> tuple[str, list[JSON]]: ...


class ToolExecutor(Protocol):
    """One built-in tool type, executed by the server."""

    @property
    def tool_type(self) -> str:
        """`"file_search"` or `"code_interpreter"`: the Assistants tool type it executes."""
        ...

    @property
    def function_name(self) -> str:
        """The function the model calls: `"file_search"` or `"python"`."""
        ...

    def definition(self, tool: JSON) -> JSON:
        """The chat-completions tool definition offered to the model for `tool`."""
        ...

    def input_stream(self) -> InputStream: ...

    async def execute(
        self, call: ToolCallRequest, context: ToolRunContext, emit: EmitDelta
    ) -> ToolResult: ...

    def annotator(self, context: ToolRunContext) -> TextAnnotator | None:
        """A marker finder for the run's next answer, or None."""
        ...


class ToolRegistry:
    """The executors a server has, by tool type and by function name."""

    def __init__(self, executors: Sequence[ToolExecutor] = ()) -> None:
        self._by_type: dict[str, ToolExecutor] = {e.tool_type: e for e in executors}
        self._by_function: dict[str, ToolExecutor] = {e.function_name: e for e in executors}

    def for_type(self, tool_type: str) -> ToolExecutor | None:
        return self._by_type.get(tool_type)

    def for_function(self, name: str) -> ToolExecutor | None:
        return self._by_function.get(name)

    @property
    def types(self) -> Mapping[str, ToolExecutor]:
        return self._by_type


def merge_body(into: JSON, delta: Mapping[str, Any]) -> JSON:
    """Fold a delta body into `into` the way the official SDK accumulates deltas (CONTRACT.md
    §9): strings concatenate, objects merge, list entries merge by their `index`. Coalescing
    a call's deltas this way leaves the caller's accumulated result unchanged."""
    for key, value in delta.items():
        current = into.get(key)
        if current is None:
            into[key] = copy.deepcopy(value)
        elif isinstance(current, str) and isinstance(value, str):
            into[key] = current + value
        elif isinstance(current, dict) and isinstance(value, dict):
            merge_body(current, value)
        elif isinstance(current, list) and isinstance(value, list):
            for entry in value:
                index = entry.get("index") if isinstance(entry, dict) else None
                same = next(
                    (e for e in current if isinstance(e, dict) and e.get("index") == index),
                    None,
                )
                if index is not None and same is not None:
                    merge_body(same, entry)
                else:
                    current.append(copy.deepcopy(entry))
        else:
            into[key] = copy.deepcopy(value)
    return into
