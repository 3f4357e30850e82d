"""Who may call: API keys (stored hashed), the project each key acts in, per-key limits, the
loopback-unless-authenticated rule, and TLS. The transport asks `Guard` on every call; services
only ever see the resulting project."""

from assistants_grpc.auth.authenticator import Authenticator, AuthMode
from assistants_grpc.auth.caller import ANONYMOUS, DEFAULT_PROJECT, Caller
from assistants_grpc.auth.exposure import SecurityConfigError, effective_mode, is_loopback
from assistants_grpc.auth.guard import Guard
from assistants_grpc.auth.limits import RateLimiter, StreamLimiter
from assistants_grpc.auth.tls import server_credentials

__all__ = [
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
]
