"""What the services need from outside, injected once at start-up (tests inject their own):
the engine's dependencies (database, clock, ids, token counter) and the request limits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from assistants_grpc.engine import deps
from assistants_grpc.services.limits import Limits


@dataclass(frozen=True)
class Dependencies(deps.Dependencies):
    limits: Limits = field(default_factory=Limits)
    # Vector stores made by create-form tool resources and attachments: the embedding model new
    # stores are built with (None: lexical only), and a nudge for the ingestion worker.
    embedding_model: str | None = None
    wake_ingestion: Callable[[], None] = lambda: None


__all__ = ["Dependencies"]
