"""Every operation: what goes on the wire (respx) and what comes back (parsed models)."""

from __future__ import annotations

import gzip
import io
import json
import os
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, assert_type

import httpx
import pytest
import respx

from falcon_mc import (
    AffectedEntity,
    AggregateQuery,
    AggregationResult,
    APIConnectionError,
    APIResponseValidationError,
    AsyncMessageCenter,
    Attachment,
    Case,
    CaseActivity,
    DateRange,
    Envelope,
    IdPage,
    InvalidArgumentError,
    NotFoundError,
    Range,
    fql,
)
from falcon_mc.models import IdsRequest

from .conftest import TOKEN, envelope, paged

CASE = {
    "id": "c-1",
    "title": "Suspicious PowerShell",
    "body": "Please review",
    "status": "open",
    "type": "fc:detection-support",
    "cid": "cid-1",
    "key": "CS-1",
    "created_time": "2024-05-01T12:00:00Z",
    "last_modified_time": "2024-05-02T08:30:00.123456789Z",
    "assigner": {"uid": "u1", "uuid": "uu-1", "display_name": "Ann Lee",
                 "first_name": "Ann", "last_name": "Lee"},
    "detections": [{"id": "ldt:abc:1", "url": "https://falcon/d/1"}],
    "incidents": [],
    "hosts": ["host-1"],
    "aids": ["aid-1"],
    "ip_addresses": ["10.0.0.1"],
    "attachments": [{"id": "a-1", "name": "log.txt", "mime_type": "text/plain", "size": 3,
                     "created_by": "Ann", "created_time": "2024-05-01T12:01:00Z"}],
    "brand_new_field": {"kept": True},
}
ACTIVITY = {
    "id": "act-1", "case_id": "c-1", "cid": "cid-1", "body": "hello", "type": "comment",
    "created_time": "2024-05-01T13:00:00Z",
    "created_by": {"uid": "u1", "uuid": "uu-1", "display_name": "Ann Lee",
                   "first_name": "Ann", "last_name": "Lee"},
}
AFFECTED = {"id": "c-9", "path": "/message-center/entities/case/v2?ids=c-9"}


def sent_json(route: respx.Route) -> object:
    return json.loads(route.calls.last.request.content)


def assert_bearer(route: respx.Route) -> None:
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {TOKEN}"


async def test_query_cases_sends_params_and_parses_page(
    mc: AsyncMessageCenter, router: respx.MockRouter
) -> None:
    route = router.get("/message-center/queries/cases/v1").respond(
        200, json=envelope(["c-1", "c-2"], total=2, limit=2)
    )
    page = await mc.query_cases(
        filter=fql.eq("case.status", "open"), sort="case.created_time.desc", limit=2, offset=0
    )
    assert_type(page, IdPage[str])
    params = route.calls.last.request.url.params
    assert dict(params) == {
        "filter": "case.status:'open'", "sort": "case.created_time.desc",
        "limit": "2", "offset": "0",
    }
    assert route.calls.last.request.method == "GET"
    assert_bearer(route)
    assert page.ids == ["c-1", "c-2"] and page.total == 2 and page.meta.trace_id == "trace-1"


async def test_query_activities_requires_case_id_on_the_wire(
    mc: AsyncMessageCenter, router: respx.MockRouter
) -> None:
    route = router.get("/message-center/queries/case-activities/v1").respond(
        200, json=envelope(["act-1"], total=1)
    )
    page = await mc.query_activities(case_id="c-1", sort="activity.created_time.asc", limit=10)
    assert dict(route.calls.last.request.url.params) == {
        "case_id": "c-1", "sort": "activity.created_time.asc", "limit": "10",
    }
    assert page.ids == ["act-1"]


async def test_get_cases_posts_ids_and_parses_cases(
    mc: AsyncMessageCenter, router: respx.MockRouter
) -> None:
    route = router.post("/message-center/entities/cases/GET/v1").respond(
        200, json=envelope([CASE])
    )
    result = await mc.get_cases("c-1, c-1,")
    assert_type(result, Envelope[Case])
    assert sent_json(route) == {"ids": ["c-1"]}
    assert route.calls.last.request.headers["Content-Type"] == "application/json"
    case = result.resources[0]
    assert case.title == "Suspicious PowerShell"
    assert case.created_time == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert case.assigner is not None and case.assigner.display_name == "Ann Lee"
    assert case.attachments[0].size == 3
    assert case.model_dump(by_alias=True)["brand_new_field"] == {"kept": True}


