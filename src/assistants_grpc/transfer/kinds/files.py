"""`file`: top level, in the project it is imported into, with its bytes.

The bytes come from beside the dump (transfer/contents.py says where and how). A File without
them is refused, not imported as metadata alone: a File here is a promise that its content can
be read (GetFileContent, a vector store's ingestion, code_interpreter's `/mnt/data`), and one
whose `bytes` says 1,234 while nothing can be read would break each of those later, far from
the import. What names it (tool resources, attachments) is imported all the same, since those
references may be absent; a rerun with the bytes in place imports the File then.

Files of OpenAI's other products (`batch`, `fine-tune`, `evals` and their outputs) are left out
with a note: nothing here can use them. A File whose `expires_at` has passed is refused: it
would read as absent at once and be swept.

The size limit and the project's quota (`--max-file-bytes`, `--max-project-file-bytes`) apply
as they apply to an upload; a File past either is refused with its line. Written over
(`--replace`) with other bytes, a File lets go of its old content and is ingested again in
every vector store it is in.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Connection, RowMapping

from assistants_grpc.contract.pb import file_pb2
from assistants_grpc.files.storage import FilenameError, clean_filename
from assistants_grpc.services import validation as check
from assistants_grpc.store import repository as repo
from assistants_grpc.store import vector_stores as vs
from assistants_grpc.store.mapping import file_from_row, file_values
from assistants_grpc.transfer.kinds._base import Context, Kind, Refused
from assistants_grpc.transfer.kinds.vector_stores import start_over

# OpenAI's purposes of Files that belong to its other products (CONTRACT §12).
OTHER_PURPOSES: Final = frozenset(
    {"batch", "batch_output", "fine-tune", "fine-tune-results", "evals"}
)


class FileKind(Kind):
    object = "file"
    message_type = file_pb2.File
    table = repo.FILES
    top_level = True
    required = ("id", "created_at", "bytes", "filename", "purpose")
    fetches = True

    def skip(self, value: dict[str, Any]) -> str | None:
        purpose = value.get("purpose")
        if purpose in OTHER_PURPOSES:
            return (
                f"not imported: a {purpose!r} File belongs to another OpenAI product (only "
                "assistants, assistants_output, vision and user_data Files are served here)"
            )
        return None

    def check(self, obj: file_pb2.File, v: check.Violations) -> None:
        try:
            if clean_filename(obj.filename) != obj.filename:
                v.add("filename", "must be a file's base name, without a directory.")
        except FilenameError as error:
            v.add("filename", str(error))
        if obj.bytes < 0:
            v.add("bytes", "must be at least 0.")

    def weight(self, obj: file_pb2.File) -> int:
        return obj.bytes

    def fetch(
        self, obj: file_pb2.File, source: Path, stored: RowMapping | None, context: Context
    ) -> None:
        if obj.HasField("expires_at") and obj.expires_at <= context.now:
            raise Refused("expires_at", f"the File expired at {obj.expires_at}; it is gone")
        context.contents.fetch(obj.id, obj.bytes, source, stored)

    def values(self, obj: file_pb2.File, context: Context) -> dict[str, Any]:
        sha256 = context.contents.get(obj.id).sha256
        return file_values(obj) | {"project": context.project, "sha256": sha256}

    def from_row(self, row: Mapping[str, Any]) -> file_pb2.File:
        return file_from_row(row)

    def same(self, row: Mapping[Any, Any], values: dict[str, Any]) -> bool:
        # The bytes too: the JSON does not show them.
        return row["sha256"] == values["sha256"] and super().same(row, values)

    def before_write(
        self,
        connection: Connection,
        obj: file_pb2.File,
        previous: RowMapping | None,
        context: Context,
    ) -> None:
        fetched = context.contents.get(obj.id)
        if previous is not None and previous["sha256"] == fetched.sha256:
            return  # the same bytes: only the metadata is written over
        freed = previous["bytes"] if previous is not None else 0
        context.contents.admit(connection, context.project, fetched, freed=freed, now=context.now)
        context.contents.store(connection, fetched, now=context.now)
        if previous is not None:
            context.contents.drop(connection, previous["sha256"])
            for store_id in vs.stores_of_file(connection, obj.id):
                start_over(connection, store_id, obj.id)
