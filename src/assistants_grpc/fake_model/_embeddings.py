"""`POST /v1/embeddings` of the fake model server: deterministic vectors, so tests of dense
retrieval need no model.

A text's vector is a hashed bag of its words (lowercased, with a crude English suffix strip, so
"searching" and "searched" land together) plus, at a lower weight, of its character trigrams
(so near-spellings are near), in EMBEDDING_DIMENSIONS signed buckets, normalised. Texts sharing
words are close, unrelated texts nearly orthogonal: enough for a search to behave like a real
embedding on topical questions, and identical on every run.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
import struct
from typing import Any, Final

__all__ = ["EMBEDDING_DIMENSIONS", "embed", "embeddings_response"]

EMBEDDING_DIMENSIONS: Final = 256
_WORD: Final = re.compile(r"[^\W_]+")
_SUFFIXES: Final = ("ations", "ation", "ings", "ing", "ies", "ied", "ed", "es", "ly", "s")
_STOP: Final = frozenset(
    "a an and are as at be by do for from how i in is it of on or the this to was what with".split()
)


def _stem(word: str) -> str:
    for suffix in _SUFFIXES:
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def _bucket(feature: str) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
    value = int.from_bytes(digest, "little")
    return value % EMBEDDING_DIMENSIONS, 1.0 if (value >> 63) & 1 else -1.0


def embed(text: str) -> list[float]:
    vector = [0.0] * EMBEDDING_DIMENSIONS
    words = [_stem(w) for w in (m.lower() for m in _WORD.findall(text)) if w not in _STOP]
    for word in words:
        index, sign = _bucket("w:" + word)
        vector[index] += sign
        padded = f"#{word}#"
        for i in range(len(padded) - 2):
            index, sign = _bucket("t:" + padded[i : i + 3])
            vector[index] += 0.25 * sign
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def _error(status: int, message: str) -> tuple[int, bytes]:
    body = {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}
    }
    return status, json.dumps(body).encode()


def embeddings_response(raw: bytes) -> tuple[int, bytes]:
    """(HTTP status, JSON body) for one embeddings request body."""
    try:
        body: Any = json.loads(raw)
    except ValueError:
        return _error(400, "We could not parse the JSON body of your request.")
    if not isinstance(body, dict) or "input" not in body:
        return _error(400, "'input' is a required property")
    inputs = body["input"]
    if isinstance(inputs, str):
        inputs = [inputs]
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
        return _error(400, "'input' must be a string or a list of strings")
    base64_format = body.get("encoding_format") == "base64"
    data = []
    for index, text in enumerate(inputs):
        vector = embed(text)
        encoded: Any = (
            base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
            if base64_format
            else vector
        )
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(max(1, len(text) // 4) for text in inputs)
    payload = {
        "object": "list",
        "data": data,
        "model": body.get("model", "fake-embedding"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return 200, json.dumps(payload, separators=(",", ":")).encode()
