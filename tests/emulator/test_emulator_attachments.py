"""Attachments: upload rules, streamed download, headers."""

from __future__ import annotations

import httpx
import pytest

from falcon_mc.emulator import Emulator

URL = "/message-center/entities/case-attachment/v1"


async def upload(
    http: httpx.AsyncClient, name: str, data: bytes, case_id: str = "c1"
) -> httpx.Response:
    return await http.post(
        URL, data={"case_id": case_id, "user_uuid": "u-ada"}, files={"file": (name, data)}
    )


async def test_upload_then_download(http: httpx.AsyncClient, emu: Emulator) -> None:
    data = bytes(range(256)) * 100
    reply = await upload(http, "capture 01.png", data)
    assert reply.status_code == 200
    (meta,) = reply.json()["resources"]
    assert meta["name"] == "capture 01.png"
    assert meta["mime_type"] == "image/png"
    assert meta["size"] == len(data)
    assert meta["created_by"] == "u-ada"
    assert meta["created_time"] == "2024-06-01T00:00:00Z"
    assert emu.attachments[meta["id"]].data == data
    assert emu.cases["c1"]["attachments"] == [meta]
    down = await http.get(URL, params={"id": meta["id"]})
    assert down.status_code == 200
    assert down.content == data
    assert down.headers["Content-Type"] == "image/png"
    assert down.headers["Content-Length"] == str(len(data))
    assert down.headers["Content-Disposition"] == 'attachment; filename="capture 01.png"'
    assert down.headers["X-CS-TRACEID"]
    assert emu.stats.bytes_downloaded == len(data)


async def test_download_falconpy_ids_quirk(http: httpx.AsyncClient, emu: Emulator) -> None:
    att = emu.add_attachment("c1", "a.pdf", b"%PDF")
    reply = await http.get(URL, params={"ids": att})
    assert reply.status_code == 200
    assert reply.headers["Content-Type"] == "application/pdf"


async def test_download_streams_in_chunks(http: httpx.AsyncClient, emu: Emulator) -> None:
    emu.settings.chunk_size = 4
    att = emu.add_attachment("c1", "notes.txt", b"0123456789")
    async with http.stream("GET", URL, params={"id": att}) as reply:
        chunks = [chunk async for chunk in reply.aiter_raw()]
    assert chunks == [b"0123", b"4567", b"89"]


async def test_download_errors(http: httpx.AsyncClient) -> None:
    missing = await http.get(URL, params={"id": "nope"})
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == "application/json"
    assert missing.json()["errors"][0] == {"code": 404, "message": "attachment nope not found",
                                           "id": "nope"}
    assert (await http.get(URL)).status_code == 400


@pytest.mark.parametrize(
    "name",
    [
        "_under.txt", "-dash.csv", "9lives.docx", "with space.pdf", "UPPER.TXT",
        "a" * 251 + ".txt", "x.jpeg", "x.bmp", "x.gif", "x.xls", "x.xlsx", "x.pptx", "x.doc",
    ],
)
async def test_accepted_names(http: httpx.AsyncClient, name: str) -> None:
    assert (await upload(http, name, b"x")).status_code == 200


@pytest.mark.parametrize(
    "name",
    [
        ".hidden.txt", " lead.txt", "bad$name.txt", "semi;colon.txt", "a" * 252 + ".txt",
        "evil.exe", "noext", "archive.zip", "x.ppt", "ünïcode.txt", "dir/x.txt",
    ],
)
async def test_rejected_names(http: httpx.AsyncClient, emu: Emulator, name: str) -> None:
    reply = await upload(http, name, b"x")
    assert reply.status_code == 400
    assert "file" in reply.json()["errors"][0]["message"]
    assert emu.attachments == {}


async def test_size_limit(http: httpx.AsyncClient, emu: Emulator) -> None:
    emu.settings.max_attachment_bytes = 10
    assert (await upload(http, "ok.txt", b"x" * 10)).status_code == 200
    reply = await upload(http, "big.txt", b"x" * 11)
    assert reply.status_code == 400
    assert "too large" in reply.json()["errors"][0]["message"]
    huge = await upload(http, "huge.txt", b"x" * (2 * 2**20))
    assert huge.status_code == 400
    assert len(emu.attachments) == 1


async def test_upload_validation(http: httpx.AsyncClient) -> None:
    unknown = await upload(http, "a.txt", b"x", case_id="zz")
    assert unknown.status_code == 404
    no_case = await http.post(URL, data={"user_uuid": "u"}, files={"file": ("a.txt", b"x")})
    assert no_case.status_code == 400
    no_user = await http.post(URL, data={"case_id": "c1"}, files={"file": ("a.txt", b"x")})
    assert no_user.status_code == 400
    no_file = await http.post(URL, data={"case_id": "c1", "user_uuid": "u"})
    assert no_file.status_code == 400
    not_multipart = await http.post(URL, json={"case_id": "c1"})
    assert not_multipart.status_code == 400
    garbage = await http.post(
        URL, content=b"garbage", headers={"Content-Type": "multipart/form-data; boundary=zz"}
    )
    assert garbage.status_code == 400


async def test_upload_file_part_must_be_named_file(
    http: httpx.AsyncClient, emu: Emulator
) -> None:
    form = {"case_id": "c1", "user_uuid": "u"}
    for part in ("upfile", "File", "attachment"):
        reply = await http.post(URL, data=form, files={part: ("notes.txt", b"hello")})
        assert reply.status_code == 400, part
        assert reply.json()["errors"][0]["message"] == "a file part named 'file' is required"
    assert emu.attachments == {}
    both = await http.post(
        URL, data=form, files={"other": ("a.txt", b"a"), "file": ("b.txt", b"b")}
    )
    assert [r["name"] for r in both.json()["resources"]] == ["b.txt"]


async def test_upload_binary_with_boundary_like_bytes(http: httpx.AsyncClient) -> None:
    data = b"\r\n--\r\n\x00\xff" * 1000
    reply = await upload(http, "bin.pdf", data)
    att = reply.json()["resources"][0]["id"]
    assert (await http.get(URL, params={"id": att})).content == data


async def test_download_non_ascii_name(http: httpx.AsyncClient, emu: Emulator) -> None:
    att = emu.add_attachment("c1", 'rés"umé.txt', b"x")
    reply = await http.get(URL, params={"id": att})
    assert reply.headers["Content-Disposition"] == (
        "attachment; filename=\"r_s_um_.txt\"; filename*=UTF-8''r%C3%A9s%22um%C3%A9.txt"
    )
