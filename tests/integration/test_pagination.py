"""List paging, CONTRACT.md §1: limits, both orders, exclusive cursors, ties on created_at."""

from __future__ import annotations

import grpc

from assistants_grpc.contract.pb import assistant_pb2, common_pb2, message_pb2, thread_pb2
from tests.conftest import RunningServer, Stubs
from tests.integration.helpers import expect_error, violated_fields

ASC, DESC = common_pb2.LIST_ORDER_ASC, common_pb2.LIST_ORDER_DESC


async def _thread_with_messages(stubs: Stubs, count: int) -> tuple[str, list[str]]:
    thread = await stubs.threads.CreateThread(thread_pb2.CreateThreadRequest())
    ids = []
    for i in range(count):
        message = await stubs.messages.CreateMessage(
            message_pb2.CreateMessageRequest(
                thread_id=thread.id,
                role=message_pb2.MESSAGE_ROLE_USER,
                content=[message_pb2.MessageContentInput(text=str(i))],
            )
        )
        ids.append(message.id)
    return thread.id, ids


async def _walk(stubs: Stubs, thread_id: str, order: int, limit: int, **cursor: str) -> list[str]:
    """Page through with `after=last_id` (or `before=first_id`) as the SDK does."""
    seen: list[str] = []
    use_before = "before" in cursor
    while True:
        page = await stubs.messages.ListMessages(
            message_pb2.ListMessagesRequest(thread_id=thread_id, order=order, limit=limit, **cursor)
        )
        assert len(page.data) <= limit
        if page.data:
            assert page.first_id == page.data[0].id and page.last_id == page.data[-1].id
        else:
            assert not page.HasField("first_id") and not page.HasField("last_id")
        seen = [m.id for m in page.data] + seen if use_before else seen + [m.id for m in page.data]
        if not page.has_more:
            return seen
        cursor = {"before": page.first_id} if use_before else {"after": page.last_id}


async def test_page_walks_with_ties(running: RunningServer) -> None:
    # The manual clock never moves: all 25 messages share one created_at second.
    stubs = running.stubs
    thread_id, ids = await _thread_with_messages(stubs, 25)
    for limit in (1, 7, 25, 100):
        assert await _walk(stubs, thread_id, ASC, limit) == ids
        assert await _walk(stubs, thread_id, DESC, limit) == ids[::-1]
        assert await _walk(stubs, thread_id, 0, limit) == ids[::-1]  # default is desc
    # Walking backwards from the end with `before` gives the same order without gaps.
    assert await _walk(stubs, thread_id, ASC, 4, before=ids[-1]) == ids[:-1]


async def test_cursors_are_exclusive_and_scoped(stubs: Stubs) -> None:
    thread_id, ids = await _thread_with_messages(stubs, 10)
    page = await stubs.messages.ListMessages(
        message_pb2.ListMessagesRequest(thread_id=thread_id, order=ASC, limit=3, after=ids[2])
    )
    assert [m.id for m in page.data] == ids[3:6] and page.has_more
    page = await stubs.messages.ListMessages(
        message_pb2.ListMessagesRequest(thread_id=thread_id, order=DESC, limit=3, after=ids[2])
    )
    assert [m.id for m in page.data] == [ids[1], ids[0]] and not page.has_more
    page = await stubs.messages.ListMessages(
        message_pb2.ListMessagesRequest(thread_id=thread_id, order=ASC, limit=3, before=ids[5])
    )
    assert [m.id for m in page.data] == ids[2:5] and page.has_more
    page = await stubs.messages.ListMessages(
        message_pb2.ListMessagesRequest(thread_id=thread_id, order=ASC, after=ids[1], before=ids[4])
    )
    assert [m.id for m in page.data] == ids[2:4]
    # Default limit is 20.
    other_id, _ = await _thread_with_messages(stubs, 0)
    empty = await stubs.messages.ListMessages(message_pb2.ListMessagesRequest(thread_id=other_id))
    assert list(empty.data) == [] and not empty.has_more
    # A cursor of another thread is not a cursor here.
    error = await expect_error(
        stubs.messages.ListMessages(
            message_pb2.ListMessagesRequest(thread_id=other_id, after=ids[0])
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert violated_fields(error) == ["after"]


async def test_limit_and_order_validation(stubs: Stubs) -> None:
    for limit in (0, -1, 101):
        error = await expect_error(
            stubs.assistants.ListAssistants(assistant_pb2.ListAssistantsRequest(limit=limit)),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert violated_fields(error) == ["limit"]
    error = await expect_error(
        stubs.threads.ListThreads(thread_pb2.ListThreadsRequest(order=9)),
        grpc.StatusCode.INVALID_ARGUMENT,
    )
    assert violated_fields(error) == ["order"]
    await stubs.assistants.ListAssistants(assistant_pb2.ListAssistantsRequest(limit=100))


async def test_list_assistants_and_threads(stubs: Stubs) -> None:
    assistants = [
        (await stubs.assistants.CreateAssistant(assistant_pb2.CreateAssistantRequest(model="m"))).id
        for _ in range(5)
    ]
    threads = [
        (await stubs.threads.CreateThread(thread_pb2.CreateThreadRequest())).id for _ in range(5)
    ]
    page = await stubs.assistants.ListAssistants(assistant_pb2.ListAssistantsRequest(limit=2))
    assert [a.id for a in page.data] == assistants[::-1][:2] and page.has_more
    page = await stubs.threads.ListThreads(thread_pb2.ListThreadsRequest(order=ASC, limit=5))
    assert [t.id for t in page.data] == threads and not page.has_more
