"""What an API key looks like, how it is made and how it is stored.

A key is `sk-` followed by 48 URL-safe characters (288 random bits). Only its sha256 is stored:
for a secret that long a fast unsalted hash is enough (nobody can guess their way back from
the hash), and it lets a call find its key with one indexed lookup. The first characters of the
key are kept in clear as its `prefix`, so `keys list` can show which key is which.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string

KEY_PREFIX = "sk-"
# 36 random bytes are 48 URL-safe base64 characters.
_RANDOM_BYTES = 36
# What `keys list` shows of a key: `sk-` and the first 8 random characters.
PREFIX_LENGTH = len(KEY_PREFIX) + 8
# Accepted shapes, a little wider than what `new_key` makes, so the format can grow later. A
# token of any other shape is refused before it costs a hash or a database lookup.
_KEY_SHAPE = re.compile(r"sk-[A-Za-z0-9_-]{20,200}")
_PROJECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ID_ALPHABET = string.ascii_letters + string.digits


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(_RANDOM_BYTES)


def new_key_id() -> str:
    """The key's public id (`key_…`): what logs and `keys list` name it by."""
    return "key_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(24))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    return key[:PREFIX_LENGTH]


def looks_like_key(token: str) -> bool:
    return _KEY_SHAPE.fullmatch(token) is not None


def check_project_name(name: str) -> str:
    """`name` if it is a valid project name, else ValueError saying what one looks like."""
    if _PROJECT_NAME.fullmatch(name) is None:
        raise ValueError(
            f"invalid project name {name!r}: use 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


__all__ = [
    "KEY_PREFIX",
    "PREFIX_LENGTH",
    "check_project_name",
    "display_prefix",
    "hash_key",
    "looks_like_key",
    "new_key",
    "new_key_id",
]
