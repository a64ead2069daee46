"""The :class:`Emulator` object: state, knobs, and the ways to serve it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.from_thread
import httpx

from ._app import Service
from ._faults import EmulatorStats, Faults
from ._http import ConnectionDropped, Request
from ._server import Server
from ._state import AttachmentRecord, Store
from ._transport import EmulatorTransport

__all__ = ["Emulator", "EmulatorSettings"]

ASGIScope = MutableMapping[str, Any]
ASGIMessage = MutableMapping[str, Any]
ASGIReceive = Callable[[], Any]
ASGISend = Callable[[ASGIMessage], Any]


@dataclass
class EmulatorSettings:
    """The emulator's knobs (``emu.settings``); change them at any time, even while serving.

    Example::

        emu.settings.latency = 0.05
        emu.settings.rate_limit_per_minute = 600
        emu.settings.credentials = ("my-id", "my-secret")
    """

    latency: float = 0.0
    """Seconds from a request's arrival to its reply (the handling itself runs meanwhile)."""
    rate_limit_per_minute: int | None = None
    """Requests per sliding minute before 429s; ``None``: unlimited (headers say 6000)."""
    max_attachment_bytes: int = 15 * 2**20
    """Largest accepted upload (the spec's 15 MB)."""
    token_ttl: float = 1799
    """Bearer token lifetime in seconds (``expires_in``)."""
    credentials: tuple[str, str] | None = None
    """The only accepted (client id, secret); ``None``: any non-empty pair."""
    max_ids_per_request: int | None = None
    """Most ids a get-by-ids may ask for (400 above); ``None``: no limit (as the spec)."""
    chunk_size: int = 64 * 1024
    """Size of the chunks a download is streamed in."""
    page_limit_max: int = 500
    """Largest ``limit`` a query accepts (the spec's 500)."""
    region: str | None = "us-1"
    """Sent as ``X-Cs-Region`` with tokens (cloud autodiscovery); ``None``: never sent.

    Sent only when the request was addressed to a CrowdStrike API host
    (``api.crowdstrike.com``, ``api.eu-1.crowdstrike.com``...: an in-process transport with
    such a base URL), never to an emulator reached by IP address, ``localhost`` or a service
    name: clients that follow the header (FalconPy does, whatever its ``base_url``) would
    otherwise leave the emulator for the real cloud."""


