"""What the services need from outside, injected once at start-up (tests inject their own):
the engine's dependencies (database, clock, ids, token counter) and the request limits."""

from __future__ import annotations

from dataclasses import dataclass, field

from assistants_grpc.engine import deps
from assistants_grpc.services.limits import Limits


@dataclass(frozen=True)
class Dependencies(deps.Dependencies):
    limits: Limits = field(default_factory=Limits)


__all__ = ["Dependencies"]
