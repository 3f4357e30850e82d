"""Text extraction from the kinds of file the file_search tool reads (CONTRACT.md §12).

Every function here treats the file as hostile and runs inside the extraction child process
(`files/extraction.py` starts it with a CPU, memory and wall-clock cap), so what is guarded here
is what a cap would catch only late or wrongly:

- zip containers (docx, pptx) are read entry by entry through a byte budget, so a zip bomb (or
  an entry whose header lies about its size) stops at the budget, not at the memory cap;
- their XML is parsed with expat, refusing any DOCTYPE: entity declarations live there, so a
  billion-laughs document (or an external entity) is refused before anything expands;
- text files must be UTF-8 without NUL characters (PostgreSQL text cannot hold NUL), and no
  file may yield more than MAX_TEXT_CHARS of text.

Errors are `ExtractionError(code, message)` with OpenAI's `last_error` codes: `unsupported_file`
for a kind whose text cannot be read, `invalid_file` for encrypted, corrupt, empty, oversized or
wrongly encoded files.
"""

from __future__ import annotations

import html.parser
import re
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Final
from xml.parsers import expat

__all__ = [
    "INVALID_FILE",
    "MAX_TEXT_CHARS",
    "SUPPORTED_EXTENSIONS",
    "UNSUPPORTED_FILE",
    "ExtractionError",
    "extract_text",
    "kind_of",
]

UNSUPPORTED_FILE: Final = "unsupported_file"
INVALID_FILE: Final = "invalid_file"

# The Assistants tools read up to 2M tokens of a file; English runs about 4 characters a token.
MAX_TEXT_CHARS: Final = 8_000_000
# Bytes a zip container may inflate to, all entries read together (docx/pptx text parts).
MAX_INFLATED_BYTES: Final = 256 * 1024 * 1024

# Plain text, by extension: prose, markup kept as text, data and code (OpenAI's list, plus the
# usual relatives). csv is read as text.
_TEXT_EXTENSIONS: Final = frozenset(
    """
    txt md markdown rst tex text log csv tsv json jsonl yaml yml toml ini cfg xml
    c h cc cpp cxx hpp cs css go java js mjs cjs jsx ts tsx php py rb rs sh bash zsh ps1 kt
    kts scala swift sql r m pl lua dart vue svelte
    """.split()
)
_HTML_EXTENSIONS: Final = frozenset({"html", "htm", "xhtml"})
SUPPORTED_EXTENSIONS: Final = _TEXT_EXTENSIONS | _HTML_EXTENSIONS | {"pdf", "docx", "pptx"}


class ExtractionError(Exception):
    """The file's text cannot be extracted; `code` is the OpenAI `last_error` code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def kind_of(filename: str) -> str | None:
    """`text`, `html`, `pdf`, `docx` or `pptx` by the file name's extension; None if unknown."""
    extension = filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    if extension in _TEXT_EXTENSIONS:
        return "text"
    if extension in _HTML_EXTENSIONS:
        return "html"
    if extension in ("pdf", "docx", "pptx"):
        return extension
    return None


def extract_text(path: Path, filename: str) -> str:
    """The text of the file at `path`, named `filename`; ExtractionError if there is none."""
    kind = kind_of(filename)
    if kind is None:
        raise ExtractionError(
            UNSUPPORTED_FILE, f"Files of this type are not supported for search: {filename!r}."
        )
    extractor: Callable[[Path], str] = _EXTRACTORS[kind]
    text = extractor(path)
    if len(text) > MAX_TEXT_CHARS:
        raise ExtractionError(
            INVALID_FILE, f"The file has more than {MAX_TEXT_CHARS:,} characters of text."
        )
    if "\x00" in text:
        text = text.replace("\x00", "")
    if not text.strip():
        raise ExtractionError(INVALID_FILE, "The file contains no text.")
    return text


# --- text -------------------------------------------------------------------------------------


def _read_text(path: Path) -> str:
    size = path.stat().st_size
    # A UTF-8 character is at least one byte: more bytes than 4x the cap cannot fit it either.
    if size > 4 * MAX_TEXT_CHARS:
        raise ExtractionError(
            INVALID_FILE, f"The file has more than {MAX_TEXT_CHARS:,} characters of text."
        )
    data = path.read_bytes()
    if b"\x00" in data:
        raise ExtractionError(INVALID_FILE, "The file is binary, not text (it has NUL bytes).")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ExtractionError(
            INVALID_FILE, f"The file is not valid UTF-8 text (byte {error.start})."
        ) from None