async def test_get_cases_accepts_raw_body(
    mc: AsyncMessageCenter, router: respx.MockRouter
) -> None:
    route = router.post("/message-center/entities/cases/GET/v1").respond(
        200, json=envelope([CASE])
    )
    await mc.get_cases(body={"ids": ["c-1"]})
    assert sent_json(route) == {"ids": ["c-1"]}


async def test_get_case_activity(mc: AsyncMessageCenter, router: respx.MockRouter) -> None:
    route = router.post("/message-center/entities/case-activities/GET/v1").respond(
        200, json=envelope([ACTIVITY])
    )
    result = await mc.get_case_activity(["act-1"])
    assert_type(result, Envelope[CaseActivity])
    assert sent_json(route) == {"ids": ["act-1"]}
    activity = result.resources[0]
    assert activity.created_by is not None and activity.created_by.uid == "u1"
    assert activity.type == "comment"


async def test_aggregate_cases_sends_a_json_array(
    mc: AsyncMessageCenter, router: respx.MockRouter
) -> None:
    route = router.post("/message-center/aggregates/cases/GET/v1").respond(
        200,
        json=envelope([{
            "name": "by_status",
            "buckets": [{"label": "open", "count": 3,
                         "sub_aggregates": [{"name": "t", "buckets": [{"label": "x", "count": 1}]}]},
                        {"label": {"from": 1}, "count": 1}],
        }]),
    )
    result = await mc.aggregate_cases(
        AggregateQuery(name="by_status", type="terms", field="case.status", size=5,
                       sub_aggregates=[AggregateQuery(name="t", type="terms", field="case.type")]),
        {"name": "r", "type": "range", "field": "size", "ranges": [{"From": 0, "To": 10}]},
        AggregateQuery(name="d", type="date_range", field="case.created_time",
                       date_ranges=[DateRange(from_="2024-01-01T00:00:00Z", to="2024-02-01T00:00:00Z")],
                       ranges=[Range(from_=1, to=2)]),
    )
    assert_type(result, Envelope[AggregationResult])
    assert sent_json(route) == [
        {"name": "by_status", "type": "terms", "field": "case.status", "size": 5,
         "sub_aggregates": [{"name": "t", "type": "terms", "field": "case.type"}]},
        {"name": "r", "type": "range", "field": "size", "ranges": [{"From": 0, "To": 10}]},
        {"name": "d", "type": "date_range", "field": "case.created_time",
         "date_ranges": [{"from": "2024-01-01T00:00:00Z", "to": "2024-02-01T00:00:00Z"}],
         "ranges": [{"From": 1, "To": 2}]},
    ]
    buckets = result.resources[0].buckets
    assert buckets[0].label == "open" and buckets[0].count == 3
    assert buckets[0].sub_aggregates[0].buckets[0].label == "x"
    assert buckets[1].label == {"from": 1}


async def test_aggregate_cases_falconpy_keywords(
    mc: AsyncMessageCenter, router: respx.MockRouter
) -> None:
    route = router.post("/message-center/aggregates/cases/GET/v1").respond(
        200, json=envelope([{"name": "n", "buckets": []}])
    )
    await mc.aggregate_cases(field="case.status", name="n", type="terms", min_doc_count=0)
    assert sent_json(route) == [
        {"field": "case.status", "name": "n", "type": "terms", "min_doc_count": 0}
    ]


async def test_create_case_v2_maps_content_to_body(
    mc: AsyncMessageCenter, router: respx.MockRouter
) -> None:
    route = router.post("/message-center/entities/case/v2").respond(200, json=envelope([AFFECTED]))
    result = await mc.create_case_v2(
        content="Please review", title="Suspicious", type="fc:detection-support",
        user_uuid="uu-1",
        detections=[{"id": "ldt:1", "product": "epp", "url": "https://d"}],
        incidents=[{"id": "inc:1", "url": "https://i"}],
    )
    assert_type(result, Envelope[AffectedEntity])
    assert sent_json(route) == {
        "body": "Please review", "title": "Suspicious", "type": "fc:detection-support",
        "user_uuid": "uu-1",
        "detections": [{"id": "ldt:1", "product": "epp", "url": "https://d"}],
        "incidents": [{"id": "inc:1", "url": "https://i"}],
    }  # no malware_submission_id / recon_rule_type: not given (FalconPy never sends them)
    assert result.resources[0].id == "c-9"


async def test_create_case_v2_raw_body_is_sent_as_given(
    mc: AsyncMessageCenter, router: respx.MockRouter
) -> None:
    route = router.post("/message-center/entities/case/v2").respond(200, json=envelope([AFFECTED]))
    raw = {"body": "b", "title": "t", "type": "fc:contact", "user_uuid": "u",
           "detections": [], "incidents": []}
    await mc.create_case_v2(body=raw)
    assert sent_json(route) == raw


