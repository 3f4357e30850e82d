"""Secure by default: who may reach the server decides whether it may run without keys.

- Without authentication (`--auth disabled`, or `auto` while no active key exists) the server
  binds loopback only; a non-loopback address is refused at start-up unless `--allow-insecure`.
- `auto` on a non-loopback address (with keys, or with `--allow-insecure` left off) becomes
  `required` for the life of the process: revoking the last key must not open the server up.
"""

from __future__ import annotations

import ipaddress

from assistants_grpc.auth.authenticator import AuthMode


class SecurityConfigError(ValueError):
    """A security setting the server refuses to start with (the CLI exits 2)."""


def parse_mode(value: str) -> AuthMode:
    try:
        return AuthMode(value.strip().lower())
    except ValueError:
        allowed = ", ".join(mode.value for mode in AuthMode)
        raise SecurityConfigError(f"--auth: {value!r} is not one of {allowed}") from None


def is_loopback(host: str) -> bool:
    """Whether binding `host` accepts connections from this machine only. Names other than
    `localhost` are not resolved here, so they count as reachable from outside."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def effective_mode(
    configured: AuthMode, host: str, *, keys_exist: bool, allow_insecure: bool
) -> AuthMode:
    """The mode to serve with, or SecurityConfigError if serving would expose data to anyone
    who can reach `host`."""
    if is_loopback(host) or allow_insecure:
        return configured
    open_to_all = configured is AuthMode.DISABLED or (
        configured is AuthMode.AUTO and not keys_exist
    )
    if open_to_all:
        raise SecurityConfigError(
            f"refusing to listen on {host} without authentication: create an API key "
            "(assistants-grpc keys create --project NAME) or use --auth required, bind "
            "127.0.0.1, or pass --allow-insecure to accept unauthenticated calls from the network"
        )
    return AuthMode.REQUIRED


__all__ = ["SecurityConfigError", "effective_mode", "is_loopback", "parse_mode"]
