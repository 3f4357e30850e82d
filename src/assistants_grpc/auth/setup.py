"""The server's security posture, decided once at start-up from the settings: the auth mode it
serves with (or a refusal to start), the Guard every call passes, and the log lines that say
what was decided."""

from __future__ import annotations

import logging

from assistants_grpc.auth.authenticator import Authenticator, AuthMode
from assistants_grpc.auth.exposure import effective_mode, is_loopback, parse_mode
from assistants_grpc.auth.guard import Guard
from assistants_grpc.auth.limits import RateLimiter, StreamLimiter
from assistants_grpc.clock import Clock
from assistants_grpc.config import Settings
from assistants_grpc.store import api_keys
from assistants_grpc.store.database import Database

log = logging.getLogger(__name__)


async def build_guard(settings: Settings, database: Database, clock: Clock) -> Guard:
    """The Guard to serve with; SecurityConfigError if the settings would expose the data."""
    configured = parse_mode(settings.auth)
    keys_exist = await database.transaction(api_keys.any_active)
    # Every address a face binds counts: one face on loopback does not excuse the other.
    modes = {
        effective_mode(
            configured, host, keys_exist=keys_exist, allow_insecure=settings.allow_insecure
        )
        for host in bound_hosts(settings)
    }
    mode = AuthMode.REQUIRED if AuthMode.REQUIRED in modes else configured
    _log_posture(settings, mode, keys_exist=keys_exist)
    rate = (
        RateLimiter(clock, rate=settings.rate_limit_per_second, burst=settings.rate_limit_burst)
        if settings.rate_limit_per_second > 0
        else None
    )
    streams = (
        StreamLimiter(settings.max_streams_per_key) if settings.max_streams_per_key > 0 else None
    )
    return Guard(
        Authenticator(database, clock, mode, cache_seconds=settings.auth_cache_seconds),
        rate=rate,
        streams=streams,
    )


def bound_hosts(settings: Settings) -> list[str]:
    """The addresses the faces bind: gRPC's, and the HTTP face's when it is on or named (an
    `--http-host` given is judged even when that face is off: it says where data may go)."""
    hosts = [settings.host]
    http_named = settings.http_port != 0 or settings.http_host is not None
    if http_named and settings.http_bind_host != settings.host:
        hosts.append(settings.http_bind_host)
    return hosts


def _log_posture(settings: Settings, mode: AuthMode, *, keys_exist: bool) -> None:
    exposed = [h for h in bound_hosts(settings) if not is_loopback(h)]
    host = ", ".join(exposed) if exposed else ", ".join(bound_hosts(settings))
    loopback = not exposed
    keyless = mode is AuthMode.DISABLED or (mode is AuthMode.AUTO and not keys_exist)
    if mode is AuthMode.REQUIRED:
        log.info("authentication required: every call needs an API key")
    elif mode is AuthMode.AUTO and keys_exist:
        log.info("authentication on (--auth auto): API keys exist, every call needs one")
    if keyless and loopback:
        log.info(
            "authentication off (%s): listening on loopback (%s) only; "
            "`assistants-grpc keys create --project NAME` makes the first key",
            "--auth disabled" if mode is AuthMode.DISABLED else "no API key exists yet",
            host,
        )
    elif keyless:
        log.warning(
            "listening on %s WITHOUT authentication (--allow-insecure): anyone who can reach "
            "this address can read and change every project",
            host,
        )
    if settings.tls_cert is None and not loopback and not keyless:
        log.warning("API keys cross the network in clear text: serve TLS (--tls-cert/--tls-key)")
    if settings.tls_client_ca is not None:
        log.info("TLS with client certificates (mTLS)")
    elif settings.tls_cert is not None:
        log.info("TLS on")


__all__ = ["bound_hosts", "build_guard"]
