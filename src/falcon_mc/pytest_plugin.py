"""pytest plugin: opt-in fixtures to test your own code against the embedded emulator.

Installed with falcon-mc (entry point ``pytest11``): nothing happens unless a test asks for a
fixture, and the emulator is imported only then (loading the plugin imports ``falcon_mc``,
about 0.2 s a run; ``-p no:falcon_mc`` leaves it out).

* ``falcon_emulator``: a fresh :class:`~falcon_mc.emulator.Emulator`, seeded with 50
  reproducible cases (``seed=7``); the ``falcon_emulator`` marker changes that.
* ``falcon_client``: an :class:`~falcon_mc.AsyncMessageCenter` wired in-process to it, with no
  retry delays (an async fixture: pytest-asyncio or anyio's plugin runs it).
* ``falcon_client_options``: override it to pass other client options.
* ``falcon_served_emulator``: the same emulator on a real loopback socket; its base URL.
* ``falcon_kit``: a :class:`FalconKit`, helpers to set up data, inject faults and inspect what
  your code created.

Example::

    async def test_escalation_comments(falcon_client, falcon_kit):
        case_id = falcon_kit.add_case(title="Printer on fire", status="open")
        await escalate(falcon_client, case_id)                    # your code
        [comment] = falcon_kit.created_activities()
        assert comment["case_id"] == case_id
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ._client import AsyncMessageCenter
    from .emulator import AttachmentRecord, Emulator, FaultKind, FaultRule

__all__ = [
    "DEFAULT_CASES",
    "DEFAULT_SEED",
    "FalconKit",
    "falcon_client",
    "falcon_client_options",
    "falcon_emulator",
    "falcon_kit",
    "falcon_served_emulator",
]

#: Cases the ``falcon_emulator`` fixture seeds unless the marker says otherwise.
DEFAULT_CASES = 50
#: Seed of the ``falcon_emulator`` fixture's data unless the marker says otherwise.
DEFAULT_SEED = 7

_MARKER = "falcon_emulator"


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``falcon_emulator`` marker (so ``--strict-markers`` accepts it)."""
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(n_cases={DEFAULT_CASES}, seed={DEFAULT_SEED}, **settings): configure the "
        "falcon_emulator fixture (settings are EmulatorSettings fields, e.g. latency=0.01)",
    )


def _async_fixture(func: Callable[..., Any]) -> Any:
    """Mark an async fixture for pytest-asyncio (strict or auto mode), else plain pytest."""
    try:
        import pytest_asyncio
    except ImportError:  # pragma: no cover - anyio's pytest plugin handles plain fixtures
        return pytest.fixture(func)
    return pytest_asyncio.fixture(func)


@pytest.fixture
def falcon_emulator(request: pytest.FixtureRequest) -> Emulator:
    """A fresh emulator per test, seeded with 50 reproducible cases (``seed=7``).

    Configure it with the marker, or override the fixture in your ``conftest.py``::

        @pytest.mark.falcon_emulator(n_cases=0)                  # empty
        @pytest.mark.falcon_emulator(n_cases=500, seed=1, rate_limit_per_minute=60)
    """
    from .emulator import Emulator

    marker = request.node.get_closest_marker(_MARKER)
    options: dict[str, Any] = dict(marker.kwargs) if marker is not None else {}
    if marker is not None and marker.args:
        raise pytest.UsageError(f"@pytest.mark.{_MARKER} takes keyword arguments only")
    n_cases = options.pop("n_cases", DEFAULT_CASES)
    seed = options.pop("seed", DEFAULT_SEED)
    emulator = Emulator.seeded(n_cases=n_cases, seed=seed)
    for name, value in options.items():
        if not hasattr(emulator.settings, name):
            raise pytest.UsageError(
                f"@pytest.mark.{_MARKER}: unknown emulator setting {name!r}"
            )
        setattr(emulator.settings, name, value)
    return emulator


@pytest.fixture
def falcon_client_options() -> dict[str, Any]:
    """Extra ``AsyncMessageCenter`` keyword arguments for ``falcon_client`` (none by default).

    Override it to test your code under other settings::

        @pytest.fixture
        def falcon_client_options():
            return {"max_retries": 0, "max_concurrency": 2}
    """
    return {}