async def test_create_case_v1_warns_and_sends(
    mc: AsyncMessageCenter, router: respx.MockRouter
) -> None:
    route = router.post("/message-center/entities/case/v1").respond(200, json=envelope([AFFECTED]))
    with pytest.deprecated_call():
        await mc.create_case(content="c", title="t", type="fc:contact", user_uuid="u",
                             detections=[{"id": "ldt:1", "url": "https://d"}])
    assert sent_json(route) == {
        "body": "c", "title": "t", "type": "fc:contact", "user_uuid": "u",
        "detections": [{"id": "ldt:1", "url": "https://d"}], "incidents": [],
    }


async def test_update_case_is_a_patch(mc: AsyncMessageCenter, router: respx.MockRouter) -> None:
    route = router.patch("/message-center/entities/case/v1").respond(
        200, json=envelope([AFFECTED])
    )
    with pytest.deprecated_call():
        result = await mc.update_case(id="c-9", content="new body")
    assert sent_json(route) == {"id": "c-9", "body": "new body"}  # nothing else is touched
    assert result.resources[0].path.endswith("c-9")  # type: ignore[union-attr]
    with pytest.deprecated_call():
        await mc.update_case(id="c-9", detections=[{"id": "ldt:1"}], incidents=[])
    assert sent_json(route) == {"id": "c-9", "detections": [{"id": "ldt:1"}], "incidents": []}
    with pytest.deprecated_call(), pytest.raises(InvalidArgumentError, match="nothing to update"):
        await mc.update_case(id="c-9")
    assert route.call_count == 2


async def test_add_case_activity_raw_body_is_sent_as_given(
    mc: AsyncMessageCenter, router: respx.MockRouter
) -> None:
    # the "comment" default counted as a keyword given beside body=, refusing every raw body
    route = router.post("/message-center/entities/case-activity/v1").respond(200, json=envelope())
    raw = {"case_id": "c-1", "body": "hi", "user_uuid": "uu-1", "type": "comment"}
    await mc.add_case_activity(body=raw)
    assert sent_json(route) == raw


async def test_add_case_activity(mc: AsyncMessageCenter, router: respx.MockRouter) -> None:
    reply = envelope()
    reply["meta"]["writes"] = {"resources_affected": 1}  # type: ignore[index]
    route = router.post("/message-center/entities/case-activity/v1").respond(200, json=reply)
    result = await mc.add_case_activity(case_id="c-1", content="hi", user_uuid="uu-1")
    assert_type(result, Envelope[object])
    assert sent_json(route) == {"case_id": "c-1", "body": "hi", "user_uuid": "uu-1",
                                "type": "comment"}
    assert result.meta.writes is not None and result.meta.writes.resources_affected == 1


async def test_add_case_attachment_multipart_from_path(
    mc: AsyncMessageCenter, router: respx.MockRouter, tmp_path: Path
) -> None:
    data = bytes(range(256)) * 1000
    source = tmp_path / "evidence.pdf"
    source.write_bytes(data)
    route = router.post("/message-center/entities/case-attachment/v1").respond(
        200, json=envelope([{"id": "a-9", "name": "evidence.pdf", "mime_type": "application/pdf",
                             "size": len(data), "created_by": "uu-1",
                             "created_time": "2024-05-01T12:00:00Z"}]),
    )
    result = await mc.add_case_attachment(case_id="c-1", user_uuid="uu-1", path=source)
    assert_type(result, Envelope[Attachment])
    request = route.calls.last.request
    content_type = request.headers["Content-Type"]
    assert content_type.startswith("multipart/form-data; boundary=")
    assert int(request.headers["Content-Length"]) == len(request.content)
    boundary = content_type.split("boundary=")[1]
    parts = request.content.split(f"--{boundary}".encode())
    assert b'name="case_id"\r\n\r\nc-1\r\n' in parts[1]
    assert b'name="user_uuid"\r\n\r\nuu-1\r\n' in parts[2]
    assert b'name="file"; filename="evidence.pdf"' in parts[3]
    assert b"Content-Type: application/pdf" in parts[3]
    assert parts[3].split(b"\r\n\r\n", 1)[1][:-2] == data
    assert result.resources[0].id == "a-9"


