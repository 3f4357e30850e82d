"""The services a face serves, built once by the runtime and shared by every face."""

from __future__ import annotations

from dataclasses import dataclass

from assistants_grpc.services.assistants import AssistantService
from assistants_grpc.services.files import FileService
from assistants_grpc.services.messages import MessageService
from assistants_grpc.services.runs import RunService
from assistants_grpc.services.threads import ThreadService
from assistants_grpc.services.vector_stores import VectorStoreService


@dataclass(frozen=True)
class Services:
    assistants: AssistantService
    threads: ThreadService
    messages: MessageService
    runs: RunService
    files: FileService
    vector_stores: VectorStoreService


__all__ = ["Services"]
