"""Live fan-out of run events to subscribers, with replay from the log.

Writers publish events after their transaction commits, so a subscriber never sees an event the
log doesn't hold. A subscriber reads contiguous events from memory while the channel has them and
falls back to the log otherwise (it subscribed late, resumed from an old sequence, or two writers
published out of order); it then waits for the next publish, or for `wake` when another replica
wrote the log. With several replicas the wait also times out now and then to re-read the log, in
case a wake-up was lost; a single process needs no such polling.

Memory holds a run's events only while someone can use them: while a writer here is in the
middle of one of the run's segments (created or continued here, up to its next `done`: a stream
opened meanwhile reads it from memory), or while subscribers here read them. A run that went to
`requires_action` here and is continued on another replica, or that another replica writes to,
leaves nothing behind on this one; `channel_count` says how many runs memory holds. A replay
reads the log a page at a time (`page_size` events per read).

A stream ends at a `done` event: the first one for a `segment` subscription (CreateRunStream,
SubmitToolOutputsStream end where the OpenAI stream ends, e.g. at requires_action), or the final
one, after the run's terminal event, for a `run` subscription (WatchRun follows the whole run).
A stream whose run is deleted with its thread ends with RunDeletedError: no `done` will come.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from assistants_grpc.events.log import TERMINAL_RUN_EVENTS, RunEvent
from assistants_grpc.observability import metrics

LoadAfter = Callable[[str, int, int], Awaitable[list[RunEvent]]]
"""Reads at most `limit` of a run's logged events after a sequence number: (run, after, limit)."""
LoadOne = Callable[[str, int], Awaitable[RunEvent | None]]

Until = Literal["segment", "run"]

# Events per read of the log. A run of ~50 events replays in one read; a long one (thousands of
# deltas) in pages, so no read holds a whole log in memory at once.
PAGE_SIZE = 500


class ReplicaSignals(Protocol):
    """What the bus tells the other replicas (events.signals.PostgresSignals on PostgreSQL)."""

    def events_written(self, run_id: str) -> None: ...
    def run_deleted(self, run_id: str) -> None: ...


@dataclass
class _Channel:
    events: dict[int, RunEvent] = field(default_factory=dict)
    highest: int = 0  # the highest sequence published here
    subscribers: int = 0
    finished: bool = False
    deleted: bool = False
    # A writer here is in the middle of a segment of the run (its last event here is not a
    # `done`): a stream opened now reads what it wrote from memory. Cleared by a `done`, and by
    # a write on another replica (the run is followed from the log there on).
    live: bool = False
    # Bumped when another replica wrote the log: memory is then not the whole story.
    remote_writes: int = 0
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    # What each live subscriber has handed on so far, and a signal when that moves.
    delivered: dict[object, int] = field(default_factory=dict)
    progress: asyncio.Event = field(default_factory=asyncio.Event)

    def notify(self) -> None:
        self.wakeup.set()
        self.wakeup = asyncio.Event()

    def advance(self, token: object, sequence: int) -> None:
        self.delivered[token] = sequence
        self.progress.set()
        self.progress = asyncio.Event()


