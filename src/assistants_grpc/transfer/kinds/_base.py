"""What the importer and the exporter need to know about one type of object.

Each type (`assistant`, `thread`, `thread.message`, `file`, `vector_store`...) is one small
`Kind` in a module of its own, listed once in `kinds.KINDS`, parents before children. The
reading, staging, writing and exporting code is the same for all of them and asks the kind only
for what differs: the proto message its JSON parses into, the table, where it hangs (a project,
a parent), what it names (other objects, which must or may exist), what must be present, the
columns it writes, how a dumped state this server cannot continue is ended, and, for a File,
the bytes that come beside the dump.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from google.protobuf.message import Message
from sqlalchemy import Connection, RowMapping, Table

from assistants_grpc.contract.openai_json import render
from assistants_grpc.contract.pb import common_pb2, message_pb2
from assistants_grpc.services import validation as check
from assistants_grpc.store import repository as repo

if TYPE_CHECKING:
    from assistants_grpc.transfer.contents import Contents

__all__ = ["Context", "Kind", "Parent", "Refused", "resource_references"]


@dataclass(frozen=True, slots=True)
class Parent:
    """The object another one lives under: its kind (`object` string) and the field naming it.
    An object whose parent is neither in the database nor in the same import is refused, and
    so is one whose parent is another project's."""

    kind: str
    field: str


class Refused(Exception):
    """Raised by a kind's hooks: the object is not imported, for this reason (reported with its
    line), and nothing of it is written."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class Context(Protocol):
    """What preparing an object's row needs from the import under way."""

    project: str
    now: int
    # The embedding model the server embeds new stores' chunks with (None: lexical only).
    embedding_model: str | None
    # Where Files' bytes come from and go (transfer/contents.py).
    contents: Contents

    def content_tokens(self, content: Sequence[message_pb2.MessageContent]) -> int:
        """The stored token count of a message's content (as the API counts it)."""
        ...

    def run_ended_at(self, connection: Connection, run_id: str) -> int | None:
        """When the run that wrote an open step or message was ended, if it was: a run active
        in the dump (this import or an earlier one) is ended, and so are its open parts."""
        ...

    def looked_up(self, kind: str, object_id: str) -> RowMapping | None:
        """The stored row of a parent or needed object of the batch being written (looked up
        once for the batch), or None."""
        ...


class Kind:
    """One type of object. Subclasses set the class attributes and override what differs."""

    object: ClassVar[str]  # the OpenAI `object` string
    message_type: ClassVar[type[Message]]
    table: ClassVar[Table]
    # Carries the project itself (assistants, threads, files, stores); otherwise it lives under
    # a parent.
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
    # another project's: (field, kind). `references` may name more.
    soft_references: ClassVar[tuple[tuple[str, str], ...]] = ()
    # Ids of top-level objects that must be there, in the project and live, as a parent must,
    # though the object does not live under them (a vector-store file's File): (field, kind).
    needs: ClassVar[tuple[tuple[str, str], ...]] = ()
    # Brings content beside its JSON line (a File's bytes): `fetch` gets it before the batch's
    # transaction, outside it.
    fetches: ClassVar[bool] = False

    # -- reading -----------------------------------------------------------------------------

    def skip(self, value: dict[str, Any]) -> str | None:
        """Why a dumped object of this type is deliberately left out (not an error, reported
        as a note), or None. Sees the JSON, before it is parsed."""
        return None

    def check(self, obj: Any, v: check.Violations) -> None:
        """Rules beyond the JSON shape, as the API applies them to what it writes."""
        check.check_metadata(v, "metadata", obj.metadata)

    def key(self, obj: Any) -> str:
        """What tells two objects of this type apart (an id, unless it is only unique under
        its parent): duplicates in a dump share it."""
        return str(obj.id)

    def weight(self, obj: Any) -> int:
        """Bytes the object brings beyond its JSON (a File's content), counted in the size of
        the transaction that writes it."""
        return 0

    def ends_at(self, obj: Any, now: int) -> int | None:
        """When an object this server cannot continue (a run active in the dump) is taken as
        ended; None for everything else."""
        return None

    def references(self, obj: Any) -> Iterator[tuple[str, str, str]]:
        """(field, kind, id) of every top-level object it names that may be absent but must
        not be another project's."""
        for field, kind in self.soft_references:
            value = getattr(obj, field)
            if value:
                yield field, kind, value

    # -- writing -----------------------------------------------------------------------------

    def row_key(self, row: Mapping[Any, Any]) -> str:
        """`key` of a stored row."""
        return str(row["id"])

    def existing(self, connection: Connection, objects: Sequence[Any]) -> dict[str, RowMapping]:
        """The stored rows of these objects, by `key`."""
        rows = repo.rows_by_ids(connection, self.table, [o.id for o in objects])
        return {self.row_key(row): row for row in rows}

    def fetch(self, obj: Any, source: Path, stored: RowMapping | None, context: Context) -> None:
        """(`fetches` only.) Get what comes beside the object for it, before the transaction
        that writes it (`source` is the dump it was read from); Refused if it cannot be had."""

    def prepare(self, obj: Any, connection: Connection, context: Context) -> Any:
        """The object as it is to be stored (an active run ended...); `obj` is not changed."""
        return obj

    def values(self, obj: Any, context: Context) -> dict[str, Any]:
        """Every column of its row."""
        raise NotImplementedError

    def from_row(self, row: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def same(self, row: Mapping[Any, Any], values: dict[str, Any]) -> bool:
        """Whether the stored row is what the import would store: both rendered as OpenAI JSON
        through the same mapping, so equal means the import would change nothing anyone can
        see."""
        return render(self.from_row(row)) == render(self.from_row(values))

    def before_write(
        self, connection: Connection, obj: Any, previous: RowMapping | None, context: Context
    ) -> None:
        """The last word before the object's row is inserted (`previous` None) or written over:
        Refused leaves it out, and must come before anything is written for it."""

    def overwrite(self, connection: Connection, row: RowMapping, values: dict[str, Any]) -> None:
        """Write `values` over the stored `row` (`--replace`)."""
        repo.update_by_id(connection, self.table, row["id"], values)

    def written(
        self, connection: Connection, obj: Any, context: Context, *, previous: RowMapping | None
    ) -> None:
        """More to write once the row is inserted (`previous` None) or written over, in the
        same transaction."""

    # -- exporting ---------------------------------------------------------------------------

    def render_rows(
        self, connection: Connection, rows: Sequence[Mapping[str, Any]]
    ) -> Iterator[dict[str, Any]]:
        """The OpenAI JSON of stored rows, in order."""
        for row in rows:
            yield render(self.from_row(row))


def resource_references(
    resources: common_pb2.ToolResources, path: str = "tool_resources"
) -> Iterator[tuple[str, str, str]]:
    """The Files and vector stores `tool_resources` name (the object form)."""
    for i, file_id in enumerate(resources.code_interpreter.file_ids):
        yield f"{path}.code_interpreter.file_ids[{i}]", "file", file_id
    for i, store_id in enumerate(resources.file_search.vector_store_ids):
        yield f"{path}.file_search.vector_store_ids[{i}]", "vector_store", store_id
