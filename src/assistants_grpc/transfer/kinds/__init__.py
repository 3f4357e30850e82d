"""The types of object the importer and exporter know, parents before children.

Adding a type is one module here defining its `Kind`, and one line in KINDS, after the kinds it
lives under or needs (a vector-store file after its store and its File). Files and stores come
first: assistants, threads and messages name them.
"""

from __future__ import annotations

from typing import Final

from assistants_grpc.transfer.kinds._base import Context, Kind, Parent, Refused
from assistants_grpc.transfer.kinds.assistants import AssistantKind
from assistants_grpc.transfer.kinds.files import FileKind
from assistants_grpc.transfer.kinds.messages import MessageKind
from assistants_grpc.transfer.kinds.runs import RunKind
from assistants_grpc.transfer.kinds.steps import StepKind
from assistants_grpc.transfer.kinds.threads import ThreadKind
from assistants_grpc.transfer.kinds.vector_stores import VectorStoreFileKind, VectorStoreKind

KINDS: Final[tuple[Kind, ...]] = (
    FileKind(),
    VectorStoreKind(),
    VectorStoreFileKind(),
    AssistantKind(),
    ThreadKind(),
    MessageKind(),
    RunKind(),
    StepKind(),
)
BY_OBJECT: Final[dict[str, Kind]] = {kind.object: kind for kind in KINDS}
POSITION: Final[dict[str, int]] = {kind.object: i for i, kind in enumerate(KINDS)}

# Objects a dump may hold that are left out on purpose, each with why (a note, not an error).
SKIPPED: Final[dict[str, str]] = {
    # No field of a vector_store.file says which batch added it, so an imported batch would
    # be an empty one; the files themselves come as vector_store.file objects.
    "vector_store.files_batch": "not imported: a file batch only records how files were "
    "added; its files are imported from their vector_store.file objects",
}

__all__ = ["BY_OBJECT", "KINDS", "POSITION", "SKIPPED", "Context", "Kind", "Parent", "Refused"]
