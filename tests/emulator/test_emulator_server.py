"""The loopback server (h11 over anyio in a thread), the ASGI app, and `run`."""

from __future__ import annotations

import os
import signal
import socket
import threading
from collections.abc import AsyncIterator, Iterator, MutableMapping
from types import ModuleType
from typing import Any

import anyio
import httpx
import pytest

from falcon_mc.emulator import ConnectionDropped, Emulator, _aggregate, _app

from .helpers import BASE

QUERY = "/message-center/queries/cases/v1"
ATTACHMENT = "/message-center/entities/case-attachment/v1"


@pytest.fixture
def served(emu: Emulator) -> Iterator[str]:
    """The emulator served on loopback."""
    with emu.serve() as url:
        yield url


def auth(emu: Emulator) -> dict[str, str]:
    return {"Authorization": f"Bearer {emu.issue_token()}"}


def test_sync_client_keep_alive(served: str, emu: Emulator) -> None:
    assert served.startswith("http://127.0.0.1:")
    with httpx.Client(base_url=served) as client:
        token = client.post("/oauth2/token", data={"client_id": "a", "client_secret": "b"})
        assert token.status_code == 201
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        for _ in range(5):
            reply = client.get(QUERY, params={"limit": 2}, headers=headers)
            assert reply.status_code == 200
            assert reply.json()["meta"]["pagination"]["total"] == 6
        assert client.get("/nope").status_code == 404
        assert client.put(QUERY).status_code == 405
    assert emu.stats.requests["QueryCasesIdsByFilter"] == 5


def test_connection_close_honoured(served: str, emu: Emulator) -> None:
    port = int(served.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"GET /message-center/queries/cases/v1 HTTP/1.1\r\nHost: x\r\n"
            b"Connection: close\r\nAuthorization: Bearer " + emu.issue_token().encode()
            + b"\r\n\r\n"
        )
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"connection: close" in head.lower()
    assert b'"total":6' in body


def test_chunked_request_body(served: str, emu: Emulator) -> None:
    def body() -> Iterator[bytes]:
        yield b'{"case_id": "c2", "body": "chunked",'
        yield b' "type": "comment", "user_uuid": "u"}'

    with httpx.Client(base_url=served, headers=auth(emu)) as client:
        reply = client.post(
            "/message-center/entities/case-activity/v1", content=body(),
            headers={"Content-Type": "application/json"},
        )
    assert reply.status_code == 200
    assert [emu.activities[a]["body"] for a in emu.activity_ids("c2")] == ["chunked"]


async def test_large_upload_and_streamed_download(served: str, emu: Emulator) -> None:
    emu.settings.max_attachment_bytes = 8 * 2**20
    data = bytes(range(256)) * (8 * 2**12)  # 8 MiB
    async with httpx.AsyncClient(base_url=served, headers=auth(emu)) as client:
        up = await client.post(
            ATTACHMENT, data={"case_id": "c1", "user_uuid": "u"},
            files={"file": ("big.pdf", data)},
        )
        assert up.status_code == 200
        att = up.json()["resources"][0]["id"]
        async with client.stream("GET", ATTACHMENT, params={"id": att}) as reply:
            assert reply.headers["Content-Length"] == str(len(data))
            received = bytearray()
            async for chunk in reply.aiter_bytes():
                received += chunk
    assert received == data


async def test_rejected_upload_keeps_connection_usable(served: str, emu: Emulator) -> None:
    emu.settings.max_attachment_bytes = 1024
    async with httpx.AsyncClient(base_url=served, headers=auth(emu)) as client:
        big = await client.post(
            ATTACHMENT, data={"case_id": "c1", "user_uuid": "u"},
            files={"file": ("big.txt", b"x" * (3 * 2**20))},
        )
        assert big.status_code == 400
        assert (await client.get(QUERY)).status_code == 200


async def test_many_concurrent_connections(served: str, emu: Emulator) -> None:
    limits = httpx.Limits(max_connections=200)
    results: list[int] = []
    async with httpx.AsyncClient(base_url=served, headers=auth(emu), limits=limits) as client:

        async def one() -> None:
            results.append((await client.get(QUERY)).status_code)

        async with anyio.create_task_group() as tg:
            for _ in range(200):
                tg.start_soon(one)
    assert results == [200] * 200


