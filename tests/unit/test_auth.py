"""The auth package's pieces on their own: keys, the authorization header, the cache, limits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from assistants_grpc import auth
from assistants_grpc.api.errors import metadata_headers
from assistants_grpc.auth import admin, keys
from assistants_grpc.auth.authenticator import (
    INVALID,
    MALFORMED,
    MISSING,
    NO_KEYS_YET,
    Authenticator,
    AuthMode,
    bearer_token,
)
from assistants_grpc.auth.caller import ANONYMOUS, Caller
from assistants_grpc.auth.limits import RateLimiter, StreamLimiter
from assistants_grpc.clock import ManualClock
from assistants_grpc.services.errors import UnauthenticatedError
from assistants_grpc.store import migrate
from assistants_grpc.store.database import Database


def test_public_names() -> None:
    assert set(auth.__all__) == {
        "ANONYMOUS",
        "DEFAULT_PROJECT",
        "AuthMode",
        "Authenticator",
        "Caller",
        "Guard",
        "RateLimiter",
        "SecurityConfigError",
        "StreamLimiter",
        "effective_mode",
        "is_loopback",
        "server_credentials",
    }


def test_keys_are_long_random_and_hashed() -> None:
    made = {keys.new_key() for _ in range(100)}
    assert len(made) == 100
    for key in made:
        assert key.startswith("sk-") and len(key) == 51 and keys.looks_like_key(key)
        assert len(keys.hash_key(key)) == 64 and keys.hash_key(key) != key
        assert keys.display_prefix(key) == key[:11]
    assert not keys.looks_like_key("sk-short")
    assert not keys.looks_like_key("sk-" + "a" * 48 + "!")
    assert keys.check_project_name("team-a.prod_1") == "team-a.prod_1"
    for bad in ("", "-x", "a b", "x" * 65, "é"):
        with pytest.raises(ValueError):
            keys.check_project_name(bad)


KEY = "sk-" + "a" * 48


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"other": "x"}, None),
        ({"authorization": f"Bearer {KEY}"}, KEY),
        ({"authorization": f"bearer  {KEY} "}, KEY),
    ],
)
def test_bearer_token(headers: dict[str, str], expected: str | None) -> None:
    assert bearer_token(headers) == expected


@pytest.mark.parametrize(
    "metadata",
    [
        [("authorization", KEY)],
        [("authorization", f"Basic {KEY}")],
        [("authorization", "Bearer")],
        [("authorization", "Bearer sk-x")],
        [("authorization", f"Bearer {KEY}"), ("authorization", f"Bearer {KEY}")],
        [("authorization", KEY.encode())],
    ],
)
def test_malformed_authorization(metadata: list[tuple[str, str | bytes]]) -> None:
    # gRPC metadata reach the Guard as headers (a repeated entry joined, as HTTP joins them).
    with pytest.raises(UnauthenticatedError) as caught:
        bearer_token(metadata_headers(metadata))
    assert caught.value.message == MALFORMED


def test_metadata_become_lowercase_headers() -> None:
    assert metadata_headers(None) == {}
    assert metadata_headers([("Authorization", "Bearer x"), ("x-a", "1"), ("x-a", "2")]) == {
        "authorization": "Bearer x",
        "x-a": "1, 2",
    }


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'auth.db'}")
    migrate.upgrade(database)
    yield database
    database.dispose()


async def test_authenticator_caches_lookups_for_the_cache_time(database: Database) -> None:
    clock = ManualClock()
    authenticator = Authenticator(database, clock, AuthMode.AUTO, cache_seconds=2)
    assert await authenticator.authenticate({}) == ANONYMOUS  # no key exists yet
    key, info = admin.create_key(database, "p", 0)
    header = {"authorization": f"Bearer {key}"}
    # The cached "no key exists" still answers, until the cache time has passed.
    assert await authenticator.authenticate({}) == ANONYMOUS
    clock.advance(2)
    with pytest.raises(UnauthenticatedError, match="Missing"):
        await authenticator.authenticate({})
    assert await authenticator.authenticate(header) == Caller("p", info.id)
    admin.revoke_key(database, info.id, 0)
    assert await authenticator.authenticate(header) == Caller("p", info.id)  # cached
    clock.advance(2)
    with pytest.raises(UnauthenticatedError) as caught:
        await authenticator.authenticate(header)
    # The only key is revoked: none is active, so the refusal says how to get on.
    assert caught.value.message == INVALID + NO_KEYS_YET


async def test_authenticator_modes(database: Database) -> None:
    clock = ManualClock()
    required = Authenticator(database, clock, AuthMode.REQUIRED, cache_seconds=2)
    with pytest.raises(UnauthenticatedError) as caught:
        await required.authenticate({})
    assert caught.value.message == MISSING
    disabled = Authenticator(database, clock, AuthMode.DISABLED, cache_seconds=2)
    assert await disabled.authenticate({"authorization": "junk"}) == ANONYMOUS
    # auto: a key that is sent is checked, even while none exists.
    auto = Authenticator(database, clock, AuthMode.AUTO, cache_seconds=2)
    with pytest.raises(UnauthenticatedError) as caught:
        await auto.authenticate({"authorization": f"Bearer {KEY}"})
    # ... and the refusal says how to get on while no key exists (what an SDK user meets first).
    assert caught.value.message == INVALID + NO_KEYS_YET
    with pytest.raises(UnauthenticatedError) as caught:
        await auto.authenticate({"authorization": "Bearer not-needed"})
    assert caught.value.message == MALFORMED + NO_KEYS_YET
    admin.create_key(database, "p", 0)
    clock.advance(2)
    with pytest.raises(UnauthenticatedError) as caught:
        await auto.authenticate({"authorization": f"Bearer {KEY}"})
    assert caught.value.message == INVALID


def test_rate_limiter_is_a_token_bucket_per_key() -> None:
    clock = ManualClock()
    limiter = RateLimiter(clock, rate=2.0, burst=3)
    assert [limiter.take("a") for _ in range(3)] == [None, None, None]
    assert limiter.take("a") == pytest.approx(0.5)
    assert limiter.take("b") is None  # another key, another bucket
    clock.advance(0.5)
    assert limiter.take("a") is None
    assert limiter.take("a") == pytest.approx(0.5)
    clock.advance(100)  # refills up to the burst, no further
    assert [limiter.take("a") for _ in range(4)][-1] is not None
    clock.advance(-50)  # a clock stepped back refills nothing
    assert limiter.take("a") is not None
    with pytest.raises(ValueError):
        RateLimiter(clock, rate=0, burst=1)


def test_stream_limiter_counts_per_key() -> None:
    limiter = StreamLimiter(2)
    assert limiter.acquire("a") and limiter.acquire("a")
    assert not limiter.acquire("a")
    assert limiter.acquire("b")
    limiter.release("a")
    assert limiter.open_streams("a") == 1 and limiter.acquire("a")
    for _ in range(5):
        limiter.release("b")
    assert limiter.open_streams("b") == 0
