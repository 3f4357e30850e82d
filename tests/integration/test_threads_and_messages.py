"""ThreadService and MessageService through a real server."""

from __future__ import annotations

import asyncio

import grpc

from assistants_grpc.contract.pb import common_pb2, message_pb2, thread_pb2
from tests.conftest import RunningServer, Stubs
from tests.integration.helpers import expect_error, text_input, violated_fields

M = message_pb2
T = thread_pb2


async def test_thread_with_initial_messages(stubs: Stubs) -> None:
    thread = await stubs.threads.CreateThread(
        T.CreateThreadRequest(
            messages=[text_input("first"), text_input("second", M.MESSAGE_ROLE_ASSISTANT)],
            metadata={"user": "u1"},
        )
    )
    assert thread.id.startswith("thread_")
    assert await stubs.threads.GetThread(T.GetThreadRequest(thread_id=thread.id)) == thread
    page = await stubs.messages.ListMessages(
        M.ListMessagesRequest(thread_id=thread.id, order=common_pb2.LIST_ORDER_ASC)
    )
    assert [m.content[0].text.value for m in page.data] == ["first", "second"]
    first = page.data[0]
    assert first.status == M.MESSAGE_STATUS_COMPLETED
    assert first.role == M.MESSAGE_ROLE_USER and page.data[1].role == M.MESSAGE_ROLE_ASSISTANT
    assert not first.HasField("run_id") and not first.HasField("assistant_id")
    assert list(first.content[0].text.annotations) == []


