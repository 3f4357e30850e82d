"""Cutting extracted text into token chunks, with tiktoken's real encoding (engine/tokens.py).

A chunk is `max_tokens` tokens; the next one starts `max_tokens - overlap` tokens later
(OpenAI's `auto` is 800/400). Every chunk keeps where it lies in the text, in tokens and in
characters, so a citation can point back and the file's text can be rebuilt from its chunks
(GetVectorStoreFileContent).

Encoding cost is bounded whatever the text: tiktoken pre-splits text into words, and a
"word" of a million letters (a 100 MB single-line file) would make its byte-pair merge
quadratic. So the text is encoded in segments of at most SEGMENT_CHARS characters, cut after
whitespace where there is some; tokens never cross a segment border, which changes nothing for
ordinary text and caps the work of a pathological one.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import tiktoken

__all__ = [
    "AUTO_MAX_TOKENS",
    "AUTO_OVERLAP_TOKENS",
    "SEGMENT_CHARS",
    "Chunk",
    "chunk_text",
    "rebuild_text",
]

AUTO_MAX_TOKENS: Final = 800
AUTO_OVERLAP_TOKENS: Final = 400
SEGMENT_CHARS: Final = 4096


@dataclass(frozen=True, slots=True)
class Chunk:
    seq: int
    text: str
    char_start: int
    char_end: int
    token_start: int
    token_end: int

    @property
    def tokens(self) -> int:
        return self.token_end - self.token_start


def _segments(text: str) -> Iterator[str]:
    start = 0
    n = len(text)
    while start < n:
        end = min(start + SEGMENT_CHARS, n)
        if end < n:
            cut = max(text.rfind(" ", start, end), text.rfind("\n", start, end))
            if cut > start:
                end = cut + 1
        yield text[start:end]
        start = end


def chunk_text(
    encoding: tiktoken.Encoding, text: str, max_tokens: int, overlap_tokens: int
) -> list[Chunk]:
    """The chunks of `text`: each `max_tokens` long (the last may be shorter), overlapping by
    `overlap_tokens`. CPU-bound (about 1 s for 2M tokens): call it off the event loop."""
    if not text:
        return []
    # Byte length of every token, segment by segment; char offsets come from byte offsets.
    # The lengths come from a table of the encoding (a numpy gather), not a decode per token:
    # that was a Python call per token, holding the GIL ~1 s for 2M tokens, which the event
    # loop felt (runs beside an ingestion waited at every switch interval).
    table = _token_lengths(encoding)
    parts = [
        table[encoding.encode_to_numpy(segment, disallowed_special=())]
        for segment in _segments(text)
    ]
    lengths = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    byte_offsets: list[int] = [0, *np.cumsum(lengths, dtype=np.int64).tolist()]
    total = len(lengths)
    stride = max(1, max_tokens - overlap_tokens)
    spans: list[tuple[int, int]] = []
    start = 0
    while True:
        end = min(start + max_tokens, total)
        spans.append((start, end))
        if end >= total:
            break
        start += stride
    data = text.encode("utf-8")
    wanted = sorted({byte_offsets[i] for span in spans for i in span})
    to_char = _ByteToChar(data)
    chars = {offset: to_char(offset) for offset in wanted}
    chunks = []
    for seq, (token_start, token_end) in enumerate(spans):
        char_start = chars[byte_offsets[token_start]]
        char_end = chars[byte_offsets[token_end]]
        chunks.append(
            Chunk(seq, text[char_start:char_end], char_start, char_end, token_start, token_end)
        )
    return chunks


_LENGTHS: dict[str, npt.NDArray[np.int64]] = {}
_LENGTHS_LOCK = threading.Lock()


def _token_lengths(encoding: tiktoken.Encoding) -> npt.NDArray[np.int64]:
    """The byte length of every token of the encoding, by token id (0 for ids it has not).
    Made once per encoding and process (~0.2 s)."""
    table = _LENGTHS.get(encoding.name)
    if table is not None:
        return table
    with _LENGTHS_LOCK:
        table = _LENGTHS.get(encoding.name)
        if table is None:
            table = np.zeros(encoding.n_vocab, dtype=np.int64)
            for token in range(encoding.n_vocab):
                with contextlib.suppress(KeyError):
                    table[token] = len(encoding.decode_single_token_bytes(token))
            _LENGTHS[encoding.name] = table
    return table


class _ByteToChar:
    """Maps byte offsets of a UTF-8 text to character offsets, snapping an offset inside a
    character (a token may end mid-character) forward to the character's end. Offsets must be
    asked for in increasing order: one pass over the text in all."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._byte = 0
        self._char = 0

    def __call__(self, offset: int) -> int:
        data = self._data
        while offset < len(data) and (data[offset] & 0xC0) == 0x80:
            offset += 1  # a continuation byte: inside a character
        self._char += len(data[self._byte : offset].decode("utf-8"))
        self._byte = offset
        return self._char


def rebuild_text(spans: list[tuple[int, int, str]]) -> str:
    """The text the chunks were cut from, from their `(char_start, char_end, text)` in order:
    each chunk adds what lies past the end of the text so far."""
    parts: list[str] = []
    end = 0
    for char_start, char_end, text in spans:
        if char_end > end:
            parts.append(text[max(0, end - char_start) :])
            end = char_end
    return "".join(parts)
