"""pytest plugin: opt-in fixtures to test your own code against the embedded emulator.

Installed with falcon-mc (entry point ``pytest11``); the fixtures exist only when asked for.

Example::

    async def test_my_sync_job(falcon_emulator, falcon_client):
        case_id = falcon_emulator.add_case(title="Printer on fire", status="open")
        await my_sync_job(falcon_client)
        assert falcon_emulator.activities  # what the job wrote
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ._client import AsyncMessageCenter
from .emulator import Emulator

__all__ = ["falcon_client", "falcon_emulator"]


@pytest.fixture
def falcon_emulator() -> Emulator:
    """A fresh emulator seeded with 50 reproducible cases (``seed=7``).

    Override this fixture in your ``conftest.py`` for another size or seed.
    """
    return Emulator.seeded(n_cases=50, seed=7)


@pytest.fixture
async def falcon_client(falcon_emulator: Emulator) -> AsyncIterator[AsyncMessageCenter]:
    """An ``AsyncMessageCenter`` wired in-process to ``falcon_emulator`` (no retry delays)."""
    async with AsyncMessageCenter(
        client_id="test-client",
        client_secret="test-secret",  # noqa: S106 - the emulator's test credentials
        base_url="https://emulator.invalid",
        transport=falcon_emulator.transport(),
        retry_base_delay=0,
    ) as client:
        yield client
