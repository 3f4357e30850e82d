"""Message use cases. Adding a message respects the thread lock: while a run is active on the
thread, CreateMessage fails, checked in the same transaction as the insert. Messages live under
a thread, so each use case first checks the thread belongs to the caller's project."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, RowMapping, false

from assistants_grpc.contract.pb import message_pb2
from assistants_grpc.engine.prompt import IMAGE_TOKENS
from assistants_grpc.engine.tokens import COUNTING_MODEL, TokenCounter
from assistants_grpc.services import validation as check
from assistants_grpc.services.deps import Dependencies
from assistants_grpc.services.errors import FailedPreconditionError, NotFoundError
from assistants_grpc.services.limits import Limits
from assistants_grpc.services.listing import list_in
from assistants_grpc.services.scope import require_thread
from assistants_grpc.services.vector_stores import attach_to_thread_store, file_search_attachments
from assistants_grpc.store import repository as repo
from assistants_grpc.store.mapping import (
    message_from_row,
    message_values,
    thread_from_row,
    thread_values,
)


def check_message_inputs(
    v: check.Violations, field: str, items: Sequence[message_pb2.MessageInput], limits: Limits
) -> None:
    for i, item in enumerate(items):
        check.check_message_input(
            v, f"{field}[{i}]", item.role, item.content, item.attachments, item.metadata, limits
        )


def message_text(content: Sequence[message_pb2.MessageContent]) -> str:
    return "\n".join(part.text.value for part in content if part.WhichOneof("content") == "text")


def _image_tokens(content: Sequence[message_pb2.MessageContent]) -> int:
    images = sum(1 for part in content if part.WhichOneof("content") in ("image_file", "image_url"))
    return images * IMAGE_TOKENS


async def count_tokens(deps: Dependencies, content: Sequence[message_pb2.MessageContent]) -> int:
    """The tokens a message's content costs; a long text is counted off the event loop."""
    tokens = await deps.tokens.count_text_off_loop(COUNTING_MODEL, message_text(content))
    return tokens + _image_tokens(content)


def content_tokens(counter: TokenCounter, content: Sequence[message_pb2.MessageContent]) -> int:
    """`count_tokens`, for a caller without an event loop (the importer): the same count, so
    an imported thread truncates like one written through the API."""
    return counter.count_text(COUNTING_MODEL, message_text(content)) + _image_tokens(content)


def _content(inputs: Sequence[message_pb2.MessageContentInput]) -> list[message_pb2.MessageContent]:
    """Request parts to response parts: a text string becomes `{value, annotations: []}`."""
    parts = []
    for part in inputs:
        case = part.WhichOneof("content")
        if case == "text":
            parts.append(message_pb2.MessageContent(text=message_pb2.TextContent(value=part.text)))
        elif case == "image_file":
            parts.append(message_pb2.MessageContent(image_file=part.image_file))
        elif case == "image_url":
            parts.append(message_pb2.MessageContent(image_url=part.image_url))
    return parts


MessageItem = message_pb2.MessageInput | message_pb2.CreateMessageRequest


def _message(
    deps: Dependencies, thread_id: str, item: MessageItem, now: int
) -> message_pb2.Message:
    """A message created through the API: status completed, no run."""
    return message_pb2.Message(
        id=deps.new_id("message"),
        created_at=now,
        thread_id=thread_id,
        status=message_pb2.MESSAGE_STATUS_COMPLETED,
        completed_at=now,
        role=item.role,
        content=_content(item.content),
        attachments=item.attachments,
        metadata=item.metadata,
    )


async def new_messages(
    deps: Dependencies, thread_id: str, items: Sequence[MessageItem], now: int
) -> list[tuple[message_pb2.Message, int]]:
    """Messages created through the API, each with its token count (long texts are counted off
    the event loop, one after another: the point is a free loop, not a faster count)."""
    messages = [_message(deps, thread_id, item, now) for item in items]
    return [(message, await count_tokens(deps, message.content)) for message in messages]


def ensure_no_active_run(
    connection: Connection, project: str, thread_id: str, *, starting_run: bool
) -> None:
    """Lock the project's thread and refuse while a run holds it (CONTRACT.md §7, §11.8), with
    the message OpenAI gives for a new message or for a new run."""
    exists, active = (
        repo.lock_thread_for_write(connection, thread_id, project=project)
        if check.plausible_id(thread_id)
        else (False, None)
    )
    if not exists:
        raise NotFoundError("thread", thread_id)
    if active is None:
        return
    if starting_run:
        raise FailedPreconditionError(f"Thread {thread_id} already has an active run {active}.")
    raise FailedPreconditionError(
        f"Can't add messages to {thread_id} while a run {active} is active."
    )


