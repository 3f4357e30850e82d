"""Reading dumps: JSON Lines or JSON, streamed, each object with the line it starts on.

A dump is what people kept of the hosted API: `model_dump_json()` of the SDK's objects one per
line, a list page (`{"object": "list", "data": [...]}`), a JSON array, a single object, or the
same pretty-printed (and any of these gzipped, `.gz`). Nothing here holds more than one object
at a time (one line, one array element), so a 1 GB dump reads in the memory of its largest
object.

JSON Lines is read line by line; a bad line is reported and the next one read. A JSON document
(an array, a page or an object spread over lines) is scanned with `json.JSONDecoder.raw_decode`
over a sliding buffer, element by element: the C decoder does the work, this module only finds
where each element starts. A syntax error there ends the file (a JSON document has no next line
to resynchronise on), after the elements before it.
"""

from __future__ import annotations

import gzip
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

__all__ = ["ReadError", "Record", "read_records"]

# Suffixes that say "one JSON value per line" whatever the first line looks like.
_LINE_SUFFIXES: Final = frozenset({".jsonl", ".ndjson", ".jsonlines"})
_CHUNK: Final = 1 << 20
_WHITESPACE: Final = re.compile(r"[ \t\r\n]*")
# An error this close to the end of the buffer may only mean the value goes on in the next
# chunk (a number, `true` or an escape cut in two): read on and decode again.
_NEAR_END: Final = 16
_NUL_ESCAPE: Final = "\\u0000"


@dataclass(frozen=True, slots=True)
class Record:
    """One object of a dump: its JSON value (any type: the caller checks it is an object), or
    why none could be read there. `line` is 1-based, where the value starts."""

    line: int
    value: Any = None
    error: str | None = None
    # Whether its text has a `\u0000` escape: JSON can only hold a NUL character that way,
    # so a value without one needs no search for NULs (which PostgreSQL text cannot store).
    may_hold_nul: bool = True


class ReadError(Exception):
    """The file cannot be read on from here (not UTF-8, a JSON document broken at `line`)."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


class _Counted(io.RawIOBase):
    """Counts the bytes read from the file itself (compressed ones for .gz): the progress."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self._raw.readinto(buffer)  # type: ignore[attr-defined]
        self.count += n or 0
        return n  # type: ignore[no-any-return]

    def close(self) -> None:
        self._raw.close()
        super().close()


def read_records(path: Path, progress: list[int] | None = None) -> Iterator[Record]:
    """Every object of the dump at `path`, in file order. A list page or an array gives its
    elements, each a record of its own. `progress[0]` (if given) follows the bytes read.

    Raises ReadError when the rest of the file cannot be read (after yielding what came before),
    and OSError when the file cannot be opened."""
    raw = open(path, "rb")
    counted = _Counted(raw)
    binary: IO[bytes] = io.BufferedReader(counted, _CHUNK)
    if path.suffix == ".gz":
        binary = gzip.GzipFile(fileobj=binary, mode="rb")  # type: ignore[assignment]
        suffix = Path(path.stem).suffix
    else:
        suffix = path.suffix
    # utf-8-sig: a byte-order mark (some Windows tools write one) is not part of the JSON.
    text = io.TextIOWrapper(binary, encoding="utf-8-sig", newline="")
    try:
        yield from _records(text, suffix.lower() in _LINE_SUFFIXES, counted, progress)
    finally:
        text.close()


def _records(
    text: io.TextIOWrapper, by_suffix: bool, counted: _Counted, progress: list[int] | None
) -> Iterator[Record]:
    line_number = 0
    try:
        first = text.readline()
        line_number = 1
        # Blank lines before anything are skipped in both forms.
        while first and not first.strip():
            first = text.readline()
            line_number += 1
        if not first:
            return
        if by_suffix or _is_one_line_value(first):
            yield from _lines(text, first, line_number, counted, progress)
        else:
            yield from _Document(text, first, line_number, counted, progress).records()
    except UnicodeDecodeError as error:
        raise ReadError(max(line_number, 1), f"not UTF-8 ({error.reason})") from None


def _is_one_line_value(line: str) -> bool:
    try:
        value = json.loads(line)
    except ValueError:
        return False
    return isinstance(value, dict | list)


def _lines(
    text: io.TextIOWrapper,
    first: str,
    number: int,
    counted: _Counted,
    progress: list[int] | None,
) -> Iterator[Record]:
    line = first
    while line:
        if line.strip():
            yield from _line_records(line, number)
        if progress is not None:
            progress[0] = counted.count
        line = text.readline()
        number += 1


def _line_records(line: str, number: int) -> Iterator[Record]:
    try:
        value = json.loads(line)
    except ValueError as error:
        yield Record(number, error=f"not valid JSON: {_json_problem(error)}")
        return
    nul = _NUL_ESCAPE in line
    items = _page_items(value)
    if items is None:
        yield Record(number, value, may_hold_nul=nul)
    else:
        for item in items:
            yield Record(number, item, may_hold_nul=nul)


