"""What the services need from outside, injected once at start-up (tests inject their own)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from assistants_grpc.clock import Clock
from assistants_grpc.engine.tokens import TokenCounter
from assistants_grpc.ids import IdGenerator
from assistants_grpc.services.limits import Limits
from assistants_grpc.store.database import Database


@dataclass(frozen=True)
class Dependencies:
    database: Database
    clock: Clock
    new_id: IdGenerator
    tokens: TokenCounter
    limits: Limits = field(default_factory=Limits)
    # Vector stores made by create-form tool resources and attachments: the embedding model new
    # stores are built with (None: lexical only), and a nudge for the ingestion worker.
    embedding_model: str | None = None
    wake_ingestion: Callable[[], None] = lambda: None

    def now(self) -> int:
        """The current time in whole unix seconds, as every `*_at` field holds it."""
        return int(self.clock.now())


__all__ = ["Dependencies"]
