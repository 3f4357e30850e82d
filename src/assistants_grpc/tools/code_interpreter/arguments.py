"""The `python` call's code, decoded from the model's JSON arguments as they stream.

The model writes `{"code": "import sympy\\nx = ..."}` a few characters at a time; the step's
`code_interpreter.input` must show the code itself, growing with each fragment, and end exactly
as the code that runs. So the JSON string of `code` is decoded incrementally: an escape
(`\\n`, `\\"`, `\\u00e9`) or a surrogate pair (`\\ud83d\\ude00`) split across fragments is held
back until it is whole, and other keys' values are skipped whatever their type.

One decoder serves both the stream and the execution (`decode_code` feeds it the whole string),
so what was shown is what runs. Lenient where models are sloppy and strict JSON would only
lose the code: a raw newline inside the string is kept, a lone surrogate becomes U+FFFD (it
could not be sent as UTF-8), and arguments that are not a JSON object at all are taken as the
code itself (some models write the code bare, as OpenAI's own tool took it).

Pure: no I/O, no clock; `tests/unit/test_code_arguments.py` splits strings at every point.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto

from assistants_grpc.engine.server_tools import JSON

_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_WHITESPACE = " \t\r\n"
REPLACEMENT = "\ufffd"
CODE_KEY = "code"


class _State(Enum):
    START = auto()  # before the first non-blank character
    RAW = auto()  # not a JSON object: every character is code
    KEY_OR_END = auto()  # inside the object, before a key, a comma or the closing brace
    KEY = auto()  # inside a key's string
    COLON = auto()
    VALUE = auto()  # before a value
    CODE = auto()  # inside the string of `code`
    SKIP_STRING = auto()  # inside another key's string value
    SKIP_NESTED = auto()  # inside another key's object or array value
    SKIP_SCALAR = auto()  # inside another key's number or literal
    AFTER_VALUE = auto()
    DONE = auto()  # after the object's closing brace


class _StringDecoder:
    """Decodes the inside of one JSON string, character by character, holding back what may
    not be whole yet (an escape, four hex digits, the high half of a surrogate pair)."""

    __slots__ = ("_escape", "_hex", "_high")

    def __init__(self) -> None:
        self._escape = False
        self._hex: str | None = None  # the digits of a \u escape read so far
        self._high: str | None = None  # a high surrogate waiting for its low half

    def feed(self, char: str, out: list[str]) -> bool:
        """Decode `char` into `out`; True if it was the closing quote."""
        if self._hex is not None:
            self._hex += char
            if len(self._hex) == 4:
                digits, self._hex = self._hex, None
                try:
                    self._code_point(int(digits, 16), out)
                except ValueError:  # not hex: keep the text as written
                    self._flush_high(out)
                    out.append("\\u" + digits)
            return False
        if self._escape:
            self._escape = False
            if char == "u":
                self._hex = ""
                return False
            self._flush_high(out)
            out.append(_ESCAPES.get(char, char))
            return False
        if char == "\\":
            self._escape = True
            return False
        self._flush_high(out)
        if char == '"':
            return True
        out.append(char)
        return False

    def _code_point(self, value: int, out: list[str]) -> None:
        if 0xD800 <= value <= 0xDBFF:  # a high surrogate: its pair may follow
            self._flush_high(out)
            self._high = chr(value)
        elif 0xDC00 <= value <= 0xDFFF:  # a low surrogate: whole with a high one before it
            if self._high is not None:
                high, self._high = self._high, None
                out.append(chr(0x10000 + ((ord(high) - 0xD800) << 10) + (value - 0xDC00)))
            else:
                out.append(REPLACEMENT)
        else:
            self._flush_high(out)
            out.append(chr(value))

    def _flush_high(self, out: list[str]) -> None:
        if self._high is not None:
            self._high = None
            out.append(REPLACEMENT)

    def finish(self, out: list[str]) -> None:
        """The string ended without its closing quote (arguments cut off): release what is
        held back, as far as it can be read."""
        self._flush_high(out)
        if self._escape:
            out.append("\\")
        if self._hex is not None:
            out.append("\\u" + self._hex)
        self._escape, self._hex = False, None


@dataclass(frozen=True, slots=True)
class DecodedCode:
    """What the arguments say, once all of them are in."""

    code: str
    found: bool
    """A `code` string (or bare code) was there."""
    complete: bool
    """Its closing quote was there (False: the arguments were cut off)."""


class CodeDecoder:
    """Feed the arguments' fragments in order; each `feed` returns the code decoded from it."""

    def __init__(self) -> None:
        self._state = _State.START
        self._string = _StringDecoder()
        self._key: list[str] = []
        self._depth = 0  # nesting inside a skipped object or array
        self._in_string = False  # inside a string of a skipped object or array
        self._skip_escape = False
        self.found = False
        self.complete = False
        self._seen_code = False

    def feed(self, fragment: str) -> str:
        out: list[str] = []
        for char in fragment:
            self._step(char, out)
        return "".join(out)

    def finish(self) -> str:
        """The code still held back when the arguments ended (the rest of a cut-off escape)."""
        out: list[str] = []
        if self._state is _State.CODE:
            self._string.finish(out)
        return "".join(out)

    def _step(self, char: str, out: list[str]) -> None:
        state = self._state
        if state is _State.CODE:
            if self._string.feed(char, out):
                self.complete = True
                self._state = _State.AFTER_VALUE
        elif state is _State.RAW:
            out.append(char)
        elif state is _State.START:
            if char in _WHITESPACE:
                return
            if char == "{":
                self._state = _State.KEY_OR_END
            else:
                self._state = _State.RAW
                self.found = self.complete = True
                out.append(char)
        elif state is _State.KEY_OR_END:
            if char == '"':
                self._key = []
                self._string = _StringDecoder()
                self._state = _State.KEY
            elif char == "}":
                self._state = _State.DONE
        elif state is _State.KEY:
            if self._string.feed(char, self._key):
                self._state = _State.COLON
        elif state is _State.COLON:
            if char == ":":
                self._state = _State.VALUE
        elif state is _State.VALUE:
            self._start_value(char)
        elif state is _State.SKIP_STRING:
            if self._string.feed(char, []):
                self._state = _State.AFTER_VALUE
        elif state is _State.SKIP_NESTED:
            self._skip_nested(char)
        elif state is _State.SKIP_SCALAR:
            if char == ",":
                self._state = _State.KEY_OR_END
            elif char == "}":
                self._state = _State.DONE
        elif state is _State.AFTER_VALUE:
            if char == ",":
                self._state = _State.KEY_OR_END
            elif char == "}":
                self._state = _State.DONE

    def _start_value(self, char: str) -> None:
        if char in _WHITESPACE:
            return
        self._string = _StringDecoder()
        if char == '"':
            if "".join(self._key) == CODE_KEY and not self._seen_code:
                # The first `code` wins: what streamed is never taken back.
                self._seen_code = self.found = True
                self._state = _State.CODE
            else:
                self._state = _State.SKIP_STRING
        elif char in "{[":
            self._depth, self._in_string, self._skip_escape = 1, False, False
            self._state = _State.SKIP_NESTED
        else:
            self._state = _State.SKIP_SCALAR

    def _skip_nested(self, char: str) -> None:
        if self._in_string:
            if self._skip_escape:
                self._skip_escape = False
            elif char == "\\":
                self._skip_escape = True
            elif char == '"':
                self._in_string = False
        elif char == '"':
            self._in_string = True
        elif char in "{[":
            self._depth += 1
        elif char in "}]":
            self._depth -= 1
            if self._depth == 0:
                self._state = _State.AFTER_VALUE


def decode_code(arguments: str) -> DecodedCode:
    """The code of complete arguments, decoded exactly as the stream showed it."""
    decoder = CodeDecoder()
    code = decoder.feed(arguments) + decoder.finish()
    return DecodedCode(code=code, found=decoder.found, complete=decoder.complete)


class CodeInputStream:
    """The `InputStream` of a `python` call: its first delta has the empty input and outputs
    (as OpenAI's did), each later one the code decoded from one more fragment."""

    def __init__(self) -> None:
        self._decoder = CodeDecoder()

    def first(self) -> JSON:
        return {"input": "", "outputs": []}

    def feed(self, fragment: str) -> JSON | None:
        text = self._decoder.feed(fragment)
        return {"input": text} if text else None


__all__ = [
    "CODE_KEY",
    "REPLACEMENT",
    "CodeDecoder",
    "CodeInputStream",
    "DecodedCode",
    "decode_code",
]
