"""Who is calling: the project a call acts in, and the key that proved it."""

from __future__ import annotations

from dataclasses import dataclass

from assistants_grpc.store.tables import DEFAULT_PROJECT


@dataclass(frozen=True)
class Caller:
    project: str
    # None when the call carried no key (authentication off): per-key limits do not apply.
    key_id: str | None = None


# A call without a key while authentication is off: everything lives in the default project.
ANONYMOUS = Caller(DEFAULT_PROJECT)

__all__ = ["ANONYMOUS", "DEFAULT_PROJECT", "Caller"]
