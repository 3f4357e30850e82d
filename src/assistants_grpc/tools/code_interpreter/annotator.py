"""`sandbox:/mnt/data/<name>` links in an answer, turned into `file_path` annotations.

The model links a file its code wrote as `sandbox:/mnt/data/x.csv` (often inside markdown,
`[download](sandbox:/mnt/data/x.csv)`). Where the path names a file the session's code wrote
(and the server made a File of), the link gets `{type: "file_path", text, start_index,
end_index, file_path: {file_id}}`, indices in code points of the whole message text, end
exclusive; the link stays in the text, as OpenAI's did. A link to anything else stays plain
text. The answer streams, so text that may be the start of a link (`sand`, or a link whose
end has not come yet) is held back until it is known; a trailing `.` or `,` that ends a
sentence is not part of the path unless a file of that name exists.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from assistants_grpc.engine.server_tools import JSON

PREFIX = "sandbox:/mnt/data/"
# Characters that cannot be in a linked path: they end it (markdown, quotes, blanks).
_ENDS = frozenset(" \t\r\n)]}>\"'`<|*")
_MAX_LINK = 1024


class SandboxLinkAnnotator:
    """A `TextAnnotator` for one answer. `outputs()` gives the session's written files now
    (path under /mnt/data -> file id), read when a link is complete."""

    def __init__(self, outputs: Callable[[], Mapping[str, str]]) -> None:
        self._outputs = outputs
        self._held = ""
        self._sent = 0  # code points released so far

    def feed(self, text: str) -> tuple[str, list[JSON]]:
        self._held += text
        return self._drain(final=False)

    def finish(self) -> tuple[str, list[JSON]]:
        return self._drain(final=True)

    def _drain(self, *, final: bool) -> tuple[str, list[JSON]]:
        text = self._held
        out: list[str] = []
        annotations: list[JSON] = []
        position = 0
        while True:
            start = text.find(PREFIX, position)
            if start < 0:
                keep = 0 if final else _partial_prefix(text, position)
                self._emit(out, text[position : len(text) - keep])
                self._held = text[len(text) - keep :]
                break
            self._emit(out, text[position:start])
            end = start + len(PREFIX)
            while end < len(text) and text[end] not in _ENDS:
                end += 1
            if end == len(text) and not final and end - start < _MAX_LINK:
                self._held = text[start:]  # the link may go on in the next piece
                break
            link_end, file_id = self._resolve(text[start + len(PREFIX) : end])
            if file_id is not None:
                link = text[start : start + len(PREFIX) + link_end]
                annotations.append(
                    {
                        "type": "file_path",
                        "text": link,
                        "start_index": self._sent,
                        "end_index": self._sent + len(link),
                        "file_path": {"file_id": file_id},
                    }
                )
            self._emit(out, text[start:end])
            position = end
        return "".join(out), annotations

    def _emit(self, out: list[str], piece: str) -> None:
        out.append(piece)
        self._sent += len(piece)

    def _resolve(self, path: str) -> tuple[int, str | None]:
        """The length of the longest start of `path` that names a written file, and its id."""
        outputs = self._outputs()
        candidate = path
        while candidate:
            file_id = outputs.get(candidate)
            if file_id is not None:
                return len(candidate), file_id
            if candidate[-1] not in ".,;:!?":
                break
            candidate = candidate[:-1]
        return 0, None


def _partial_prefix(text: str, start: int) -> int:
    """How many characters at the end of `text` (after `start`) could begin PREFIX."""
    for size in range(min(len(PREFIX) - 1, len(text) - start), 0, -1):
        if text.endswith(PREFIX[:size]):
            return size
    return 0


__all__ = ["PREFIX", "SandboxLinkAnnotator"]
