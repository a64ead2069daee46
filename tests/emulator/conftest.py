"""Fixtures for the emulator tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from falcon_mc.emulator import Emulator

from .helpers import BASE, FakeClock, build_small


@pytest.fixture
def clock() -> FakeClock:
    """The monotonic clock the emulator uses (settable)."""
    return FakeClock(1000.0)


@pytest.fixture
def wall() -> FakeClock:
    """The wall clock the emulator uses (2024-06-01T00:00:00Z, settable)."""
    return FakeClock(1717200000.0)


@pytest.fixture
def emu(clock: FakeClock, wall: FakeClock) -> Emulator:
    """An emulator holding the small hand-built dataset, with injected clocks."""
    emulator = Emulator(seed=1, clock=clock, wall_clock=wall)
    build_small(emulator)
    return emulator


@pytest.fixture
async def anon(emu: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client without a token."""
    async with httpx.AsyncClient(transport=emu.transport(), base_url=BASE) as client:
        yield client


@pytest.fixture
async def http(emu: Emulator) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client with a valid bearer token."""
    headers = {"Authorization": f"Bearer {emu.issue_token()}"}
    async with httpx.AsyncClient(
        transport=emu.transport(), base_url=BASE, headers=headers
    ) as client:
        yield client