class _HTMLText(html.parser.HTMLParser):
    """The visible text of an HTML page: no script or style, blocks on their own lines."""

    _SKIP: Final = frozenset({"script", "style", "noscript", "template", "head"})
    _BLOCKS: Final = frozenset(
        "p div br li ul ol tr table h1 h2 h3 h4 h5 h6 section article header footer pre "
        "blockquote title dt dd".split()
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skipping += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")


def _read_html(path: Path) -> str:
    parser = _HTMLText()
    parser.feed(_read_text(path))
    parser.close()
    return _BLANK_LINES.sub("\n\n", "".join(parser.parts)).strip()


# --- pdf --------------------------------------------------------------------------------------


def _read_pdf(path: Path) -> str:
    import pypdf
    from pypdf.errors import DependencyError, PyPdfError

    try:
        reader = pypdf.PdfReader(path)
        if reader.is_encrypted:
            # Many PDFs are "encrypted" with an empty user password only; those open.
            try:
                opened = bool(reader.decrypt(""))
            except Exception:
                opened = False
            if not opened:
                raise ExtractionError(INVALID_FILE, "The PDF is encrypted.")
        pages: list[str] = []
        total = 0
        for page in reader.pages:
            text = page.extract_text() or ""
            total += len(text)
            if total > MAX_TEXT_CHARS:
                raise ExtractionError(
                    INVALID_FILE, f"The file has more than {MAX_TEXT_CHARS:,} characters of text."
                )
            pages.append(text)
    except ExtractionError:
        raise
    except (
        PyPdfError,
        DependencyError,
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
    ) as error:
        raise ExtractionError(INVALID_FILE, f"The PDF cannot be read: {_short(error)}") from None
    except RecursionError:
        raise ExtractionError(INVALID_FILE, "The PDF is nested too deeply to read.") from None
    return "\n\n".join(page.strip() for page in pages if page.strip())


# --- docx and pptx ----------------------------------------------------------------------------


class _Budget:
    """Bytes the zip's entries may still inflate to, all reads together."""

    def __init__(self, total: int) -> None:
        self.left = total

    def read(self, archive: zipfile.ZipFile, name: str) -> bytes:
        with archive.open(name) as entry:
            data = _read_at_most(entry, self.left)
        self.left -= len(data)
        return data


def _read_at_most(entry: IO[bytes], budget: int) -> bytes:
    # Read in pieces, never trusting the header's size: a bomb stops at the budget.
    pieces: list[bytes] = []
    read = 0
    while True:
        piece = entry.read(min(1 << 20, budget - read + 1))
        if not piece:
            return b"".join(pieces)
        read += len(piece)
        if read > budget:
            raise ExtractionError(
                INVALID_FILE, "The document inflates to more than the server reads (zip bomb?)."
            )
        pieces.append(piece)


class _XMLText:
    """The text runs of an Office XML part, streamed through expat: `text_tag` elements hold
    text, `paragraph_tag` ends a line, tabs and breaks become whitespace. Any DOCTYPE is refused
    (entity declarations live there: no billion laughs, no external entities)."""

    def __init__(self, text_tag: str, paragraph_tag: str) -> None:
        self.parts: list[str] = []
        self._text_tag = text_tag
        self._paragraph_tag = paragraph_tag
        self._in_text = 0
        self._parser = expat.ParserCreate(namespace_separator=" ")
        self._parser.StartDoctypeDeclHandler = self._refuse_doctype
        self._parser.EntityDeclHandler = self._refuse_entity
        self._parser.ExternalEntityRefHandler = self._refuse_external
        self._parser.StartElementHandler = self._start
        self._parser.EndElementHandler = self._end
        self._parser.CharacterDataHandler = self._data

    def parse(self, data: bytes) -> str:
        try:
            self._parser.Parse(data, True)
        except expat.ExpatError as error:
            raise ExtractionError(INVALID_FILE, f"The document's XML is corrupt: {error}") from None
        return "".join(self.parts)

    @staticmethod
    def _refuse_doctype(*_: object) -> None:
        raise ExtractionError(INVALID_FILE, "The document's XML declares a DOCTYPE; refused.")

    @staticmethod
    def _refuse_entity(*_: object) -> None:
        raise ExtractionError(INVALID_FILE, "The document's XML declares entities; refused.")

    @staticmethod
    def _refuse_external(*_: object) -> int:
        raise ExtractionError(INVALID_FILE, "The document's XML refers to external entities.")

    def _start(self, name: str, _attrs: dict[str, str]) -> None:
        local = name.rpartition(" ")[2]
        if local == self._text_tag:
            self._in_text += 1
        elif local == "tab":
            self.parts.append("\t")
        elif local in ("br", "cr"):
            self.parts.append("\n")

    def _end(self, name: str) -> None:
        local = name.rpartition(" ")[2]
        if local == self._text_tag:
            self._in_text -= 1
        elif local == self._paragraph_tag:
            self.parts.append("\n")

    def _data(self, data: str) -> None:
        if self._in_text:
            self.parts.append(data)


def _open_zip(path: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise ExtractionError(INVALID_FILE, f"The document is corrupt: {_short(error)}") from None


def _zip_parts(path: Path, names: Callable[[list[str]], list[str]], tag: str) -> str:
    budget = _Budget(MAX_INFLATED_BYTES)
    texts: list[str] = []
    with _open_zip(path) as archive:
        try:
            members = names(archive.namelist())
            if not members:
                raise ExtractionError(INVALID_FILE, "The document has no text part.")
            for member in members:
                texts.append(_XMLText(tag, "p").parse(budget.read(archive, member)))
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, ValueError) as error:
            # RuntimeError: an encrypted zip entry; the rest: corrupt compressed data.
            raise ExtractionError(
                INVALID_FILE, f"The document is corrupt: {_short(error)}"
            ) from None
    return "\n\n".join(text.strip() for text in texts if text.strip())


def _docx_parts(names: list[str]) -> list[str]:
    return [name for name in ("word/document.xml",) if name in names]


_SLIDE = re.compile(r"^ppt/slides/slide(\d+)\.xml$")


def _pptx_parts(names: list[str]) -> list[str]:
    slides = [(int(m.group(1)), name) for name in names if (m := _SLIDE.match(name))]
    return [name for _, name in sorted(slides)]


def _read_docx(path: Path) -> str:
    return _zip_parts(path, _docx_parts, "t")


def _read_pptx(path: Path) -> str:
    return _zip_parts(path, _pptx_parts, "t")


def _short(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) <= 200 else text[:199] + "…"


_EXTRACTORS: Final[dict[str, Callable[[Path], str]]] = {
    "text": _read_text,
    "html": _read_html,
    "pdf": _read_pdf,
    "docx": _read_docx,
    "pptx": _read_pptx,
}