class RunDeletedError(LookupError):
    """The run a subscriber follows was deleted with its thread: its stream ends here."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id} was deleted with its thread")
        self.run_id = run_id


def ends_run(previous: str | None, event: RunEvent) -> bool:
    return event.event == "done" and previous in TERMINAL_RUN_EVENTS


class EventBus:
    def __init__(
        self,
        load_after: LoadAfter,
        load_one: LoadOne,
        *,
        recheck_seconds: float | None = None,
        page_size: int = PAGE_SIZE,
        signals: ReplicaSignals | None = None,
        observer: Callable[[str, Sequence[RunEvent]], None] | None = None,
    ) -> None:
        self._load_after = load_after
        self._load_one = load_one
        # How long a waiting subscriber trusts wake-ups before it looks at the log itself.
        self._recheck_seconds = recheck_seconds
        self._page_size = page_size
        # Told about every publish and every forget; None when this process is the only one.
        self._signals = signals
        self._channels: dict[str, _Channel] = {}
        # Sees every committed batch first (the run's log lines: observability.logs).
        self._observer = observer
        # Streams subscribed on this replica (for the metrics).
        self.subscriber_count = 0

    def metric_values(self) -> dict[str, float]:
        """The bus's live gauges (observability/metrics.py LIVE)."""
        return {
            "assistants_event_subscribers": self.subscriber_count,
            "assistants_event_channels": len(self._channels),
        }

    @property
    def channel_count(self) -> int:
        """How many runs this bus holds in memory (what a leak would grow)."""
        return len(self._channels)

    def publish(self, run_id: str, events: Sequence[RunEvent]) -> None:
        """Hand committed events to live subscribers."""
        if events and (recorded := metrics.active()) is not None:
            recorded.events_published.inc(len(events))
        if not events:
            return
        if self._observer is not None:
            self._observer(run_id, events)
        channel = self._channels.get(run_id)
        if channel is None:
            channel = self._channels[run_id] = _Channel()
        previous = channel.events.get(events[0].sequence - 1)
        previous_name = previous.event if previous is not None else None
        for event in events:
            channel.events[event.sequence] = event
            channel.highest = max(channel.highest, event.sequence)
            if ends_run(previous_name, event):
                channel.finished = True
            previous_name = event.event
        channel.live = previous_name != "done"
        channel.notify()
        self._collect(run_id, channel)
        if self._signals is not None:
            self._signals.events_written(run_id)

    def wake_all(self) -> None:
        """Make every waiting subscriber re-read the log (signals from elsewhere may be lost)."""
        for run_id, channel in list(self._channels.items()):
            self._written_elsewhere(run_id, channel)

    def wake(self, run_id: str) -> None:
        """Make waiting subscribers re-read: the log changed elsewhere (another replica)."""
        channel = self._channels.get(run_id)
        if channel is not None:
            self._written_elsewhere(run_id, channel)

    def _written_elsewhere(self, run_id: str, channel: _Channel) -> None:
        # Another replica writes the run now: what memory holds is no longer the whole story,
        # so it is only kept for the subscribers reading it.
        channel.remote_writes += 1
        channel.live = False
        channel.notify()
        self._collect(run_id, channel)

    def forget(self, run_id: str) -> None:
        """Drop a run's buffered events (its thread was deleted): its live subscribers end
        with RunDeletedError, here and, through the replica signals, on the other replicas."""
        self.forgotten_elsewhere(run_id)
        if self._signals is not None:
            self._signals.run_deleted(run_id)

    def forgotten_elsewhere(self, run_id: str) -> None:
        """`forget`, for a run whose thread another replica deleted."""
        channel = self._channels.pop(run_id, None)
        if channel is not None:
            channel.finished = channel.deleted = True
            channel.notify()

    def _collect(self, run_id: str, channel: _Channel) -> None:
        # Without subscribers, memory serves only a segment being written here; everything else
        # is replayed from the log. That covers a finished run, a run that paused for tool
        # outputs (continued here, it starts a new segment; elsewhere, nothing is left behind),
        # a run written by another replica, and a channel a subscriber made and left.
        if channel.subscribers == 0 and (channel.finished or not channel.live):
            if self._channels.get(run_id) is channel:
                del self._channels[run_id]

    async def subscribe(self, run_id: str, after: int, until: Until) -> AsyncIterator[RunEvent]:
        """Events of `run_id` with a sequence above `after`, in order, until a `done`."""
        channel = self._channels.get(run_id)
        if channel is None:
            channel = self._channels[run_id] = _Channel()
        channel.subscribers += 1
        self.subscriber_count += 1
        token = object()
        channel.delivered[token] = after
        recorded = metrics.active()
        try:
            previous = await self._previous_name(run_id, channel, after)
            cursor = after
            read_log = True  # memory may lack what came before this subscription
            # The log may hold what memory never will (written elsewhere): only a read of the
            # log settles it, not events from memory.
            elsewhere = False
            remote_writes = channel.remote_writes
            while True:
                wakeup = channel.wakeup
                # Checked before reading, with the wake-up event already in hand: a write
                # elsewhere signalled at any point up to here is never slept through.
                if channel.remote_writes != remote_writes:
                    remote_writes = channel.remote_writes
                    read_log = elsewhere = True
                batch = self._from_memory(channel, cursor)
                if not batch and (read_log or self._has_gap(channel, cursor)):
                    batch = await self._load_after(run_id, cursor, self._page_size)
                    # A full page: the log may hold more, which the next round reads (from
                    # memory, if the rest is there by then).
                    read_log = len(batch) >= self._page_size
                    elsewhere = False
                elif not elsewhere:
                    read_log = False
                handed = cursor
                for event in batch:
                    if event.sequence != cursor + 1:
                        break  # a gap: re-read from where we are
                    yield event
                    cursor = event.sequence
                    channel.advance(token, cursor)
                    if event.event == "done" and (until == "segment" or ends_run(previous, event)):
                        if recorded is not None:
                            recorded.events_delivered.inc(cursor - handed)
                        return
                    previous = event.event
                if recorded is not None and cursor > handed:
                    recorded.events_delivered.inc(cursor - handed)
                if not batch:
                    # Checked before waiting too: `forget` may have come while we were reading
                    # the log or handing on events, and nobody wakes a forgotten channel again.
                    if not channel.deleted:
                        try:
                            await asyncio.wait_for(wakeup.wait(), self._recheck_seconds)
                        except TimeoutError:
                            read_log = elsewhere = True
                    if channel.deleted:
                        raise RunDeletedError(run_id)
                    if self._channels.get(run_id) is not channel:
                        # The channel was dropped (finished and collected while we were between
                        # reads): continue on a fresh one, reading the log.
                        channel.subscribers -= 1
                        channel.delivered.pop(token, None)
                        channel = self._channels.setdefault(run_id, _Channel())
                        channel.subscribers += 1
                        channel.delivered[token] = cursor
                        remote_writes = channel.remote_writes
                        read_log = elsewhere = True
        finally:
            channel.subscribers -= 1
            self.subscriber_count -= 1
            channel.delivered.pop(token, None)
            channel.progress.set()
            self._collect(run_id, channel)

    async def delivered(self, run_id: str, sequence: int, timeout: float) -> None:
        """Wait (at most `timeout` seconds) until every local subscriber of the run has handed
        on the events up to `sequence`. A run's writer calls it after the first text, so the
        stream gets the loop to itself for a moment instead of waiting behind the rest of the
        run's work: that is what callers feel as the time to the first token."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            channel = self._channels.get(run_id)
            if channel is None or all(s >= sequence for s in channel.delivered.values()):
                return
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                await asyncio.wait_for(channel.progress.wait(), remaining)
            except TimeoutError:
                return

    @staticmethod
    def _has_gap(channel: _Channel, cursor: int) -> bool:
        """Memory holds later events but not the next one: two writers published out of order."""
        return channel.highest > cursor

    @staticmethod
    def _from_memory(channel: _Channel, cursor: int) -> list[RunEvent]:
        batch = []
        sequence = cursor + 1
        while (event := channel.events.get(sequence)) is not None:
            batch.append(event)
            sequence += 1
        return batch

    async def _previous_name(self, run_id: str, channel: _Channel, after: int) -> str | None:
        """The name of the event a subscription resumes after (a resume may land right between
        a terminal run event and its `done`)."""
        if after <= 0:
            return None
        event = channel.events.get(after) or await self._load_one(run_id, after)
        return event.event if event is not None else None


__all__ = [
    "PAGE_SIZE",
    "EventBus",
    "LoadAfter",
    "LoadOne",
    "ReplicaSignals",
    "RunDeletedError",
    "Until",
    "ends_run",
]
