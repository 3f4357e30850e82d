"""The types of object the importer and exporter know, parents before children.

Adding a type (`file`, `vector_store`) is one module here defining its `Kind`, and one line in
KINDS, after the kinds it refers to.
"""

from __future__ import annotations

from typing import Final

from assistants_grpc.transfer.kinds._base import Context, Kind, Parent
from assistants_grpc.transfer.kinds.assistants import AssistantKind
from assistants_grpc.transfer.kinds.messages import MessageKind
from assistants_grpc.transfer.kinds.runs import RunKind
from assistants_grpc.transfer.kinds.steps import StepKind
from assistants_grpc.transfer.kinds.threads import ThreadKind

KINDS: Final[tuple[Kind, ...]] = (
    AssistantKind(),
    ThreadKind(),
    MessageKind(),
    RunKind(),
    StepKind(),
)
BY_OBJECT: Final[dict[str, Kind]] = {kind.object: kind for kind in KINDS}
POSITION: Final[dict[str, int]] = {kind.object: i for i, kind in enumerate(KINDS)}

__all__ = ["BY_OBJECT", "KINDS", "POSITION", "Context", "Kind", "Parent"]
