"""What a run's events have said so far: the position to resume from, the latest run snapshot,
the finished messages. Events are read by their payload (the `data` oneof), not their name, so an
event name this client does not know is carried along without being understood or refused."""

from __future__ import annotations

from assistants_grpc_client._gen.assistants.v1 import message_pb2, run_pb2

__all__ = ["TERMINAL_RUN_EVENTS", "RunState", "delta_text"]

TERMINAL_RUN_EVENTS = frozenset(
    {
        "thread.run.completed",
        "thread.run.failed",
        "thread.run.cancelled",
        "thread.run.expired",
        "thread.run.incomplete",
    }
)
_FINISHED_MESSAGE_EVENTS = frozenset({"thread.message.completed", "thread.message.incomplete"})


class RunState:
    """The accumulated view of one run's event stream, shared by every stream that continues it
    (the segments between tool calls, and the WatchRun calls that resume a broken one)."""

    def __init__(
        self, *, thread_id: str | None = None, run_id: str | None = None, after_sequence: int = 0
    ) -> None:
        self.thread_id = thread_id
        self.run_id = run_id
        self.last_sequence = after_sequence
        self.run: run_pb2.Run | None = None
        self.messages: dict[str, message_pb2.Message] = {}
        self.run_ended = False
        self._previous: str | None = None

    def seen(self, event: run_pb2.RunEvent) -> bool:
        """Whether this event was already delivered (a resumed stream may repeat the last one)."""
        return 0 < event.sequence <= self.last_sequence

    def add(self, event: run_pb2.RunEvent) -> None:
        if event.sequence:
            self.last_sequence = event.sequence
        which = event.WhichOneof("data")
        if which == "run":
            self.run = event.run
            self.run_id, self.thread_id = event.run.id, event.run.thread_id
        elif which == "thread":
            self.thread_id = event.thread.id
        elif which == "message" and event.event in _FINISHED_MESSAGE_EVENTS:
            self.messages[event.message.id] = event.message
        # The run's last `done` follows its terminal event; earlier ones end a segment only.
        if event.event == "done" and self._previous in TERMINAL_RUN_EVENTS:
            self.run_ended = True
        self._previous = event.event


def delta_text(event: run_pb2.RunEvent) -> str:
    """The text a `thread.message.delta` event adds ("" for any other event)."""
    if event.WhichOneof("data") != "message_delta":
        return ""
    return "".join(
        part.text.value
        for part in event.message_delta.delta.content
        if part.WhichOneof("content") == "text"
    )
