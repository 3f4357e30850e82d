"""Turns a call's `authorization: Bearer <key>` header into the Caller it acts as.

Headers are a Mapping of lowercase names to values, as both faces have them: HTTP's own, and
gRPC metadata through `api.errors.metadata_headers` (a repeated name joined with ", ", so a
second authorization entry is malformed, as a second Authorization header is over HTTP).

The modes (`--auth`):
- `required`: every call needs a valid key.
- `auto` (default): a call needs a valid key as soon as at least one active key exists. While
  none does, a call without a key acts in the default project. A call that does send a key always
  has it checked, so a typo never silently lands data in the default project.
- `disabled`: keys are neither asked for nor looked at; everything is the default project.

Lookups are cached in-process for `cache_seconds` (keys by their hash, and whether any active key
exists), so a call costs a sha256 and a dict lookup, not a database round trip. The price: a key
revoked, or the first key created, by another process takes effect within that many seconds.
`last_used_at` is written at most once a minute per key and process.
"""

from __future__ import annotations

import enum
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from assistants_grpc.auth import keys
from assistants_grpc.auth.caller import ANONYMOUS, Caller
from assistants_grpc.clock import Clock
from assistants_grpc.services.errors import UnauthenticatedError
from assistants_grpc.store import api_keys
from assistants_grpc.store.database import Database

log = logging.getLogger(__name__)

Headers = Mapping[str, str]
"""A call's headers: lowercase names to values."""

MISSING = "Missing API key: send 'authorization: Bearer <key>' metadata."
MALFORMED = "Malformed authorization metadata: expected 'Bearer sk-...'."
# One message for unknown and revoked keys: the answer must not tell which keys once existed.
INVALID = "Invalid API key."
# Added to a refused key while `auto` has no active key to check it against (calls without a key
# are served then, so it tells nothing): the openai SDK always sends one, so this is what a first
# local try over HTTP meets.
NO_KEYS_YET = (
    " This server has no active API key: create one with `assistants-grpc keys create --project"
    " NAME` and send it, or serve with `--auth disabled` (loopback only) to not check keys."
)

TOUCH_INTERVAL = 60.0
# The cache holds unknown keys too (so a client retrying a bad key does not hit the database on
# every call); past this many entries the stale ones are dropped, then all of them.
_MAX_CACHED = 10_000


class AuthMode(enum.StrEnum):
    AUTO = "auto"
    REQUIRED = "required"
    DISABLED = "disabled"


@dataclass(frozen=True)
class _Key:
    id: str
    project: str
    revoked: bool


def bearer_token(headers: Headers) -> str | None:
    """The key of the call's authorization header; None if there is none."""
    value = headers.get("authorization")
    if value is None:
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not keys.looks_like_key(token):
        raise UnauthenticatedError(MALFORMED)
    return token


class Authenticator:
    def __init__(
        self, database: Database, clock: Clock, mode: AuthMode, *, cache_seconds: float
    ) -> None:
        self.mode = mode
        self._database = database
        self._clock = clock
        self._ttl = cache_seconds
        self._keys: dict[str, tuple[float, _Key | None]] = {}
        self._any_active: tuple[float, bool] | None = None
        self._touched: dict[str, float] = {}

    async def authenticate(self, headers: Headers) -> Caller:
        if self.mode is AuthMode.DISABLED:
            return ANONYMOUS
        try:
            token = bearer_token(headers)
        except UnauthenticatedError as refused:
            raise await self._explained(refused.message) from None
        if token is None:
            if self.mode is AuthMode.REQUIRED or await self.keys_exist():
                raise UnauthenticatedError(MISSING)
            return ANONYMOUS
        key = await self._lookup(keys.hash_key(token))
        if key is None or key.revoked:
            # DEBUG: a client hammering a bad key must not be able to flood the log.
            log.debug("refused a call with an %s API key", "unknown" if key is None else "revoked")
            raise await self._explained(INVALID)
        await self._touch(key.id)
        return Caller(project=key.project, key_id=key.id)

    async def _explained(self, message: str) -> UnauthenticatedError:
        """The refusal of a key that was sent; with the way out while `auto` has no keys."""
        if self.mode is AuthMode.AUTO and not await self.keys_exist():
            message += NO_KEYS_YET
        return UnauthenticatedError(message)

    async def keys_exist(self) -> bool:
        """Whether an active key exists (cached): what `auto` mode asks."""
        now = self._clock.now()
        if self._any_active is not None and self._fresh(self._any_active[0], now):
            return self._any_active[1]
        exists = await self._database.transaction(api_keys.any_active)
        self._any_active = (now, exists)
        return exists

    def _fresh(self, loaded_at: float, now: float) -> bool:
        # A clock stepped backwards must not make an entry live for ever.
        return 0 <= now - loaded_at < self._ttl

    async def _lookup(self, key_hash: str) -> _Key | None:
        now = self._clock.now()
        cached = self._keys.get(key_hash)
        if cached is not None and self._fresh(cached[0], now):
            return cached[1]
        row = await self._database.transaction(lambda c: api_keys.find_by_hash(c, key_hash))
        # The lookup was by the hash already; comparing it again is only defence in depth.
        key = (
            _Key(row["id"], row["project"], row["revoked_at"] is not None)
            if row is not None and _same(row["key_hash"], key_hash)
            else None
        )
        if len(self._keys) >= _MAX_CACHED:
            self._keys = {h: e for h, e in self._keys.items() if self._fresh(e[0], now)}
            if len(self._keys) >= _MAX_CACHED:
                self._keys.clear()
        self._keys[key_hash] = (now, key)
        return key

    async def _touch(self, key_id: str) -> None:
        now = self._clock.now()
        last = self._touched.get(key_id)
        if last is not None and 0 <= now - last < TOUCH_INTERVAL:
            return
        self._touched[key_id] = now  # first, so concurrent calls do not all write
        try:
            await self._database.transaction(lambda c: api_keys.touch(c, key_id, int(now)))
        except Exception:  # bookkeeping only: never fail the call over it
            log.warning("could not record the use of key %s", key_id, exc_info=True)


def _same(stored: str, computed: str) -> bool:
    return hmac.compare_digest(stored.encode(), computed.encode())


__all__ = [
    "INVALID",
    "MALFORMED",
    "MISSING",
    "NO_KEYS_YET",
    "AuthMode",
    "Authenticator",
    "Headers",
    "bearer_token",
]