@_async_fixture
async def falcon_client(
    falcon_emulator: Emulator, falcon_client_options: dict[str, Any]
) -> AsyncIterator[AsyncMessageCenter]:
    """An ``AsyncMessageCenter`` wired in-process to ``falcon_emulator``, no retry delays.

    Closed (token revoked) after the test.
    """
    from ._client import AsyncMessageCenter

    options: dict[str, Any] = {
        "client_id": "falcon-mc-test-client",
        "client_secret": "falcon-mc-test-secret",
        "base_url": "https://api.crowdstrike.com",
        "transport": falcon_emulator.transport(),
        "retry_base_delay": 0,
    }
    options.update(falcon_client_options)
    async with AsyncMessageCenter(**options) as client:
        yield client


@pytest.fixture
def falcon_served_emulator(falcon_emulator: Emulator) -> Iterator[str]:
    """``falcon_emulator`` served on a loopback socket for the test; yields its base URL.

    For code that builds its own HTTP clients (a subprocess, FalconPy, the CLI)::

        def test_cli(falcon_served_emulator):
            run(["my-tool", "--base-url", falcon_served_emulator])
    """
    with falcon_emulator.serve() as url:
        yield url


class FalconKit:
    """Helpers over an emulator: set up data, inject faults, see what the code under test did.

    Cases, activities and attachments that exist when the kit is made (the seed) or that are
    added through the kit are *set-up*; ``created_*`` return only what arrived since through
    the API.

    Example::

        kit = FalconKit(Emulator.seeded(n_cases=5))
        case_id = kit.add_case(title="Printer on fire")
        kit.fail("CreateCaseV2", status=503, count=1)
        ...
        assert kit.created_cases() == []
        assert kit.requests("CreateCaseV2") == 1
    """

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self._known_cases = set(emulator.cases)
        self._known_activities = set(emulator.activities)
        self._known_attachments = set(emulator.attachments)

    # set-up -------------------------------------------------------------------------------------
    def add_case(self, **fields: Any) -> str:
        """Add a case from wire fields (``title``, ``body``, ``status``, ``type``...); its id."""
        case_id = self.emulator.add_case(**fields)
        self._known_cases.add(case_id)
        return case_id

    def add_activity(self, case_id: str, body: str = "", **fields: Any) -> str:
        """Add an activity (a comment by default) to a case; its id."""
        activity_id = self.emulator.add_activity(case_id, body, **fields)
        self._known_activities.add(activity_id)
        return activity_id

    def add_attachment(self, case_id: str, name: str, data: bytes, **fields: Any) -> str:
        """Attach a file to a case (no name checks); its id."""
        attachment_id = self.emulator.add_attachment(case_id, name, data, **fields)
        self._known_attachments.add(attachment_id)
        return attachment_id

    # faults -------------------------------------------------------------------------------------
    def fail(self, operation: str = "*", kind: FaultKind = "status", **options: Any) -> FaultRule:
        """Inject a fault on an operation (``emulator.faults.add``); the rule (``.fired``).

        ``operation`` is a spec operation id (``"GetCaseEntitiesByIDs"``, ``"CreateCaseV2"``...)
        or ``"*"``; ``kind`` one of ``status`` (``status=503``), ``drop_before``,
        ``drop_after``, ``truncate``, ``slow_body``, ``rate_limit``, ``latency``; ``rate`` and
        ``count`` bound how often it fires.
        """
        return self.emulator.faults.add(operation, kind, **options)

    # inspection ---------------------------------------------------------------------------------
    def created_cases(self) -> list[dict[str, Any]]:
        """Cases created through the API since the kit was made (wire dicts, in order)."""
        return [c for i, c in self.emulator.cases.items() if i not in self._known_cases]

    def created_activities(self, case_id: str | None = None) -> list[dict[str, Any]]:
        """Activities (comments) added through the API, optionally of one case only."""
        return [
            a
            for i, a in self.emulator.activities.items()
            if i not in self._known_activities and (case_id is None or a["case_id"] == case_id)
        ]

    def created_attachments(self, case_id: str | None = None) -> list[AttachmentRecord]:
        """Attachments uploaded through the API (``.name``, ``.data``, ``.case_id``...)."""
        return [
            a
            for i, a in self.emulator.attachments.items()
            if i not in self._known_attachments and (case_id is None or a.case_id == case_id)
        ]

    def case(self, case_id: str) -> dict[str, Any]:
        """A case as stored now (wire dict); ``KeyError`` if there is none."""
        return self.emulator.cases[case_id]

    def requests(self, operation: str) -> int:
        """How many requests an operation received (``emulator.stats.requests``)."""
        return self.emulator.stats.requests[operation]


@pytest.fixture
def falcon_kit(falcon_emulator: Emulator) -> FalconKit:
    """A :class:`FalconKit` over ``falcon_emulator``."""
    return FalconKit(falcon_emulator)
