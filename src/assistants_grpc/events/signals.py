"""Signals between replicas through PostgreSQL LISTEN/NOTIFY: "the log of run X grew", "run X
was cancelled" and "run X was deleted with its thread". No broker: PostgreSQL is the
coordination engine.

Notifications carry a reference (`<sender> <run_id>`), never the events themselves: a NOTIFY
payload is limited to 8,000 bytes and the log is the source of truth; receivers re-read it.
A replica ignores its own notifications (its subscribers were served from memory). Sends are
coalesced: one statement carries every run id that changed since the last one.

The sending side exists from construction on, so the bus and the scheduler are built with it;
what a replica does with what it hears is given to `start`, once those exist.

Two connections, because a psycopg connection that is waiting for notifications cannot send.
If the listening connection breaks, it reconnects and wakes every subscriber, which then re-read
the log (subscribers also re-read on their own every second, so nothing waits on a lost signal).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

log = logging.getLogger(__name__)

EVENTS_CHANNEL = "assistants_run_events"
CANCEL_CHANNEL = "assistants_run_cancel"
DELETED_CHANNEL = "assistants_run_deleted"
_RECONNECT_SECONDS = 1.0

OnRun = Callable[[str], None]


@dataclass(frozen=True)
class Listener:
    """What this replica does when another one signals."""

    # The log of a run grew elsewhere: wake its subscribers here.
    on_events: OnRun
    # A run was cancelled (anywhere, this replica included): interrupt its turn if it runs here.
    on_cancel: OnRun
    # A run was deleted with its thread elsewhere: end its streams and its turn here.
    on_deleted: OnRun
    # The listening connection was re-made: signals may have been missed meanwhile.
    on_reconnect: Callable[[], None]


def listener_name(sender: str) -> str:
    """The `application_name` of a replica's listening connection: pg_stat_activity shows which
    replica's it is (PostgreSQL keeps 63 bytes of it)."""
    return f"assistants-listen {sender}"[:63]


class PostgresSignals:
    def __init__(self, conninfo: str, sender: str) -> None:
        self._conninfo = conninfo
        self._sender = sender
        self._listener: Listener | None = None
        # Run ids to signal, by channel.
        self._pending: dict[str, set[str]] = {EVENTS_CHANNEL: set(), DELETED_CHANNEL: set()}
        self._wakeup = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._listening = asyncio.Event()
        self.listener_name = listener_name(sender)

    async def start(self, listener: Listener) -> None:
        """Listen (and start sending); returns once this replica hears the others."""
        self._listener = listener
        self._tasks = [
            asyncio.create_task(self._listen(), name="pg-listen"),
            asyncio.create_task(self._send_loop(), name="pg-notify"),
        ]
        # Serve only once this replica hears the others.
        await asyncio.wait_for(self._listening.wait(), 30)

    async def stop(self) -> None:
        await self._flush_now()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    # --- sending ------------------------------------------------------------------------------

    def events_written(self, run_id: str) -> None:
        """Called after a commit that appended to `run_id`'s log."""
        self._pending[EVENTS_CHANNEL].add(run_id)
        self._wakeup.set()

    def run_deleted(self, run_id: str) -> None:
        """Called after a commit that deleted `run_id` with its thread."""
        self._pending[DELETED_CHANNEL].add(run_id)
        self._wakeup.set()

    async def send_cancel(self, run_id: str) -> None:
        async with await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True) as conn:
            await conn.execute(
                "SELECT pg_notify(%s, %s)", (CANCEL_CHANNEL, f"{self._sender} {run_id}")
            )

    async def _send_loop(self) -> None:
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True
                ) as conn:
                    while True:
                        await self._wakeup.wait()
                        self._wakeup.clear()
                        await self._send(conn)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("NOTIFY connection failed (%s); reconnecting", error)
                await asyncio.sleep(_RECONNECT_SECONDS)

    async def _send(self, conn: psycopg.AsyncConnection[object]) -> None:
        for channel, run_ids in self._pending.items():
            if not run_ids:
                continue
            payloads = [f"{self._sender} {run_id}" for run_id in run_ids]
            run_ids.clear()
            await conn.execute(
                "SELECT pg_notify(%s, payload) FROM unnest(%s::text[]) AS payload",
                (channel, payloads),
            )

    async def _flush_now(self) -> None:
        if not any(self._pending.values()):
            return
        with contextlib.suppress(Exception):
            async with await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True
            ) as conn:
                await self._send(conn)

    # --- listening ----------------------------------------------------------------------------

    async def _listen(self) -> None:
        assert self._listener is not None  # set by start, before this task exists
        listener = self._listener
        first = True
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self._conninfo, autocommit=True, application_name=self.listener_name
                ) as conn:
                    await conn.execute(f"LISTEN {EVENTS_CHANNEL}")
                    await conn.execute(f"LISTEN {CANCEL_CHANNEL}")
                    await conn.execute(f"LISTEN {DELETED_CHANNEL}")
                    self._listening.set()
                    if not first:
                        listener.on_reconnect()
                    first = False
                    async for notify in conn.notifies():
                        self._dispatch(listener, notify.channel, notify.payload)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("LISTEN connection failed (%s); reconnecting", error)
                await asyncio.sleep(_RECONNECT_SECONDS)

    def _dispatch(self, listener: Listener, channel: str, payload: str) -> None:
        sender, _, run_id = payload.partition(" ")
        if not run_id:
            return
        if channel == CANCEL_CHANNEL:
            listener.on_cancel(run_id)  # also our own: harmless, and simpler to reason about
        elif sender == self._sender:
            return  # our own subscribers were told already
        elif channel == DELETED_CHANNEL:
            listener.on_deleted(run_id)
        else:
            listener.on_events(run_id)


__all__ = [
    "CANCEL_CHANNEL",
    "DELETED_CHANNEL",
    "EVENTS_CHANNEL",
    "Listener",
    "PostgresSignals",
    "listener_name",
]
