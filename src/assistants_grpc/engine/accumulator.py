"""Folds one model turn's stream into what the turn writes: the answer's content parts, its tool
calls, and the deltas not sent yet. Pure: no database, no bus, no clock; unit tests feed it plain
`model_stream` events.

What streams when (the "no text is lost" rule, issue 11 §3, and live calls, issue 16 §1):
- Text and refusals stream live: `take_pending()` hands out what arrived since the last call,
  so the first token reaches the caller at once and later ones in coalesced writes.
- A turn whose first tool-call fragment is a FUNCTION's (a call for the caller) holds every
  call until the model's answer has ended. A model may write text before, between or after its
  call fragments, and all of it must become ONE message, completed before the `tool_calls` step
  starts (one step at a time, and a message that started streaming is never contradicted). We
  cannot know whether more text follows a call until the stream ends, so the calls' deltas go
  out at the end, coalesced. The cost is nil: a function call is answered after
  `requires_action`, which comes after the answer anyway.
- A turn whose first tool-call fragment is a SERVER-SIDE tool's (`live_tools`: a function the
  ToolRegistry executes, `python` or `file_search`) goes live at that fragment: the message
  streamed so far is complete with the text it has (the run loop completes it and its step at
  once and opens the `tool_calls` step), and from then on every call of the turn, server-side
  and function alike, streams as it arrives: `take_call_deltas()` hands out, per call, its first
  delta (`opens`) and what its arguments added since (a server-side call's through its tool's
  InputStream, e.g. the decoded `code_interpreter.input`; a function's raw `arguments`),
  coalesced like text. The code the model writes is shown while it writes it.
  Text the model writes after going live cannot join the completed message and cannot start a
  message while the step is open, so it is held: `trailing_parts()` gives it (one text part,
  annotations relative to it) for the run's NEXT message to start with, the way a tool's
  image_file parts do (`lead_parts`). So it comes after the step completes: after the
  server-side calls in a server-only turn, after the submitted outputs in a turn that also
  called functions. A turn that does not get to execute its calls (cancel, expiry, model
  error, cut by length) ends its open step with the run; its held text goes with it.
- Parts given whole (`lead_parts`: the image_file parts a server-side tool produced last round)
  open the message and go first in it.
- Annotators (a server-side tool's marker finder, chained in registry order) see the text before
  it is released: text that may be the start of a marker is held back until known, and each
  annotation is released, complete and under a new index, once the text it spans has been.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from assistants_grpc.engine.model_stream import (
    Finished,
    ModelEvent,
    RefusalDelta,
    TextDelta,
    ToolCallArguments,
    ToolCallStarted,
    UsageReport,
)
from assistants_grpc.engine.server_tools import (
    InputStream,
    TextAnnotator,
    ToolExecutor,
    merge_body,
)

JSON = dict[str, Any]

__all__ = ["CallDelta", "CallDraft", "LiveInput", "PartDelta", "TurnAccumulator"]


@dataclass(slots=True)
class CallDraft:
    """A tool call as the model wrote it: dense `index`, `id`, function `name`, the argument
    fragments in order."""

    index: int
    id: str
    name: str
    fragments: list[str] = field(default_factory=list)

    @property
    def arguments(self) -> str:
        return "".join(self.fragments)


@dataclass(slots=True)
class LiveInput:
    """A server-side call's input as streamed in a live turn: its InputStream, the body of its
    first delta and what the fragments showed so far (merged)."""

    stream: InputStream
    first: JSON
    streamed: JSON = field(default_factory=dict)


@dataclass(slots=True)
class CallDelta:
    """What one call of a live turn gained since the last `take_call_deltas`: `opens` when its
    first delta is due; `body` what its arguments added (a server-side call: its tool type's
    delta body; a function: `{"arguments": "..."}`), empty when nothing."""

    index: int
    opens: bool = False
    body: JSON = field(default_factory=dict)


@dataclass(slots=True)
class _Part:
    kind: str  # "text" | "refusal" | "whole" (given complete, e.g. an image_file part)
    text: str = ""
    annotations: list[JSON] = field(default_factory=list)
    whole: JSON | None = None

    def json(self) -> JSON:
        if self.kind == "whole":
            assert self.whole is not None
            return dict(self.whole)
        if self.kind == "refusal":
            return {"type": "refusal", "refusal": self.text}
        return {"type": "text", "text": {"value": self.text, "annotations": list(self.annotations)}}


@dataclass(slots=True)
class PartDelta:
    """What one content part gained since the last `take_pending`: text to append, new
    annotations (each with its `index`), or the whole part (`whole`, sent once)."""

    index: int
    kind: str
    text: str = ""
    annotations: list[JSON] = field(default_factory=list)
    whole: JSON | None = None


@dataclass(slots=True)
class _Answer:
    """The content of one message: its parts, what is pending, annotations found but spanning
    text still held back. `base`: where its text starts in the annotators' positions (the text
    of the turn before it: annotators count every code point they were fed)."""

    parts: list[_Part] = field(default_factory=list)
    pending: dict[int, PartDelta] = field(default_factory=dict)
    held: list[JSON] = field(default_factory=list)
    base: int = 0

    def part_index(self, kind: str) -> int:
        for i, part in enumerate(self.parts):
            if part.kind == kind:
                return i
        self.parts.append(_Part(kind))
        return len(self.parts) - 1

    def pending_of(self, index: int) -> PartDelta:
        delta = self.pending.get(index)
        if delta is None:
            delta = self.pending[index] = PartDelta(index, self.parts[index].kind)
        return delta

    def text(self) -> str:
        return "".join(part.text for part in self.parts)


class TurnAccumulator:
    """One model turn, folded. Feed it every model event; take what is pending to write.

    `live_tools` maps the function names the server executes to their executors: a turn whose
    first call is one of them goes live (see the module's docstring). Empty: never live."""

    def __init__(
        self,
        lead_parts: Sequence[JSON] = (),
        annotators: Sequence[TextAnnotator] = (),
        live_tools: Mapping[str, ToolExecutor] | None = None,
    ) -> None:
        self._answer = _Answer(
            parts=[_Part("whole", whole=dict(p)) for p in lead_parts],
            pending={i: PartDelta(i, "whole", whole=dict(p)) for i, p in enumerate(lead_parts)},
        )
        # Where text goes: the answer, or once live the text held for the next message.
        self._text = self._answer
        self._annotators = list(annotators)
        self._live_tools = dict(live_tools or {})
        self._taken = False
        self._ended = False
        self.calls: dict[int, CallDraft] = {}
        self.finish_reason: str | None = None
        self.usage: UsageReport | None = None
        self.live = False
        self.inputs: dict[int, LiveInput] = {}
        self._call_pending: dict[int, CallDelta] = {}
        self._calls_taken = False

    # --- folding ----------------------------------------------------------------------------

    def feed(self, event: ModelEvent) -> None:
        if isinstance(event, TextDelta):
            if event.text:
                self._add_text(*self._through(event.text, finishing=False))
        elif isinstance(event, RefusalDelta):
            if event.text:
                answer = self._text
                index = answer.part_index("refusal")
                answer.parts[index].text += event.text
                answer.pending_of(index).text += event.text
        elif isinstance(event, ToolCallStarted):
            self._start_call(event)
        elif isinstance(event, ToolCallArguments):
            call = self.calls.get(event.index)
            if call is not None:
                call.fragments.append(event.fragment)
                if self.live:
                    self._live_fragment(call, event.fragment)
        elif isinstance(event, Finished):
            self.finish_reason = event.reason
        elif isinstance(event, UsageReport):
            self.usage = event

    def _start_call(self, event: ToolCallStarted) -> None:
        if not self.calls and event.name in self._live_tools:
            self._go_live()
        self.calls[event.index] = CallDraft(event.index, event.call_id, event.name)
        if not self.live:
            return
        self._call_pending[event.index] = CallDelta(event.index, opens=True)
        executor = self._live_tools.get(event.name)
        if executor is not None:
            stream = executor.input_stream()
            self.inputs[event.index] = LiveInput(stream, dict(stream.first()))

    def _go_live(self) -> None:
        """The answer so far is the message; later text is held for the next one."""
        self.live = True
        answer = self._answer
        base = answer.base + len(answer.text())
        self._text = _Answer(
            base=base, held=[_shifted(a, -len(answer.text())) for a in answer.held]
        )
        answer.held = []

    def _live_fragment(self, call: CallDraft, fragment: str) -> None:
        delta = self._call_pending.get(call.index)
        if delta is None:
            delta = self._call_pending[call.index] = CallDelta(call.index)
        live = self.inputs.get(call.index)
        if live is None:
            if fragment:
                delta.body["arguments"] = delta.body.get("arguments", "") + fragment
            return
        body = live.stream.feed(fragment)
        if body:
            merge_body(live.streamed, body)
            merge_body(delta.body, body)

    def end(self) -> None:
        """The answer is over: release what the annotators still hold. Not called when the turn
        is interrupted (nothing new is written then)."""
        if not self._ended:
            self._ended = True
            if self._annotators:
                self._add_text(*self._through("", finishing=True))
            self._release_annotations(final=True)

    def _through(self, text: str, *, finishing: bool) -> tuple[str, list[JSON]]:
        """`text` through the annotator chain: what may be shown now, and the annotations
        found. Each annotator sees what the ones before it released."""
        found: list[JSON] = []
        for annotator in self._annotators:
            out, annotations = annotator.feed(text) if text else ("", [])
            found += annotations
            if finishing:
                more, annotations = annotator.finish()
                out += more
                found += annotations
            text = out
        return text, found

    def _add_text(self, text: str, annotations: list[JSON]) -> None:
        if not text and not annotations:
            return
        answer = self._text
        index = answer.part_index("text")
        if text:
            answer.parts[index].text += text
            answer.pending_of(index).text += text
        answer.held += [_shifted(a, -answer.base) for a in annotations]
        self._release_annotations(final=False)

    def _release_annotations(self, *, final: bool) -> None:
        answer = self._text
        if not answer.held:
            return
        index = answer.part_index("text")
        part = answer.parts[index]
        shown = len(part.text)
        keep = []
        for annotation in sorted(answer.held, key=lambda a: a.get("start_index", 0)):
            if final or annotation.get("end_index", 0) <= shown:
                numbered = {"index": len(part.annotations), **annotation}
                part.annotations.append(dict(annotation))
                answer.pending_of(index).annotations.append(numbered)
            else:
                keep.append(annotation)
        answer.held = keep

    # --- what there is to write -------------------------------------------------------------

    @property
    def has_pending(self) -> bool:
        return bool(self._answer.pending) or bool(self._call_pending) or self.opens_live_step

    @property
    def opens_message(self) -> bool:
        """Whether the next write creates the message (its first content is pending)."""
        return not self._taken and bool(self._answer.pending)

    @property
    def opens_live_step(self) -> bool:
        """Whether the turn went live and its step was not written yet (take_call_deltas not
        called)."""
        return self.live and not self._calls_taken

    @property
    def message_started(self) -> bool:
        """Whether some content was handed out: the message exists."""
        return self._taken

    def take_pending(self) -> list[PartDelta]:
        """The content deltas not handed out yet, by part index; clears them."""
        pending = [self._answer.pending[i] for i in sorted(self._answer.pending)]
        self._answer.pending.clear()
        if pending:
            self._taken = True
        return pending

    def take_call_deltas(self) -> list[CallDelta]:
        """A live turn's call deltas not handed out yet, by call index; clears them."""
        self._calls_taken = True
        pending = [self._call_pending[i] for i in sorted(self._call_pending)]
        self._call_pending.clear()
        return pending

    def drop_pending(self) -> None:
        """Forget what was not handed out (the turn was interrupted: nothing new is written)."""
        self._answer.pending.clear()
        self._call_pending.clear()

    def content(self) -> list[JSON]:
        """The message's content parts as handed out so far (OpenAI JSON), to store."""
        return [part.json() for part in self._answer.parts]

    def answer_text(self) -> str:
        """The message's text (its text parts), as its token count is taken."""
        return "".join(part.text for part in self._answer.parts if part.kind == "text")

    def trailing_parts(self) -> list[JSON]:
        """What a live turn's model wrote after its calls started, as whole parts for the
        run's next message (annotation positions within the part); empty when nothing."""
        if not self.live:
            return []
        parts = []
        for part in self._text.parts:
            if not part.text and not part.annotations:
                continue
            parts.append(part.json())
        return parts

    def written_text(self) -> str:
        """Everything the model wrote (text, refusal, call arguments): the completion's size
        when the endpoint reports no usage."""
        trailing = self._text.text() if self.live else ""
        return (
            self._answer.text()
            + trailing
            + "".join(call.arguments for call in self.ordered_calls())
        )

    def ordered_calls(self) -> list[CallDraft]:
        return [self.calls[i] for i in sorted(self.calls)]


def _shifted(annotation: JSON, by: int) -> JSON:
    """`annotation` with its positions moved by `by` code points."""
    if not by:
        return annotation
    return {
        **annotation,
        "start_index": annotation.get("start_index", 0) + by,
        "end_index": annotation.get("end_index", 0) + by,
    }