async def test_add_case_attachment_from_bytes_and_file(
    mc: AsyncMessageCenter, router: respx.MockRouter, tmp_path: Path
) -> None:
    route = router.post("/message-center/entities/case-attachment/v1").respond(
        200, json=envelope([{"id": "a-1", "name": "n.txt"}])
    )
    await mc.add_case_attachment(case_id="c", user_uuid="u", file_data=b"abc", filename="n.txt")
    assert b"\r\n\r\nabc\r\n" in route.calls.last.request.content
    assert route.calls.last.request.headers["Accept"] == "application/json"
    path = tmp_path / "notes.txt"
    path.write_bytes(b"from a file object")
    with path.open("rb") as handle:
        await mc.add_case_attachment(case_id="c", user_uuid="u", file=handle)
    body = route.calls.last.request.content
    assert b'filename="notes.txt"' in body and b"from a file object" in body


async def test_add_case_attachment_from_binary_streams_of_any_mode(
    mc: AsyncMessageCenter, router: respx.MockRouter, tmp_path: Path
) -> None:
    # a zip member's mode is "r" and a GzipFile's an int: both are binary and must upload
    route = router.post("/message-center/entities/case-attachment/v1").respond(
        200, json=envelope([{"id": "a-1", "name": "n.txt"}])
    )
    archive = tmp_path / "logs.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("inner.txt", b"zipped bytes")
    with zipfile.ZipFile(archive) as zf, zf.open("inner.txt") as member:
        await mc.add_case_attachment(case_id="c", user_uuid="u", file=member, filename="a.txt")
    assert b"\r\n\r\nzipped bytes\r\n" in route.calls.last.request.content
    packed = tmp_path / "log.txt.gz"
    packed.write_bytes(gzip.compress(b"gzipped bytes"))
    with gzip.open(packed) as unpacked:
        await mc.add_case_attachment(case_id="c", user_uuid="u", file=unpacked, filename="b.txt")
    assert b"\r\n\r\ngzipped bytes\r\n" in route.calls.last.request.content


class _Pipe(io.RawIOBase):
    """64 MiB through a pipe (``sys.stdin.buffer``): not seekable, size unknown up front."""

    name = "stdin.txt"

    def __init__(self) -> None:
        self.read_total = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = min(len(buffer), 64 * 1024 * 1024 - self.read_total)
        buffer[:size] = b"y" * size
        self.read_total += size
        return size


async def test_an_oversized_pipe_is_refused_without_reading_it_whole(
    mc: AsyncMessageCenter, router: respx.MockRouter
) -> None:
    route = router.post("/message-center/entities/case-attachment/v1")
    pipe = _Pipe()
    with pytest.raises(InvalidArgumentError, match="15"):
        await mc.add_case_attachment(case_id="c", user_uuid="u", file=io.BufferedReader(pipe))
    assert 15 * 1024 * 1024 < pipe.read_total <= 17 * 1024 * 1024
    assert not route.called


async def test_download_case_attachment_streams(
    mc: AsyncMessageCenter, router: respx.MockRouter, tmp_path: Path
) -> None:
    payload = b"\x89PNG" + bytes(70000)
    route = router.get("/message-center/entities/case-attachment/v1").respond(
        200, content=payload,
        headers={"Content-Type": "image/png", "Content-Disposition": 'attachment; filename="../../x.png"'},
    )
    async with mc.download_case_attachment("a-1") as download:
        assert download.content_type == "image/png"
        assert download.content_length == len(payload)
        assert download.filename == "x.png"
        saved = await download.save(tmp_path)
    assert dict(route.calls.last.request.url.params) == {"id": "a-1"}
    assert route.calls.last.request.headers["Accept"] == "*/*"  # the reply is a file
    assert route.calls.last.request.headers["Accept-Encoding"] == "identity"  # no gzip bomb
    assert saved == tmp_path / "x.png" and saved.read_bytes() == payload
    assert not list(tmp_path.glob("*.part"))


async def test_a_compressed_download_is_checked_against_the_bytes_on_the_wire(
    mc: AsyncMessageCenter, router: respx.MockRouter, tmp_path: Path
) -> None:
    text = b"timestamp,host,event\n" + b"2024-11-26T02:58:49Z,WEB-2491,logon\n" * 5000
    wire = gzip.compress(text)
    router.get("/message-center/entities/case-attachment/v1").respond(
        200, content=wire,
        headers={"Content-Type": "text/csv", "Content-Encoding": "gzip",
                 "Content-Disposition": 'attachment; filename="events.csv"'},
    )
    async with mc.download_case_attachment("a-1") as download:
        assert download.content_length is None  # the decoded size is not announced
        assert await download.aread() == text
    async with mc.download_case_attachment("a-1") as download:
        saved = await download.save(tmp_path)
    assert saved.read_bytes() == text