class Emulator:
    """An in-memory CrowdStrike Falcon Message Center.

    ``Emulator()`` is empty; :meth:`seeded` fills it with reproducible data. Serve it in-process
    (:meth:`transport`), on loopback (:meth:`serve`, :meth:`run`) or through any ASGI server
    (:attr:`app`). ``seed`` makes ids and fault draws reproducible; ``clock`` (monotonic
    seconds) drives token expiry and the rate-limit window, ``wall_clock`` (epoch seconds) the
    timestamps of writes and ``X-RateLimit-RetryAfter``: inject both in tests.

    Example::

        emu = Emulator.seeded(n_cases=100, seed=7)
        async with httpx.AsyncClient(transport=emu.transport(), base_url="https://emu") as c:
            ...
        with emu.serve() as url:
            ...  # any HTTP client, FalconPy included
    """

    def __init__(
        self,
        *,
        seed: int | None = None,
        settings: EmulatorSettings | None = None,
        clock: Callable[[], float] | None = None,
        wall_clock: Callable[[], float] | None = None,
        cid: str | None = None,
    ) -> None:
        self.settings = settings or EmulatorSettings()
        self.faults = Faults(seed)
        self.stats = EmulatorStats()
        self.clock: Callable[[], float] = clock or time.monotonic
        self.wall_clock: Callable[[], float] = wall_clock or time.time
        self._store = Store(cid=cid, seed=seed)
        self._service = Service(self)

    @classmethod
    def seeded(cls, n_cases: int = 1000, seed: int = 7, **kwargs: Any) -> Emulator:
        """An emulator with ``n_cases`` realistic cases; the same seed gives the same data.

        Cases get titles, bodies, statuses, the four case types, assigners, detection and
        incident references, hosts, 0-8 activities each and (about one in eight) an attachment,
        dated within the year before 2025-06-01 (a fixed date: reproducible).

        Example::

            emu = Emulator.seeded(n_cases=50, seed=1)
            assert len(emu.cases) == 50
        """
        emu = cls(seed=seed, **kwargs)
        emu._store.seed(n_cases)
        return emu

    # state --------------------------------------------------------------------------------------
    @property
    def cases(self) -> dict[str, dict[str, Any]]:
        """Cases by id, wire-shaped (``messages.Case`` dicts); mutate freely."""
        return self._store.cases

    @property
    def activities(self) -> dict[str, dict[str, Any]]:
        """Activities by id, wire-shaped (``messages.Activity`` dicts)."""
        return self._store.activities

    @property
    def attachments(self) -> dict[str, AttachmentRecord]:
        """Attachments by id: :class:`AttachmentRecord` (metadata and bytes)."""
        return self._store.attachments

    @property
    def users(self) -> dict[str, dict[str, Any]]:
        """Known users (``messages.Author`` dicts) by uuid: seeded assigners and authors."""
        return self._store.users

    def activity_ids(self, case_id: str) -> list[str]:
        """The ids of a case's activities, oldest first."""
        return list(self._store.activities_by_case.get(case_id, ()))

    def add_case(self, **fields: Any) -> str:
        """Add a case from wire fields (``title``, ``body``, ``status``, ``type``...) and return
        its id; ``user_uuid`` picks the assigner. Unset fields get neutral values.

        Example::

            case_id = emu.add_case(title="Printer on fire", status="open", hosts=["WS-1"])
        """
        return self._store.add_case(**fields)

    def add_activity(
        self,
        case_id: str,
        body: str = "",
        *,
        type: str = "comment",
        user_uuid: str | None = None,
        created_time: str | None = None,
        created_by: dict[str, Any] | None = None,
    ) -> str:
        """Add an activity (a comment by default) to a case and return its id.

        Example::

            emu.add_activity(case_id, "Any news?", created_time="2025-01-02T03:04:05Z")
        """
        return self._store.add_activity(
            case_id, body=body, type=type, user_uuid=user_uuid, created_time=created_time,
            created_by=created_by,
        )

    def add_attachment(
        self,
        case_id: str,
        name: str,
        data: bytes,
        *,
        user_uuid: str | None = None,
        created_time: str | None = None,
    ) -> str:
        """Attach a file to a case (no name checks: set up whatever a test needs); return its id.

        Example::

            att_id = emu.add_attachment(case_id, "notes.txt", b"hello")
        """
        return self._store.add_attachment(
            case_id, name, data, user_uuid=user_uuid, created_time=created_time
        )

    def issue_token(self) -> str:
        """A valid bearer token, minted without a request (for tests driving raw HTTP).

        Example::

            headers = {"Authorization": f"Bearer {emu.issue_token()}"}
        """
        return self._service.issue_token()[0]

    # serving ------------------------------------------------------------------------------------
    def transport(self) -> httpx.AsyncBaseTransport:
        """An in-process httpx transport (streams bodies, surfaces connection faults).

        Example::

            AsyncMessageCenter(client_id="x", client_secret="y", transport=emu.transport())
        """
        return EmulatorTransport(self._service)

    async def app(self, scope: ASGIScope, receive: ASGIReceive, send: ASGISend) -> None:
        """The emulator as an ASGI 3 application (``http`` and ``lifespan`` scopes).

        Connection faults (drop, truncate) raise ``ConnectionDropped`` so that the ASGI server
        closes the connection.

        Example::

            httpx.AsyncClient(transport=httpx.ASGITransport(app=emu.app))
        """
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return

        async def body() -> Any:
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return
                yield bytes(message.get("body", b""))
                if not message.get("more_body", False):
                    return

        request = Request(
            method=scope["method"],
            path=scope["path"],
            query_string=bytes(scope.get("query_string", b"")).decode("latin-1"),
            headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
            body=body(),
        )
        reply = await self._service.handle(request)
        if reply.drop:
            raise ConnectionDropped("fault injected: connection dropped")
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [(k.lower().encode("latin-1"), v.encode("latin-1"))
                            for k, v in reply.headers],
            }
        )
        async for chunk in reply.iter_chunks():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        if reply.abort:
            raise ConnectionDropped("fault injected: body truncated")
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    @contextmanager
    def serve(self, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
        """Serve on a real socket from a background thread; yields the base URL.

        Usable from synchronous code (``requests``, FalconPy) and from async code. On exit
        every connection is closed and the thread joined.

        Example::

            with emu.serve() as url:
                httpx.get(f"{url}/message-center/queries/cases/v1")  # 401: no token
        """
        server = Server(self._service, host, port)
        with anyio.from_thread.start_blocking_portal() as portal:
            future, url = portal.start_task(server.run)
            try:
                yield url
            finally:
                portal.call(server.stop)
                future.result()

    def run(self, host: str = "127.0.0.1", port: int = 8080) -> None:
        """Serve on ``host:port`` in the foreground until interrupted (Ctrl-C).

        Prints ``falcon-mc emulator listening on http://host:port`` once ready; this is what
        ``falcon-mc emulator --port N`` runs.

        Example::

            Emulator.seeded().run(port=8080)
        """
        server = Server(self._service, host, port)

        def ready(url: str) -> None:
            print(f"falcon-mc emulator listening on {url}", flush=True)

        with suppress(KeyboardInterrupt):
            anyio.run(server.run, ready)
