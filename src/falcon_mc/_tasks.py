"""Task groups that fail with the failing task's own exception, not an ``ExceptionGroup``.

anyio wraps whatever a child task raises in an ``ExceptionGroup``. falcon-mc runs batches and
pages in task groups, and promises that every error it raises is a :class:`FalconError`: so a
failed batch must come out as ``NotFoundError``, which ``except NotFoundError`` catches, the
same as when the call needed a single request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.abc

__all__ = ["first_error", "task_group"]


def _cancellation() -> type[BaseException]:
    """The running event loop's cancellation exception (asyncio's outside any loop)."""
    try:
        return anyio.get_cancelled_exc_class()
    except RuntimeError:  # no event loop: the command line, after ``anyio.run`` returned
        return asyncio.CancelledError


def first_error(exc: BaseException) -> BaseException:
    """The first exception inside (nested) exception groups that is not a cancellation (the
    others were cancelled because of it); ``exc`` itself when it is not a group."""
    cancelled = _cancellation()
    while isinstance(exc, BaseExceptionGroup):
        inner = [e for e in exc.exceptions if not isinstance(e, cancelled)]
        exc = (inner or list(exc.exceptions))[0]
    return exc


@asynccontextmanager
async def task_group() -> AsyncIterator[anyio.abc.TaskGroup]:
    """``anyio.create_task_group()``, raising the first failed task's exception as it is.

    A group of cancellations only (the caller was cancelled) is re-raised untouched.
    """
    try:
        async with anyio.create_task_group() as tg:
            yield tg
    except BaseExceptionGroup as group:
        error = first_error(group)
        if isinstance(error, _cancellation()):
            raise
        raise error from None
