"""Object ids: an OpenAI-style prefix and 24 random base62 characters (`asst_...`, `msg_...`)."""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable

_ALPHABET = string.ascii_letters + string.digits
_LENGTH = 24

# The prefixes of CONTRACT.md §1, by object kind.
PREFIXES = {
    "assistant": "asst_",
    "thread": "thread_",
    "message": "msg_",
    "run": "run_",
    "step": "step_",
    "call": "call_",
    "file": "file-",  # OpenAI's files alone take a hyphen
    "vector_store": "vs_",
    "file_batch": "vsfb_",
}

IdGenerator = Callable[[str], str]
"""Makes a new id for an object kind (a key of PREFIXES). Injected, so tests can pin ids."""


def random_id(kind: str) -> str:
    # One call for all the randomness: 24 characters drawn one by one cost ~20 µs, on every row.
    number = int.from_bytes(secrets.token_bytes(18), "big")  # 144 bits > 24 * log2(62) ≈ 143
    chars = []
    for _ in range(_LENGTH):
        number, digit = divmod(number, 62)
        chars.append(_ALPHABET[digit])
    return PREFIXES[kind] + "".join(chars)


__all__ = ["PREFIXES", "IdGenerator", "random_id"]
