"""``AsyncPaginator``: ``await`` it for one page of ids, ``async for`` it for every id.

After the first page, once ``total`` is known, the remaining pages are fetched concurrently in
waves (at most ``concurrency`` pages at a time), and their ids are yielded in query order. A server
that does not advance (an empty page before ``total``, or the same ids as the page before) ends
the walk instead of looping forever. No task group is open while the iterator yields, so breaking
out of ``async for`` early is safe.

Offset paging is not a snapshot: a case created or deleted while the walk runs shifts the pages
after it. A shift forward repeats the ids at a page boundary; those are not yielded again (the
previous page's ids are kept for that, so memory stays one page). A page that reports another
``total`` than the page before starts the waves again from it, up to its ``total``: the rest of
its wave may predate the change (an id shifted across those pages would be in none of them), and
a grown total takes the walk past the first page's. A shift backward skips ids, which no client
can see; the walk logs at INFO when a page reports another ``total`` than the one before.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from contextlib import aclosing
from typing import Generic, TypeVar

from ._log import logger
from ._tasks import task_group
from .models import IdPage

__all__ = ["AsyncPaginator"]

T = TypeVar("T")

PageFetcher = Callable[[int, int | None], Awaitable[IdPage[T]]]


class AsyncPaginator(Generic[T]):
    """Pages of ids from a query (``query_cases``, ``query_activities``: ``AsyncPaginator[str]``).

    Example::

        page = await mc.query_cases(filter="case.status:'open'", limit=100)
        print(page.total, page.ids)

        async for case_id in mc.query_cases(filter="case.status:'open'"):
            ...
    """

    def __init__(
        self,
        fetch: PageFetcher[T],
        *,
        offset: int | None,
        limit: int | None,
        concurrency: int,
        page_size: int = 500,
    ) -> None:
        self._fetch = fetch
        self._offset = offset
        self._limit = limit
        self._concurrency = max(1, concurrency)
        self._page_size = page_size

    def __await__(self) -> Generator[object, None, IdPage[T]]:
        return self._fetch(self._offset or 0, self._limit).__await__()

    async def pages(self) -> AsyncGenerator[IdPage[T], None]:
        """Every page in order, starting at ``offset``."""
        limit = self._limit or self._page_size
        first = await self._fetch(self._offset or 0, limit)
        yield first
        walk = self._waves if first.total is not None and first.ids else self._sequential
        async with aclosing(walk(first, len(first.ids) or limit)) as rest:
            async for page in rest:
                yield page

    async def _waves(self, first: IdPage[T], step: int) -> AsyncGenerator[IdPage[T], None]:
        """The pages after ``first`` up to its ``total``, ``concurrency`` fetched at a time.

        A page whose ``total`` differs from the page before means an item was created or
        deleted meanwhile. The rest of its wave may have been read before that (an id moved
        across those pages would be in none of them), so the walk starts again from that page,
        up to its ``total``. A page that does not advance ends the walk.
        """
        last, start = first, first.offset + step
        while last.total is not None and start < last.total:
            wave = range(start, min(last.total, start + step * self._concurrency), step)
            for page in await self._fetch_wave(list(wave), step):
                if not page.ids or page.ids == last.ids:
                    return  # the server stopped advancing
                yield page
                moved, last, start = page.total != last.total, page, page.offset + step
                if moved:
                    break  # the next wave starts after this page, up to its total
        if last.total is None:  # a page without a total
            async with aclosing(self._sequential(last, step)) as rest:
                async for page in rest:
                    yield page

    async def _fetch_wave(self, offsets: list[int], limit: int) -> list[IdPage[T]]:
        """Fetch several pages at once; results in the order of ``offsets``."""
        results: dict[int, IdPage[T]] = {}

        async def fetch_one(off: int) -> None:
            results[off] = await self._fetch(off, limit)

        async with task_group() as tg:
            for off in offsets:
                tg.start_soon(fetch_one, off)
        return [results[off] for off in offsets]

    async def _sequential(self, page: IdPage[T], limit: int) -> AsyncGenerator[IdPage[T], None]:
        """Walk on from ``page`` by ``next_offset`` (no total, or a total that grew)."""
        while (offset := page.next_offset) is not None:
            before, page = page, await self._fetch(offset, limit)
            if not page.ids or page.ids == before.ids:
                return  # the end, or a server that stopped advancing
            yield page

    async def __aiter__(self) -> AsyncGenerator[T, None]:
        previous: set[T] = set()
        total: int | None = None
        async with aclosing(self.pages()) as pages:
            async for page in pages:
                total = _followed(total, page)
                for item in page.ids:
                    if item not in previous:
                        yield item
                previous = set(page.ids)


def _followed(total: int | None, page: IdPage[T]) -> int | None:
    """The walk's total after ``page`` (logged at INFO when ``page`` reports another one)."""
    if total is None:
        return page.total
    if page.total is not None and page.total != total:
        logger.info(
            "the query's total changed from %d to %d during the walk (items created or "
            "deleted meanwhile): ids may have moved between pages", total, page.total,
        )
        return page.total
    return total