def _page_items(value: Any) -> list[Any] | None:
    """The objects a value holds if it is a list page or an array, else None (one object)."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict) and value.get("object") == "list" and "data" in value:
        data = value["data"]
        return data if isinstance(data, list) else [data]
    return None


def _json_problem(error: ValueError) -> str:
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} (column {error.colno})"
    return str(error)


class _Document:
    """A JSON document scanned element by element over a sliding buffer."""

    def __init__(
        self,
        text: io.TextIOWrapper,
        first: str,
        number: int,
        counted: _Counted,
        progress: list[int] | None,
    ) -> None:
        self._text = text
        self._buffer = first
        self._pos = 0
        self._line = number  # the line at _pos
        self._eof = False
        self._counted = counted
        self._progress = progress
        self._decoder = json.JSONDecoder()

    def records(self) -> Iterator[Record]:
        # A document is one value, or several in a row (`jq . < dump.jsonl` writes that).
        while self._skip_whitespace():
            char = self._buffer[self._pos]
            if char == "[":
                yield from self._array()
            elif char == "{":
                yield from self._object()
            else:
                raise ReadError(self._line, "expected an object, an array or a list page")

    # -- the buffer --------------------------------------------------------------------------

    def _fill(self, at_least: int = _CHUNK) -> bool:
        """Read more; False at the end of the file."""
        if self._eof:
            return False
        if self._pos > _CHUNK:  # drop what was consumed, keeping the line count
            self._buffer = self._buffer[self._pos :]
            self._pos = 0
        chunk = self._text.read(max(at_least, _CHUNK))
        if self._progress is not None:
            self._progress[0] = self._counted.count
        if not chunk:
            self._eof = True
            return False
        self._buffer += chunk
        return True

    def _advance(self, to: int) -> None:
        self._line += self._buffer.count("\n", self._pos, to)
        self._pos = to

    def _skip_whitespace(self) -> bool:
        """Move past whitespace; False at the end of the file."""
        while True:
            match = _WHITESPACE.match(self._buffer, self._pos)
            self._advance(match.end() if match else self._pos)
            if self._pos < len(self._buffer):
                return True
            if not self._fill():
                return False

    def _expect(self, what: str) -> str:
        if not self._skip_whitespace():
            raise ReadError(self._line, f"the document ends where {what} was expected")
        return self._buffer[self._pos]

    def _decode(self) -> Any:
        """The JSON value at the cursor, reading on while it is cut by the buffer's end."""
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buffer, self._pos)
            except json.JSONDecodeError as error:
                cut = (
                    error.msg.startswith("Unterminated string")
                    or error.pos >= len(self._buffer) - _NEAR_END
                )
                # Read at least as much again as is pending, so a huge value costs linear time.
                if cut and self._fill(len(self._buffer) - self._pos):
                    continue
                line = self._line + self._buffer.count("\n", self._pos, error.pos)
                raise ReadError(line, f"not valid JSON: {error.msg}") from None
            self._advance(end)
            return value

    # -- structure ---------------------------------------------------------------------------

    def _array(self) -> Iterator[Record]:
        self._advance(self._pos + 1)  # [
        if self._expect("an element or ]") == "]":
            self._advance(self._pos + 1)
            return
        while True:
            line, start = self._line, self._pos
            value = self._decode()
            nul = self._buffer.find(_NUL_ESCAPE, start, self._pos) >= 0
            yield Record(line, value, may_hold_nul=nul)
            char = self._expect(", or ]")
            self._advance(self._pos + 1)
            if char == "]":
                return
            if char != ",":
                raise ReadError(self._line, f"expected , or ] after an element, found {char!r}")
            self._expect("an element")

    def _object(self) -> Iterator[Record]:
        """An object, read key by key so that a list page's `data` streams element by element
        instead of being decoded whole."""
        start = self._line
        self._advance(self._pos + 1)  # {
        found: dict[str, Any] = {}
        paged = False
        if self._expect("a key or }") == "}":
            self._advance(self._pos + 1)
            yield Record(start, found)
            return
        while True:
            if self._expect("a key") != '"':
                raise ReadError(self._line, "expected a key in double quotes")
            key = self._decode()
            if self._expect(":") != ":":
                raise ReadError(self._line, f"expected : after the key {key!r}")
            self._advance(self._pos + 1)
            if key == "data" and self._expect("a value") == "[":
                paged = True
                yield from self._array()
            else:
                self._expect("a value")
                found[key] = self._decode()
            char = self._expect(", or }")
            self._advance(self._pos + 1)
            if char == "}":
                break
            if char != ",":
                raise ReadError(self._line, f"expected , or }} in an object, found {char!r}")
        if not paged:
            yield Record(start, found)