async def test_a_download_made_in_memory_is_read(tmp_path: Path) -> None:
    # httpx.MockTransport replies are in memory: no bytes "on the wire" to count
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/token":
            return httpx.Response(201, json={"access_token": "t", "expires_in": 1799})
        return httpx.Response(200, content=b"hello", headers={"Content-Type": "text/plain"})

    async with (
        AsyncMessageCenter(client_id="i", client_secret="s",
                           transport=httpx.MockTransport(handler)) as mc,
        mc.download_case_attachment("a-1") as download,
    ):
        assert await download.aread() == b"hello"


async def test_a_reply_that_does_not_decode_is_a_connection_error(
    mc: AsyncMessageCenter, router: respx.MockRouter
) -> None:
    # httpx.DecodingError is not an httpx.TransportError: it escaped as itself
    broken = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    router.get("/message-center/queries/cases/v1").respond(
        200, stream=httpx.ByteStream(b"not gzip"), headers=broken)
    router.get("/message-center/entities/case-attachment/v1").respond(
        200, stream=httpx.ByteStream(b"not gzip"), headers=broken)
    with pytest.raises(APIConnectionError, match="could not be decoded"):
        await mc.query_cases()
    with pytest.raises(APIConnectionError, match="could not be decoded"):
        await _read_download(mc, "a-1")


async def _read_download(mc: AsyncMessageCenter, attachment_id: str) -> bytes:
    async with mc.download_case_attachment(attachment_id) as download:
        return await download.aread()


