"""`thread`: top level, in the project it is imported into. The Files and vector stores of its
`tool_resources` may be absent (deleted since), never another project's."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from assistants_grpc.contract.pb import thread_pb2
from assistants_grpc.store import repository as repo
from assistants_grpc.store.mapping import thread_from_row, thread_values
from assistants_grpc.transfer.kinds._base import Context, Kind, resource_references


class ThreadKind(Kind):
    object = "thread"
    message_type = thread_pb2.Thread
    table = repo.THREADS
    top_level = True

    def references(self, obj: thread_pb2.Thread) -> Iterator[tuple[str, str, str]]:
        return resource_references(obj.tool_resources)

    def values(self, obj: thread_pb2.Thread, context: Context) -> dict[str, Any]:
        return thread_values(obj) | {"project": context.project}

    def from_row(self, row: Mapping[str, Any]) -> thread_pb2.Thread:
        return thread_from_row(row)
