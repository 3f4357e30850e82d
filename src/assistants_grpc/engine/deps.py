"""What the engine needs from outside, injected once at start-up (tests inject their own).

The services take the same object with their request limits added (`services.deps`): one
database, clock, id generator and token counter serve both layers, and the engine never has to
import the layer above it to be handed them.
"""

from __future__ import annotations

from dataclasses import dataclass

from assistants_grpc.clock import Clock
from assistants_grpc.engine.tokens import TokenCounter
from assistants_grpc.ids import IdGenerator
from assistants_grpc.store.database import Database


@dataclass(frozen=True)
class Dependencies:
    database: Database
    clock: Clock
    new_id: IdGenerator
    tokens: TokenCounter

    def now(self) -> int:
        """The current time in whole unix seconds, as every `*_at` field holds it."""
        return int(self.clock.now())


__all__ = ["Dependencies"]
