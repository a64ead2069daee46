"""Leaving falcon-mc's async iterators early, under trio, against the emulator on loopback.

trio warns (``ResourceWarning``) of every async generator the garbage collector finalizes.
A caller that closes an iterator properly (``contextlib.aclosing``) must leave none behind:
falcon-mc closes the generators it iterates inside, and the download's reply is closed (its
connection free) as soon as its iterator is.
"""

from __future__ import annotations

import gc
import warnings
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import Any

import anyio
import pytest

from falcon_mc import AsyncMessageCenter
from falcon_mc._lanes import LaneTransport
from falcon_mc.emulator import Emulator


@pytest.fixture
def emu() -> Emulator:
    emu = Emulator.seeded(n_cases=300, seed=29)
    for number in range(30):  # pages of activities, walked one by one
        emu.add_activity(next(iter(emu.cases)), f"comment {number}")
    return emu


def busy(mc: AsyncMessageCenter) -> int:
    transport = mc._pipeline.http._transport
    assert isinstance(transport, LaneTransport)
    return transport.busy


Walk = Callable[[AsyncMessageCenter, Emulator], AsyncGenerator[Any, None]]

WALKS: dict[str, Walk] = {
    "iter_cases": lambda mc, emu: mc.iter_cases(window=50),
    "iter_activities": lambda mc, emu: mc.iter_activities(case_id=next(iter(emu.cases)),
                                                          window=5),
    "query_cases": lambda mc, emu: aiter(mc.query_cases(limit=20)),
    "query_activities": lambda mc, emu: aiter(mc.query_activities(
        case_id=next(iter(emu.cases)), limit=5)),
}


@pytest.mark.parametrize("walk", sorted(WALKS))
def test_a_walk_closed_early_leaves_no_generator_to_the_collector(
    emu: Emulator, url: str, walk: str
) -> None:
    async def main() -> None:
        async with AsyncMessageCenter(client_id="it", client_secret="it-secret", base_url=url,
                                      max_concurrency=4) as mc:
            async with aclosing(WALKS[walk](mc, emu)) as items:
                async for _ in items:
                    break
            gc.collect()
            assert busy(mc) == 0

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        anyio.run(main, backend="trio")
    assert [str(w.message) for w in caught] == []


def test_a_download_iterator_closed_early_closes_its_reply_and_leaves_no_generator(
    emu: Emulator, url: str
) -> None:
    attachment_id = emu.add_attachment(next(iter(emu.cases)), "big.bin", b"x" * 300_000)

    async def main() -> None:
        async with AsyncMessageCenter(client_id="it", client_secret="it-secret",
                                      base_url=url) as mc:
            async with mc.download_case_attachment(attachment_id) as download:
                async with aclosing(download.aiter_bytes(4096)) as chunks:
                    async for _ in chunks:
                        break
                gc.collect()
                assert busy(mc) == 0  # before the block ends: the reply is closed already
            async with mc.download_case_attachment(attachment_id) as download:
                assert len(await download.aread()) == 300_000  # the connection was reused

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        anyio.run(main, backend="trio")
    assert [str(w.message) for w in caught] == []
