"""Lists page themselves: iterating fetches the next page with `after=<last id>`; `limit` still
bounds one page; the async `list()` is awaitable for one page and iterable for all."""

from __future__ import annotations

from assistants_grpc_client import AsyncClient, Client

from tests.client.conftest import in_thread


async def test_auto_paging_across_three_pages(client: Client) -> None:
    def flow() -> None:
        thread = client.threads.create()
        created = [
            client.messages.create(thread.id, role="user", content=f"m{i}").id for i in range(7)
        ]

        page = client.messages.list(thread.id, limit=3, order="asc")
        assert [m.id for m in page.data] == created[:3]
        assert page.has_more and page.has_next_page()
        assert page.first_id == created[0] and page.last_id == created[2]

        # Iterating the first page goes on through the second and the third.
        assert [m.id for m in page] == created
        pages = list(page.iter_pages())
        assert [len(p.data) for p in pages] == [3, 3, 1]
        assert not pages[-1].has_next_page()

        second = page.get_next_page()
        assert [m.id for m in second.data] == created[3:6]

        # Newest first by default; the filters stay on every page.
        assert [m.id for m in client.messages.list(thread.id, limit=2)] == created[::-1]
        after = client.messages.list(thread.id, limit=2, order="asc", after=created[1])
        assert [m.id for m in after] == created[2:]

    await in_thread(flow)


async def test_async_paging(aclient: AsyncClient) -> None:
    ids = [(await aclient.assistants.create(model="gpt-4o")).id for _ in range(5)]

    page = await aclient.assistants.list(limit=2, order="asc")
    assert [a.id for a in page.data] == ids[:2] and page.has_next_page()
    assert [a.id async for a in page] == ids
    assert [len(p.data) async for p in page.iter_pages()] == [2, 2, 1]
    assert [a.id async for a in aclient.assistants.list(limit=2)] == ids[::-1]
    assert [a.id for a in (await page.get_next_page()).data] == ids[2:4]

    empty = await aclient.threads.list()
    assert empty.data == [] and empty.first_id is None and not empty.has_next_page()
