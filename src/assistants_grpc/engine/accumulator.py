"""Folds one model turn's stream into what the turn writes: the answer's content parts, its tool
calls, and the deltas not sent yet. Pure: no database, no bus, no clock; unit tests feed it plain
`model_stream` events.

What streams when (the "no text is lost" rule, issue 11 §3):
- Text and refusals stream live: `take_pending()` hands out what arrived since the last call,
  so the first token reaches the caller at once and later ones in coalesced writes.
- Tool calls are held until the model's answer has ended. A model may write text before,
  between or after its call fragments, and all of it must become ONE message, completed before
  the `tool_calls` step starts (one step at a time, and a message that started streaming is
  never contradicted). We cannot know whether more text follows a call until the stream ends, so
  the calls' deltas go out at the end, coalesced. The cost: a caller sees the calls only once
  the model has finished writing them, which it could not act on earlier anyway (a function
  call is answered after `requires_action`; a server-side call runs after the answer).
- Parts given whole (`lead_parts`: the image_file parts a server-side tool produced last round)
  open the message and go first in it.
- Annotators (a server-side tool's marker finder, chained in registry order) see the text before
  it is released: text that may be the start of a marker is held back until known, and each
  annotation is released, complete and under a new index, once the text it spans has been.
"""

from __future__ import annotations

from collections.abc import Sequence
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
from assistants_grpc.engine.server_tools import TextAnnotator

JSON = dict[str, Any]

__all__ = ["CallDraft", "PartDelta", "TurnAccumulator"]


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


class TurnAccumulator:
    """One model turn, folded. Feed it every model event; take what is pending to write."""

    def __init__(
        self, lead_parts: Sequence[JSON] = (), annotators: Sequence[TextAnnotator] = ()
    ) -> None:
        self._parts: list[_Part] = [_Part("whole", whole=dict(p)) for p in lead_parts]
        self._pending: dict[int, PartDelta] = {
            i: PartDelta(i, "whole", whole=dict(p)) for i, p in enumerate(lead_parts)
        }
        self._annotators = list(annotators)
        # Annotations found but spanning text still held back: released with that text.
        self._held: list[JSON] = []
        self._taken = False
        self._ended = False
        self.calls: dict[int, CallDraft] = {}
        self.finish_reason: str | None = None
        self.usage: UsageReport | None = None

    # --- folding ----------------------------------------------------------------------------

    def feed(self, event: ModelEvent) -> None:
        if isinstance(event, TextDelta):
            if event.text:
                self._add_text(*self._through(event.text, finishing=False))
        elif isinstance(event, RefusalDelta):
            if event.text:
                index = self._part_index("refusal")
                self._parts[index].text += event.text
                self._pending_of(index).text += event.text
        elif isinstance(event, ToolCallStarted):
            self.calls[event.index] = CallDraft(event.index, event.call_id, event.name)
        elif isinstance(event, ToolCallArguments):
            call = self.calls.get(event.index)
            if call is not None:
                call.fragments.append(event.fragment)
        elif isinstance(event, Finished):
            self.finish_reason = event.reason
        elif isinstance(event, UsageReport):
            self.usage = event

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
        index = self._part_index("text")
        if text:
            self._parts[index].text += text
            self._pending_of(index).text += text
        self._held += annotations
        self._release_annotations(final=False)

    def _release_annotations(self, *, final: bool) -> None:
        if not self._held:
            return
        index = self._part_index("text")
        part = self._parts[index]
        shown = len(part.text)
        keep = []
        for annotation in sorted(self._held, key=lambda a: a.get("start_index", 0)):
            if final or annotation.get("end_index", 0) <= shown:
                numbered = {"index": len(part.annotations), **annotation}
                part.annotations.append(dict(annotation))
                self._pending_of(index).annotations.append(numbered)
            else:
                keep.append(annotation)
        self._held = keep

    def _part_index(self, kind: str) -> int:
        for i, part in enumerate(self._parts):
            if part.kind == kind:
                return i
        self._parts.append(_Part(kind))
        return len(self._parts) - 1

    def _pending_of(self, index: int) -> PartDelta:
        delta = self._pending.get(index)
        if delta is None:
            delta = self._pending[index] = PartDelta(index, self._parts[index].kind)
        return delta

    # --- what there is to write -------------------------------------------------------------

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    @property
    def opens_message(self) -> bool:
        """Whether the next write creates the message (its first content is pending)."""
        return not self._taken and bool(self._pending)

    @property
    def message_started(self) -> bool:
        """Whether some content was handed out: the message exists."""
        return self._taken

    def take_pending(self) -> list[PartDelta]:
        """The content deltas not handed out yet, by part index; clears them."""
        pending = [self._pending[i] for i in sorted(self._pending)]
        self._pending.clear()
        if pending:
            self._taken = True
        return pending

    def drop_pending(self) -> None:
        """Forget what was not handed out (the turn was interrupted: nothing new is written)."""
        self._pending.clear()

    def content(self) -> list[JSON]:
        """The message's content parts as handed out so far (OpenAI JSON), to store."""
        return [part.json() for part in self._parts]

    def answer_text(self) -> str:
        """The answer's text (its text parts), as its token count is taken."""
        return "".join(part.text for part in self._parts if part.kind == "text")

    def written_text(self) -> str:
        """Everything the model wrote (text, refusal, call arguments): the completion's size
        when the endpoint reports no usage."""
        return "".join(p.text for p in self._parts) + "".join(
            call.arguments for call in self.ordered_calls()
        )

    def ordered_calls(self) -> list[CallDraft]:
        return [self.calls[i] for i in sorted(self.calls)]
