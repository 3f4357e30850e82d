"""Cursor pages that fetch the next page as iteration reaches it, like the OpenAI SDK's.

`client.messages.list(thread_id, limit=5)` returns the first page (`.data`, `.has_more`, ...);
iterating it yields every item of every page, asking for the next one with `after=<last id>`
and the same filters. The async `list()` returns an `AsyncPaginator`: `await` it for the first
page, or `async for` over it for every item.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

__all__ = [
    "AsyncCursorPage",
    "AsyncPaginator",
    "ListResponse",
    "PageData",
    "SyncCursorPage",
    "page_data",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class ListResponse(Protocol[T_co]):
    """What every List*Response has."""

    @property
    def data(self) -> Sequence[T_co]: ...
    @property
    def first_id(self) -> str: ...
    @property
    def last_id(self) -> str: ...
    @property
    def has_more(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class PageData(Generic[T]):
    data: list[T]
    first_id: str | None
    last_id: str | None
    has_more: bool


def page_data(response: ListResponse[T]) -> PageData[T]:
    # Ids are never empty, so an empty string is the proto's "absent" (an empty page).
    return PageData(
        list(response.data), response.first_id or None, response.last_id or None, response.has_more
    )


class _Page(Generic[T]):
    def __init__(self, page: PageData[T]) -> None:
        self.data = page.data
        self.first_id = page.first_id
        self.last_id = page.last_id
        self.has_more = page.has_more

    def has_next_page(self) -> bool:
        return self.has_more and self.last_id is not None

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(items={len(self.data)}, first_id={self.first_id!r}, "
            f"last_id={self.last_id!r}, has_more={self.has_more})"
        )


class SyncCursorPage(_Page[T]):
    """One page; iterating it goes on through the following pages."""

    def __init__(self, page: PageData[T], fetch: Callable[[str], PageData[T]]) -> None:
        super().__init__(page)
        self._fetch = fetch

    def get_next_page(self) -> SyncCursorPage[T]:
        if self.last_id is None or not self.has_more:
            raise RuntimeError("there is no next page; check has_next_page() first")
        return SyncCursorPage(self._fetch(self.last_id), self._fetch)

    def iter_pages(self) -> Iterator[SyncCursorPage[T]]:
        page = self
        yield page
        while page.has_next_page():
            page = page.get_next_page()
            yield page

    def __iter__(self) -> Iterator[T]:
        for page in self.iter_pages():
            yield from page.data


class AsyncCursorPage(_Page[T]):
    """One page; `async for` over it goes on through the following pages."""

    def __init__(self, page: PageData[T], fetch: Callable[[str], Awaitable[PageData[T]]]) -> None:
        super().__init__(page)
        self._fetch = fetch

    async def get_next_page(self) -> AsyncCursorPage[T]:
        if self.last_id is None or not self.has_more:
            raise RuntimeError("there is no next page; check has_next_page() first")
        return AsyncCursorPage(await self._fetch(self.last_id), self._fetch)

    async def iter_pages(self) -> AsyncIterator[AsyncCursorPage[T]]:
        page = self
        yield page
        while page.has_next_page():
            page = await page.get_next_page()
            yield page

    async def __aiter__(self) -> AsyncIterator[T]:
        async for page in self.iter_pages():
            for item in page.data:
                yield item


class AsyncPaginator(Generic[T]):
    """The answer of an async `list()`: await it for the first page, or iterate every item.
    Nothing is fetched until one of the two happens."""

    def __init__(
        self,
        first: Callable[[], Awaitable[PageData[T]]],
        fetch: Callable[[str], Awaitable[PageData[T]]],
    ) -> None:
        self._first = first
        self._fetch = fetch

    async def _first_page(self) -> AsyncCursorPage[T]:
        return AsyncCursorPage(await self._first(), self._fetch)

    def __await__(self) -> Generator[Any, None, AsyncCursorPage[T]]:
        return self._first_page().__await__()

    async def __aiter__(self) -> AsyncIterator[T]:
        page = await self._first_page()
        async for item in page:
            yield item