async def test_drop_faults_over_socket(served: str, emu: Emulator) -> None:
    body = {"case_id": "c2", "body": "x", "type": "comment", "user_uuid": "u"}
    async with httpx.AsyncClient(base_url=served, headers=auth(emu)) as client:
        emu.faults.add(operation="CaseAddActivity", kind="drop_before", count=1)
        with pytest.raises(httpx.TransportError):
            await client.post("/message-center/entities/case-activity/v1", json=body)
        assert emu.activity_ids("c2") == []
        emu.faults.add(operation="CaseAddActivity", kind="drop_after", count=1)
        with pytest.raises(httpx.TransportError):
            await client.post("/message-center/entities/case-activity/v1", json=body)
        assert len(emu.activity_ids("c2")) == 1
        assert (await client.get(QUERY)).status_code == 200


async def test_truncate_over_socket(served: str, emu: Emulator) -> None:
    att = emu.add_attachment("c1", "notes.txt", b"y" * 100_000)
    emu.faults.add(operation="CaseDownloadAttachment", kind="truncate")
    async with httpx.AsyncClient(base_url=served, headers=auth(emu)) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(ATTACHMENT, params={"id": att})
        assert (await client.get(QUERY)).status_code == 200


def test_server_stops_on_exit(emu: Emulator) -> None:
    with emu.serve() as url:
        port = int(url.rsplit(":", 1)[1])
        with httpx.Client() as client:
            assert client.get(f"{url}/nope").status_code == 404
    with pytest.raises(ConnectionRefusedError), socket.create_connection(
        ("127.0.0.1", port), timeout=2
    ):
        pass


async def test_asgi_app(emu: Emulator) -> None:
    transport = httpx.ASGITransport(app=emu.app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        token = await client.post("/oauth2/token", data={"client_id": "a", "client_secret": "b"})
        headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
        reply = await client.get(QUERY, params={"sort": "case.id.asc"}, headers=headers)
        assert reply.json()["resources"][0] == "c1"
        att = emu.add_attachment("c1", "n.txt", b"abc")
        down = await client.get(ATTACHMENT, params={"id": att}, headers=headers)
        assert down.content == b"abc"
        emu.faults.add(operation="QueryCasesIdsByFilter", kind="drop_before")
        with pytest.raises(ConnectionDropped):
            await client.get(QUERY, headers=headers)


async def test_asgi_lifespan(emu: Emulator) -> None:
    sent: list[str] = []
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> dict[str, str]:
        return next(messages)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message["type"])

    await emu.app({"type": "lifespan"}, receive, send)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_run_prints_url(emu: Emulator, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    waiter = threading.Event()
    answered: list[int] = []

    def interrupt_once_served() -> None:
        # a full request/response proves the server is up; then interrupt it like Ctrl-C does
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(500):
                try:
                    answered.append(client.get("/nope").status_code)
                    break
                except httpx.TransportError:
                    waiter.wait(0.01)
        os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does (wakes the event loop)

    thread = threading.Thread(target=interrupt_once_served)
    thread.start()
    try:
        emu.run(port=port)
    finally:
        thread.join()
    assert answered == [404]
    assert f"listening on http://127.0.0.1:{port}" in capsys.readouterr().out


async def test_handler_bug_is_a_500(
    http: httpx.AsyncClient, emu: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    emu.cases["c1"]["created_time"] = None  # corrupt state: sorting on it still works
    emu.cases["c2"]["hosts"] = 5  # not iterable: the filter code fails
    reply = await http.get(QUERY, params={"filter": "case.hosts:'x'"})
    assert reply.status_code == 500
    assert reply.json()["errors"][0]["code"] == 500
    assert "unexpected error" in caplog.text
    assert (await http.get(QUERY)).status_code == 200


async def test_failing_request_stream_propagates(http: httpx.AsyncClient) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b'{"ids": '
        raise RuntimeError("the sender broke")

    with pytest.raises(RuntimeError, match="sender broke"):
        await http.post("/message-center/entities/cases/GET/v1", content=body())



@pytest.mark.parametrize("module", [_app, _aggregate])
async def test_cases_added_during_a_request(
    http: httpx.AsyncClient, emu: Emulator, monkeypatch: pytest.MonkeyPatch, module: ModuleType
) -> None:
    """A test thread may add cases while the server thread walks them (``emu.serve()``): here
    the addition happens, deterministically, in the middle of the walk."""
    resolver = module.case_resolver

    def resolve_and_add(store: Any, case: dict[str, Any]) -> Any:
        if len(emu.cases) < 10:
            emu.add_case(title="added meanwhile", status="open")
        return resolver(store, case)

    monkeypatch.setattr(module, "case_resolver", resolve_and_add)
    query = await http.get(QUERY, params={"filter": "case.status:'open'"})
    terms = [{"field": "case.status", "name": "s", "type": "terms"}]
    counts = await http.post("/message-center/aggregates/cases/GET/v1", json=terms)
    assert (query.status_code, counts.status_code) == (200, 200)
    assert len(emu.cases) > 6
