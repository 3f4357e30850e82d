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
}

IdGenerator = Callable[[str], str]
"""Makes a new id for an object kind (a key of PREFIXES). Injected, so tests can pin ids."""


def random_id(kind: str) -> str:
    return PREFIXES[kind] + "".join(secrets.choice(_ALPHABET) for _ in range(_LENGTH))


__all__ = ["PREFIXES", "IdGenerator", "random_id"]
