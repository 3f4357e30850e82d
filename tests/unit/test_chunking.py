"""Chunk offsets: the token byte lengths from the encoding's table agree with decoding every
token, for ASCII, multi-byte characters and a token that ends inside a character."""

from __future__ import annotations

import itertools

from assistants_grpc.engine.tokens import COUNTING_ENCODING, TokenCounter
from assistants_grpc.files.chunking import chunk_text, rebuild_text


def _reference(encoding, text: str, max_tokens: int, overlap: int) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    tokens = encoding.encode(text, disallowed_special=())
    offsets = [0, *itertools.accumulate(len(b) for b in encoding.decode_tokens_bytes(tokens))]
    spans, start = [], 0
    while True:
        end = min(start + max_tokens, len(tokens))
        spans.append((offsets[start], offsets[end]))
        if end >= len(tokens):
            return spans
        start += max_tokens - overlap


def test_chunk_offsets_match_a_decode_of_every_token() -> None:
    encoding = TokenCounter().encoding(COUNTING_ENCODING)
    text = ("Plain words, then café, naïve, 漢字かな, emoji 🙂🙃 and <|endoftext|>. " * 40).strip()
    chunks = chunk_text(encoding, text, 100, 30)
    data = text.encode("utf-8")
    expected = _reference(encoding, text, 100, 30)
    assert [(c.token_start, c.token_end) for c in chunks][:1] == [(0, 100)]
    assert len(chunks) == len(expected)

    def char(offset: int) -> int:  # a byte offset inside a character snaps to its end
        while offset < len(data) and (data[offset] & 0xC0) == 0x80:
            offset += 1
        return len(data[:offset].decode("utf-8"))

    for chunk, (byte_start, byte_end) in zip(chunks, expected, strict=True):
        assert (chunk.char_start, chunk.char_end) == (char(byte_start), char(byte_end))
        assert chunk.text == text[chunk.char_start : chunk.char_end]
    assert chunks[-1].char_end == len(text)
    assert rebuild_text([(c.char_start, c.char_end, c.text) for c in chunks]) == text