async def test_thread_update_and_delete_cascades(stubs: Stubs) -> None:
    thread = await stubs.threads.CreateThread(T.CreateThreadRequest(messages=[text_input("hi")]))
    message = await stubs.messages.CreateMessage(
        M.CreateMessageRequest(
            thread_id=thread.id,
            role=M.MESSAGE_ROLE_USER,
            content=[M.MessageContentInput(text="more")],
        )
    )
    updated = await stubs.threads.UpdateThread(
        T.UpdateThreadRequest(thread_id=thread.id, metadata=common_pb2.Metadata(values={"a": "b"}))
    )
    assert dict(updated.metadata) == {"a": "b"}
    deleted = await stubs.threads.DeleteThread(T.DeleteThreadRequest(thread_id=thread.id))
    assert deleted.deleted and deleted.id == thread.id
    await expect_error(
        stubs.messages.GetMessage(M.GetMessageRequest(thread_id=thread.id, message_id=message.id)),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_error(
        stubs.messages.ListMessages(M.ListMessagesRequest(thread_id=thread.id)),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_error(
        stubs.threads.GetThread(T.GetThreadRequest(thread_id=thread.id)), grpc.StatusCode.NOT_FOUND
    )


async def test_message_crud_and_wrong_thread(stubs: Stubs) -> None:
    thread = await stubs.threads.CreateThread(T.CreateThreadRequest())
    other = await stubs.threads.CreateThread(T.CreateThreadRequest())
    created = await stubs.messages.CreateMessage(
        M.CreateMessageRequest(
            thread_id=thread.id,
            role=M.MESSAGE_ROLE_USER,
            content=[
                M.MessageContentInput(text="look"),
                M.MessageContentInput(
                    image_url=M.ImageUrl(url="https://example.com/a.png", detail=M.IMAGE_DETAIL_LOW)
                ),
            ],
            attachments=[
                # For code_interpreter: stored as given (a file_search attachment must name a
                # real File, which joins the thread's vector store: test_vector_stores.py).
                M.Attachment(
                    file_id="file-abc",
                    tools=[M.AttachmentTool(type=common_pb2.TOOL_TYPE_CODE_INTERPRETER)],
                )
            ],
            metadata={"k": "v"},
        )
    )
    assert created.id.startswith("msg_") and created.thread_id == thread.id
    assert created.content[1].image_url.detail == M.IMAGE_DETAIL_LOW
    get = M.GetMessageRequest(thread_id=thread.id, message_id=created.id)
    assert await stubs.messages.GetMessage(get) == created
    # The same id under another thread does not exist.
    await expect_error(
        stubs.messages.GetMessage(M.GetMessageRequest(thread_id=other.id, message_id=created.id)),
        grpc.StatusCode.NOT_FOUND,
    )
    await expect_error(
        stubs.messages.DeleteMessage(
            M.DeleteMessageRequest(thread_id=other.id, message_id=created.id)
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    updated = await stubs.messages.UpdateMessage(
        M.UpdateMessageRequest(
            thread_id=thread.id, message_id=created.id, metadata=common_pb2.Metadata(values={})
        )
    )
    assert dict(updated.metadata) == {} and updated.content == created.content
    deleted = await stubs.messages.DeleteMessage(
        M.DeleteMessageRequest(thread_id=thread.id, message_id=created.id)
    )
    assert deleted == M.DeleteMessageResponse(id=created.id, deleted=True)
    await expect_error(stubs.messages.GetMessage(get), grpc.StatusCode.NOT_FOUND)


async def test_message_validation(stubs: Stubs) -> None:
    thread = await stubs.threads.CreateThread(T.CreateThreadRequest())
    cases = [
        (
            M.CreateMessageRequest(thread_id=thread.id, content=[M.MessageContentInput(text="x")]),
            "role",
        ),
        (M.CreateMessageRequest(thread_id=thread.id, role=M.MESSAGE_ROLE_USER), "content"),
        (
            M.CreateMessageRequest(
                thread_id=thread.id,
                role=M.MESSAGE_ROLE_USER,
                content=[M.MessageContentInput(text="")],
            ),
            "content[0].text",
        ),
        (
            M.CreateMessageRequest(
                thread_id=thread.id, role=M.MESSAGE_ROLE_USER, content=[M.MessageContentInput()]
            ),
            "content[0].type",
        ),
        (
            M.CreateMessageRequest(
                thread_id=thread.id, role=7, content=[M.MessageContentInput(text="x")]
            ),
            "role",
        ),
    ]
    for request, field in cases:
        error = await expect_error(
            stubs.messages.CreateMessage(request), grpc.StatusCode.INVALID_ARGUMENT
        )
        assert field in violated_fields(error), field
    await expect_error(
        stubs.messages.CreateMessage(
            M.CreateMessageRequest(
                thread_id="thread_missing",
                role=M.MESSAGE_ROLE_USER,
                content=[M.MessageContentInput(text="x")],
            )
        ),
        grpc.StatusCode.NOT_FOUND,
    )
    # A thread whose initial messages break a rule is not created at all.
    error = await expect_error(
        stubs.threads.CreateThread(
            T.CreateThreadRequest(
                messages=[text_input("ok"), M.MessageInput(role=M.MESSAGE_ROLE_USER)]
            )
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert violated_fields(error) == ["messages[1].content"]
    threads = await stubs.threads.ListThreads(T.ListThreadsRequest())
    assert len(threads.data) == 1
    page = await stubs.messages.ListMessages(M.ListMessagesRequest(thread_id=thread.id))
    assert list(page.data) == []


async def test_concurrent_create_message(stubs: Stubs) -> None:
    thread = await stubs.threads.CreateThread(T.CreateThreadRequest())
    created = await asyncio.gather(
        *(
            stubs.messages.CreateMessage(
                M.CreateMessageRequest(
                    thread_id=thread.id,
                    role=M.MESSAGE_ROLE_USER,
                    content=[M.MessageContentInput(text=f"message {i}")],
                )
            )
            for i in range(100)
        )
    )
    ids = {m.id for m in created}
    assert len(ids) == 100
    listed: set[str] = set()
    after: str | None = None
    while True:
        request = M.ListMessagesRequest(thread_id=thread.id, limit=100)
        if after:
            request.after = after
        page = await stubs.messages.ListMessages(request)
        listed.update(m.id for m in page.data)
        if not page.has_more:
            break
        after = page.last_id
    assert listed == ids


async def test_data_survives_restart(running: RunningServer) -> None:
    from tests.conftest import start_server, stubs_for

    stubs = running.stubs
    thread = await stubs.threads.CreateThread(
        T.CreateThreadRequest(messages=[text_input("keep me")])
    )
    await running.server.stop(0)
    server = await start_server(running.database_url, running.clock, running.model)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            again = stubs_for(channel)
            assert await again.threads.GetThread(T.GetThreadRequest(thread_id=thread.id)) == thread
            page = await again.messages.ListMessages(M.ListMessagesRequest(thread_id=thread.id))
            assert [m.content[0].text.value for m in page.data] == ["keep me"]
    finally:
        await server.stop(0)


async def test_token_count_is_stored_with_the_message(running: RunningServer) -> None:
    """Counted once at creation with the real o200k_base encoding ("hello world" is 2 tokens)."""
    from sqlalchemy import select

    from assistants_grpc.store.repository import MESSAGES

    stubs = running.stubs
    thread = await stubs.threads.CreateThread(
        T.CreateThreadRequest(messages=[text_input("hello world")])
    )
    database = running.server.database
    assert database is not None
    counts = await database.transaction(
        lambda c: list(
            c.execute(
                select(MESSAGES.c.token_count, MESSAGES.c.token_encoding).where(
                    MESSAGES.c.thread_id == thread.id
                )
            )
        )
    )
    assert [tuple(row) for row in counts] == [(2, "o200k_base")]
