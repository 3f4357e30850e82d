"""The line into a running run: the scheduler interrupts it here (cancel, expiry, handback, the
thread's deletion), and the run loop reads its inbox between writes."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from assistants_grpc.engine.turn_end import Reason

__all__ = ["Interrupt", "Reason", "RunControl"]


@dataclass(frozen=True)
class Interrupt:
    reason: Reason


@dataclass
class RunControl:
    """One run executing on this replica. `owner` is this replica's lease name; a turn starts
    only if it can take the run's lease.

    A cancel or an expiry is one more item in the turn's inbox, so the loop reacts to it between
    writes (never half-way through a transaction) and stops the model stream or the tool calls.
    """

    run_id: str
    owner: str
    lease_seconds: float
    inbox: asyncio.Queue[object] = field(default_factory=asyncio.Queue)
    reason: Reason | None = None
    # The project of the call that started the run here, when one did (for its log lines).
    project: str | None = None

    def lease_values(self, wall_clock: float) -> dict[str, Any]:
        """The run's columns that say this replica holds it, from `wall_clock` on (the lease
        clock's now)."""
        return {"lease_owner": self.owner, "lease_expires_at": wall_clock + self.lease_seconds}

    def interrupt(self, reason: Reason) -> None:
        if self.reason is None:
            self.reason = reason
            self.inbox.put_nowait(Interrupt(reason))