def insert_messages(
    connection: Connection, messages: Sequence[message_pb2.Message], counts: Sequence[int]
) -> None:
    repo.insert_rows(
        connection,
        repo.MESSAGES,
        [message_values(m) | {"token_count": n} for m, n in zip(messages, counts, strict=True)],
    )


class MessageService:
    def __init__(self, deps: Dependencies) -> None:
        self._deps = deps

    async def create(
        self, project: str, request: message_pb2.CreateMessageRequest
    ) -> message_pb2.Message:
        v = check.Violations()
        check.check_required_id(v, "thread_id", request.thread_id)
        check.check_message_input(
            v,
            "",
            request.role,
            request.content,
            request.attachments,
            request.metadata,
            self._deps.limits,
        )
        v.raise_if_any()
        [(message, tokens)] = await new_messages(
            self._deps, request.thread_id, [request], self._deps.now()
        )

        attached = file_search_attachments(request.attachments)

        def work(connection: Connection) -> None:
            ensure_no_active_run(connection, project, request.thread_id, starting_run=False)
            if attached:
                _attach(connection, self._deps, project, request.thread_id, attached)
            insert_messages(connection, [message], [tokens])

        await self._deps.database.transaction(work)
        if attached:
            self._deps.wake_ingestion()
        return message

    async def get(self, project: str, thread_id: str, message_id: str) -> message_pb2.Message:
        return message_from_row(
            await self._deps.database.transaction(
                lambda c: _message_row(c, project, thread_id, message_id)
            )
        )

    async def list(
        self, project: str, request: message_pb2.ListMessagesRequest
    ) -> message_pb2.ListMessagesResponse:
        scope = [repo.MESSAGES.c.thread_id == request.thread_id]
        if request.HasField("run_id"):
            # An id no run can have matches no message (and never reaches the query as is).
            plausible = check.plausible_id(request.run_id)
            scope.append(repo.MESSAGES.c.run_id == request.run_id if plausible else false())

        def work(connection: Connection) -> message_pb2.ListMessagesResponse:
            require_thread(connection, project, request.thread_id)
            return list_in(
                connection,
                request,
                repo.MESSAGES,
                scope,
                message_from_row,
                message_pb2.ListMessagesResponse(),
            )

        return await self._deps.database.transaction(work)

    async def update(
        self, project: str, request: message_pb2.UpdateMessageRequest
    ) -> message_pb2.Message:
        v = check.Violations()
        check.check_required_id(v, "thread_id", request.thread_id)
        check.check_required_id(v, "message_id", request.message_id)
        if request.HasField("metadata"):
            check.check_metadata(v, "metadata", request.metadata.values)
        v.raise_if_any()

        def work(connection: Connection) -> message_pb2.Message:
            row = _message_row(connection, project, request.thread_id, request.message_id)
            message = message_from_row(row)
            if request.HasField("metadata"):
                message.metadata.clear()
                message.metadata.update(request.metadata.values)
                repo.update_by_id(
                    connection, repo.MESSAGES, message.id, {"metadata": dict(message.metadata)}
                )
            return message

        return await self._deps.database.transaction(work)

    async def delete(
        self, project: str, thread_id: str, message_id: str
    ) -> message_pb2.DeleteMessageResponse:
        def work(connection: Connection) -> bool:
            _message_row(connection, project, thread_id, message_id)
            return repo.delete_by_id(connection, repo.MESSAGES, message_id)

        if not await self._deps.database.transaction(work):
            raise NotFoundError("message", message_id)
        return message_pb2.DeleteMessageResponse(id=message_id, deleted=True)


def _attach(
    connection: Connection, deps: Dependencies, project: str, thread_id: str, file_ids: list[str]
) -> None:
    """Files attached for file_search join the thread's vector store (made if missing)."""
    row = repo.get_in_project(connection, repo.THREADS, project, thread_id)
    if row is None:
        raise NotFoundError("thread", thread_id)
    thread = thread_from_row(row)
    if attach_to_thread_store(connection, deps, project, thread.tool_resources, file_ids):
        repo.update_by_id(
            connection,
            repo.THREADS,
            thread_id,
            {"tool_resources": thread_values(thread)["tool_resources"]},
        )


def _message_row(
    connection: Connection, project: str, thread_id: str, message_id: str
) -> RowMapping:
    require_thread(connection, project, thread_id)
    row = (
        repo.get_message(connection, thread_id, message_id)
        if check.plausible_id(message_id)
        else None
    )
    if row is None:
        raise NotFoundError("message", message_id)
    return row


__all__ = [
    "MessageItem",
    "MessageService",
    "check_message_inputs",
    "content_tokens",
    "count_tokens",
    "ensure_no_active_run",
    "insert_messages",
    "message_text",
    "new_messages",
]