async def test_a_compressed_download_cut_short_is_detected(
    mc: AsyncMessageCenter, router: respx.MockRouter
) -> None:
    wire = gzip.compress(os.urandom(50_000))  # incompressible: the cut lands in the data
    router.get("/message-center/entities/case-attachment/v1").respond(
        200, stream=httpx.ByteStream(wire[: len(wire) // 2]),
        headers={"Content-Type": "text/csv", "Content-Encoding": "gzip",
                 "Content-Length": str(len(wire))},
    )
    async with mc.download_case_attachment("a-1") as download:
        with pytest.raises(APIResponseValidationError, match="Content-Length said"):
            await download.aread()


async def test_iter_cases_yields_in_query_order(
    router: respx.MockRouter,
) -> None:
    ids = [f"c-{i}" for i in range(7)]

    def get(request: httpx.Request) -> httpx.Response:
        wanted = json.loads(request.content)["ids"]
        return httpx.Response(200, json=envelope([{**CASE, "id": i} for i in reversed(wanted)]))

    router.get("/message-center/queries/cases/v1").mock(
        side_effect=lambda request: paged(ids, request, total=len(ids))
    )
    get_route = router.post("/message-center/entities/cases/GET/v1").mock(side_effect=get)
    async with AsyncMessageCenter(client_id="a", client_secret="b", max_ids_per_request=2,
                                  max_concurrency=2,
                                  transport=httpx.MockTransport(router.async_handler)) as mc:
        got = [case.id async for case in mc.iter_cases(window=3)]
    assert got == ids
    assert all(len(json.loads(c.request.content)["ids"]) <= 2 for c in get_route.calls)


async def test_add_case_attachment_with_falconpy_keywords(
    mc: AsyncMessageCenter, router: respx.MockRouter
) -> None:
    """The seed's example: ``file_data=PAYLOAD`` with FalconPy's ``file_name``."""
    route = router.post("/message-center/entities/case-attachment/v1").respond(
        200, json=envelope([{"id": "a-1", "name": "testfile.png"}])
    )
    payload = b"\x89PNG\r\n\x1a\n" + bytes(32)
    await mc.add_case_attachment(case_id="c", file_data=payload, file_name="testfile.png",
                                 user_uuid="u")
    body = route.calls.last.request.content
    assert b'name="file"; filename="testfile.png"' in body
    assert b"Content-Type: image/png" in body and payload in body
    await mc.add_case_attachment(case_id="c", sample=payload, file_name="testfile.png",
                                 user_uuid="u")
    assert payload in route.calls.last.request.content
    with pytest.raises(ValueError, match=r"^filename"):
        await mc.add_case_attachment(case_id="c", file_data=payload, file_name="a.png",
                                     filename="b.png", user_uuid="u")


async def test_falconpy_type_aliases(mc: AsyncMessageCenter, router: respx.MockRouter) -> None:
    cases = router.post("/message-center/entities/case/v2").respond(
        200, json=envelope([AFFECTED]))
    await mc.create_case_v2(content="b", title="t", case_type="fc:contact")
    assert sent_json(cases)["type"] == "fc:contact"  # type: ignore[index]
    comments = router.post("/message-center/entities/case-activity/v1").respond(
        200, json=envelope())
    await mc.add_case_activity(case_id="c", content="x", user_uuid="u", activity_type="comment")
    assert sent_json(comments)["type"] == "comment"  # type: ignore[index]
    with pytest.raises(ValueError, match=r"^type"):
        await mc.create_case_v2(content="b", title="t", type="a", case_type="b")


# --------------------------------------------------------------------------- FalconPy parity


async def test_limit_accepts_ascii_digit_strings_as_offset_does(
    mc: AsyncMessageCenter, router: respx.MockRouter
) -> None:
    cases = router.get("/message-center/queries/cases/v1").respond(200, json=envelope([]))
    activities = router.get("/message-center/queries/case-activities/v1").respond(
        200, json=envelope([])
    )
    await mc.query_cases(limit="100", offset="10")
    assert dict(cases.calls.last.request.url.params) == {"limit": "100", "offset": "10"}
    await mc.query_activities(case_id="c-1", limit=" 7 ")
    assert dict(activities.calls.last.request.url.params) == {"case_id": "c-1", "limit": "7"}


@pytest.mark.parametrize("max_ids", [500, 1])  # one batch, or a batch per id
async def test_a_get_of_only_unknown_ids_returns_them_in_errors(
    router: respx.MockRouter, max_ids: int
) -> None:
    """The API answers 404 when none of a batch's ids exist; the bulk get does not raise, as
    docs/cases.md says: the envelope has no resources and lists every id in ``errors`` (the
    404's own errors, or one per id when it lists none, as the spec's meta-only reply)."""
    listed = {"code": 404, "message": "case x-1 not found", "id": "x-1"}
    router.post("/message-center/entities/cases/GET/v1").respond(
        404, json=envelope(errors=[listed]))
    router.post("/message-center/entities/case-activities/GET/v1").respond(
        404, json={"meta": {"trace_id": "t-404"}})
    async with AsyncMessageCenter(client_id="a", client_secret="b", max_ids_per_request=max_ids,
                                  transport=httpx.MockTransport(router.async_handler)) as mc:
        cases = await mc.get_cases(["x-1"])
        activities = await mc.get_case_activity(["x-1", "x-2"])
    assert cases.resources == [] and [e.model_dump() for e in cases.errors] == [listed]
    assert activities.resources == [] and activities.trace_id == "t-404"
    assert [(e.code, e.id) for e in activities.errors] == [(404, "x-1"), (404, "x-2")]


NOT_THE_APIS_404 = {
    "an HTML page": httpx.Response(404, html="<html><body>404 Not Found (nginx)</body></html>"),
    "no body": httpx.Response(404),
    "JSON without envelope keys": httpx.Response(404, json={"message": "no route"}),
    "a JSON list": httpx.Response(404, json=[]),
    "a meta that is not an object": httpx.Response(404, json={"meta": "nope"}),
}


@pytest.mark.parametrize("reply", sorted(NOT_THE_APIS_404))
@pytest.mark.parametrize("operation", ["get_cases", "get_case_activity"])
async def test_a_404_that_is_not_the_apis_envelope_raises(
    router: respx.MockRouter, reply: str, operation: str
) -> None:
    """A 404 from a proxy or a wrong base URL says nothing of the ids: it raises instead of
    reading as "none of them exist" (it became one not-found error per id). One such batch
    fails the whole get, even when the other batches were the API's own 404s."""
    api_404 = httpx.Response(404, json=envelope(errors=[{"code": 404, "message": "nf"}]))
    replies = iter([api_404, NOT_THE_APIS_404[reply]])
    for path in ("cases/GET/v1", "case-activities/GET/v1"):
        router.post(f"/message-center/entities/{path}").mock(
            side_effect=lambda request: next(replies))
    async with AsyncMessageCenter(client_id="a", client_secret="b", max_ids_per_request=1,
                                  max_concurrency=1,
                                  transport=httpx.MockTransport(router.async_handler)) as mc:
        with pytest.raises(NotFoundError) as info:
            await getattr(mc, operation)(["x-1", "x-2"])
    assert info.value.status_code == 404 and info.value.errors == []


async def test_the_apis_404_longer_than_the_error_body_limit_lists_every_id(
    router: respx.MockRouter,
) -> None:
    """A batch of thousands of unknown ids gets a JSON 404 past the 1 MiB read of an error
    body: cut there, it does not parse, yet it is the API's (by its type), not a proxy's."""
    ids = [f"x-{n:05d}" for n in range(20_000)]
    errors = [{"code": 404, "message": f"case {i} not found", "id": i} for i in ids]
    router.post("/message-center/entities/cases/GET/v1").respond(404, json=envelope(errors=errors))
    async with AsyncMessageCenter(client_id="a", client_secret="b", max_ids_per_request=20_000,
                                  transport=httpx.MockTransport(router.async_handler)) as mc:
        cases = await mc.get_cases(ids)
    assert cases.resources == [] and [e.id for e in cases.errors] == ids


async def test_json_operations_accept_only_the_codings_error_bodies_are_decoded_in(
    router: respx.MockRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    """httpx offers ``br``/``zstd`` too when their packages are installed; an error body in
    one of them could not be read (a brotli 404 to a bulk get raised ``NotFoundError``)."""
    monkeypatch.setattr(httpx._client, "ACCEPT_ENCODING", "gzip, deflate, br, zstd")
    route = router.post("/message-center/entities/cases/GET/v1").respond(
        200, json=envelope([CASE])
    )
    async with AsyncMessageCenter(client_id="a", client_secret="b",
                                  transport=httpx.MockTransport(router.async_handler)) as mc:
        await mc.get_cases(["c-1"])
    assert route.calls.last.request.headers["Accept-Encoding"] == "gzip, deflate"


async def test_a_payload_passed_as_ids_is_the_body(
    mc: AsyncMessageCenter, router: respx.MockRouter
) -> None:
    """FalconPy sends a dict given positionally as the whole payload."""
    cases = router.post("/message-center/entities/cases/GET/v1").respond(
        200, json=envelope([CASE])
    )
    activities = router.post("/message-center/entities/case-activities/GET/v1").respond(
        200, json=envelope([ACTIVITY])
    )
    result = await mc.get_cases({"ids": ["c-1", "c-2"]})
    assert sent_json(cases) == {"ids": ["c-1", "c-2"]}
    assert result.resources[0].id == "c-1"
    await mc.get_cases(IdsRequest(ids=["c-3"]))
    assert sent_json(cases) == {"ids": ["c-3"]}
    await mc.get_case_activity({"ids": "act-1,act-2"})
    assert sent_json(activities) == {"ids": ["act-1", "act-2"]}


async def test_none_detections_and_incidents_are_not_given(
    mc: AsyncMessageCenter, router: respx.MockRouter
) -> None:
    """FalconPy treats ``detections=None`` as not given; it raised TypeError here."""
    v2 = router.post("/message-center/entities/case/v2").respond(200, json=envelope([AFFECTED]))
    v1 = router.post("/message-center/entities/case/v1").respond(200, json=envelope([AFFECTED]))
    await mc.create_case_v2(content="c", title="t", type="fc:contact", detections=None,
                            incidents=None)
    assert sent_json(v2) == {"body": "c", "title": "t", "type": "fc:contact",
                             "detections": [], "incidents": []}
    await mc.create_case_v2(content="c", title="t", type="fc:contact", incidents=None,
                            detections=[{"id": "ldt:1"}])
    assert sent_json(v2)["detections"] == [{"id": "ldt:1"}]  # type: ignore[index]
    with pytest.deprecated_call():
        await mc.create_case(content="c", title="t", type="fc:contact", user_uuid="u",
                             detections=None, incidents=None)
    assert sent_json(v1) == {"body": "c", "title": "t", "type": "fc:contact", "user_uuid": "u",
                             "detections": [], "incidents": []}


async def test_aggregate_body_may_be_one_query(
    mc: AsyncMessageCenter, router: respx.MockRouter
) -> None:
    """FalconPy sends a dict ``body=`` as it is; it was iterated by its keys here."""
    route = router.post("/message-center/aggregates/cases/GET/v1").respond(
        200, json=envelope([{"name": "s", "buckets": []}])
    )
    query = {"field": "case.status", "name": "s", "type": "terms"}
    await mc.aggregate_cases(body=query)
    assert sent_json(route) == [query]
    await mc.aggregate_cases(body=AggregateQuery.model_validate(query))
    assert sent_json(route) == [query]
    await mc.aggregate_cases(body=(query, {**query, "name": "t"}))
    assert sent_json(route) == [query, {**query, "name": "t"}]


@pytest.mark.parametrize("keywords", [
    {"filter": "case.type:'fc:contact'"},  # was "queries.field: Field required"
    {"field": "case.type", "name": "t", "type": "terms"},  # was sent as a second query
])
async def test_aggregate_body_and_keywords_do_not_mix(
    mc: AsyncMessageCenter, router: respx.MockRouter, keywords: dict[str, Any]
) -> None:
    route = router.post("/message-center/aggregates/cases/GET/v1").respond(
        200, json=envelope([])
    )
    query = {"field": "case.status", "name": "s", "type": "terms"}
    with pytest.raises(InvalidArgumentError, match=r"^body: pass either body= or keywords") as info:
        await mc.aggregate_cases(body=[query], **keywords)
    assert info.value.argument == "body"
    assert all(name in str(info.value) for name in keywords)
    assert not route.called


async def test_a_file_object_in_file_data_is_streamed_as_file_does(
    router: respx.MockRouter, tmp_path: Path
) -> None:
    """FalconPy (requests) uploads an open file given as ``file_data``; it was refused. Read
    from where it stands, and again from there when the request is replayed (a 401)."""
    path = tmp_path / "t.csv"
    path.write_bytes(b"skip|hello,world\n")
    route = router.post("/message-center/entities/case-attachment/v1").mock(side_effect=[
        httpx.Response(401, json=envelope()),
        httpx.Response(200, json=envelope([{"id": "a-1", "name": "t.csv"}])),
        httpx.Response(200, json=envelope([{"id": "a-2", "name": "renamed.csv"}])),
    ])
    async with AsyncMessageCenter(client_id="a", client_secret="b",
                                  transport=httpx.MockTransport(router.async_handler)) as mc:
        with path.open("rb") as handle:
            handle.read(5)
            result = await mc.add_case_attachment(case_id="c", user_uuid="u", file_data=handle)
        assert result.resources[0].id == "a-1"
        assert route.call_count == 2
        for call in route.calls:
            body = call.request.content
            assert b'name="file"; filename="t.csv"\r\nContent-Type: text/csv' in body
            assert b"\r\n\r\nhello,world\n\r\n" in body and b"skip" not in body
            assert int(call.request.headers["Content-Length"]) == len(body)
        with path.open("rb") as handle:  # FalconPy's other names of file_data, and file_name=
            await mc.add_case_attachment(case_id="c", user_uuid="u", upfile=handle,
                                         file_name="renamed.csv")
        body = route.calls.last.request.content
        assert b'filename="renamed.csv"' in body and b"skip|hello,world\n" in body


@pytest.mark.parametrize("resources", [[{"id": "act-123", "case_id": "c-1"}], ["act-123"]])
async def test_add_case_activity_keeps_resources_the_spec_does_not_list(
    mc: AsyncMessageCenter, router: respx.MockRouter, resources: list[object]
) -> None:
    """The spec's reply is meta-only; a reply that also carries ``resources`` (new fields never
    break you) raised APIResponseValidationError after the comment was written."""
    reply = envelope(resources)
    reply["meta"]["writes"] = {"resources_affected": 1}  # type: ignore[index]
    router.post("/message-center/entities/case-activity/v1").respond(200, json=reply)
    result = await mc.add_case_activity(case_id="c-1", content="hi", user_uuid="uu-1")
    assert_type(result, Envelope[object])
    assert result.resources == resources
    assert result.meta.writes is not None and result.meta.writes.resources_affected == 1


@pytest.mark.parametrize(("query", "argument"), [
    ({"ranges": [{"from": 0, "to": float("inf")}]}, "queries.ranges.0.to"),
    ({"ranges": [{"From": float("-inf")}]}, "queries.ranges.0.From"),
    ({"percents": [50, float("nan")]}, "queries.percents.1"),
])
async def test_non_finite_numbers_in_a_query_are_refused_naming_the_field(
    mc: AsyncMessageCenter, router: respx.MockRouter, query: dict[str, Any], argument: str
) -> None:
    """They went on the wire as the bare words Infinity/NaN: not JSON."""
    route = router.post("/message-center/aggregates/cases/GET/v1").respond(
        200, json=envelope([])
    )
    with pytest.raises(InvalidArgumentError, match="finite") as info:
        await mc.aggregate_cases({"name": "n", "type": "range", "field": "case.key", **query})
    assert info.value.argument == argument
    assert not route.called


async def test_a_non_finite_number_assigned_after_validation_is_refused(
    mc: AsyncMessageCenter, router: respx.MockRouter
) -> None:
    route = router.post("/message-center/aggregates/cases/GET/v1").respond(
        200, json=envelope([])
    )
    bound = Range(from_=0)
    bound.to = float("inf")  # models do not validate assignments
    query = AggregateQuery(name="n", type="range", field="case.key", ranges=[bound])
    with pytest.raises(InvalidArgumentError, match="NaN and infinity have no JSON form") as info:
        await mc.aggregate_cases(query)
    assert info.value.argument == "body"
    assert not route.called
