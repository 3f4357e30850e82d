"""What the importer and the exporter need to know about one type of object.

Each type (`assistant`, `thread`, `thread.message`...) is one small `Kind` in a module of its
own, listed once in `kinds.KINDS`, parents before children. The reading, staging, writing and
exporting code is the same for all of them and asks the kind only for what differs: the proto
message its JSON parses into, the table, where it hangs (a project, a parent), what must be
present, the columns it writes, and how a dumped state this server cannot continue is ended.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from google.protobuf.message import Message
from sqlalchemy import Connection, Table

from assistants_grpc.contract.pb import message_pb2
from assistants_grpc.services import validation as check

__all__ = ["Context", "Kind", "Parent"]


@dataclass(frozen=True, slots=True)
class Parent:
    """The object another one lives under: its kind (`object` string) and the field naming it.
    An object whose parent is neither in the database nor in the same import is refused."""

    kind: str
    field: str


class Context(Protocol):
    """What preparing an object's row needs from the import under way."""

    project: str

    def content_tokens(self, content: Sequence[message_pb2.MessageContent]) -> int:
        """The stored token count of a message's content (as the API counts it)."""
        ...

    def run_ended_at(self, connection: Connection, run_id: str) -> int | None:
        """When the run that wrote an open step or message was ended, if it was: a run active
        in the dump (this import or an earlier one) is ended, and so are its open parts."""
        ...


class Kind:
    """One type of object. Subclasses set the class attributes and override what differs."""

    object: ClassVar[str]  # the OpenAI `object` string
    message_type: ClassVar[type[Message]]
    table: ClassVar[Table]
    # Carries the project itself (assistants, threads); otherwise it lives under a parent.
    top_level: ClassVar[bool] = False
    parent: ClassVar[Parent | None] = None
    # Has `thread_id`: it belongs to that thread's project, and the thread lock applies to it.
    under_thread: ClassVar[bool] = False
    # The field whose value groups objects listed together (a thread's messages); see staging.
    group_field: ClassVar[str | None] = None
    # JSON keys that must be present and not null.
    required: ClassVar[tuple[str, ...]] = ("id", "created_at")
    # Fields holding ids, which must be ids this server can serve (`[A-Za-z0-9_-]{1,64}`).
    id_fields: ClassVar[tuple[str, ...]] = ("id",)
    # Ids of top-level objects that may be absent (an assistant deleted since), but never
    # another project's: (field, kind).
    soft_references: ClassVar[tuple[tuple[str, str], ...]] = ()

    def check(self, obj: Any, v: check.Violations) -> None:
        """Rules beyond the JSON shape, as the API applies them to what it writes."""
        check.check_metadata(v, "metadata", obj.metadata)

    def ends_at(self, obj: Any, now: int) -> int | None:
        """When an object this server cannot continue (a run active in the dump) is taken as
        ended; None for everything else."""
        return None

    def prepare(self, obj: Any, connection: Connection, context: Context) -> Any:
        """The object as it is to be stored (an active run ended...); `obj` is not changed."""
        return obj

    def values(self, obj: Any, context: Context) -> dict[str, Any]:
        """Every column of its row."""
        raise NotImplementedError

    def from_row(self, row: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def written(self, connection: Connection, obj: Any, *, replaced: bool) -> None:
        """More to write once the row is (over)written, in the same transaction."""
