"""Bad input is refused with a ValueError subclass naming the argument, and nothing is sent."""

from __future__ import annotations

import io
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from falcon_mc import AggregateQuery, AsyncMessageCenter, Cloud, EntityRef, InvalidArgumentError
from falcon_mc._args import check_limit, check_offset

Call = Callable[[AsyncMessageCenter, Path], Awaitable[Any]]


async def _query(mc: AsyncMessageCenter, **kwargs: Any) -> Any:
    return await mc.query_cases(**kwargs)


async def _activities(mc: AsyncMessageCenter, **kwargs: Any) -> Any:
    return await mc.query_activities(**kwargs)


AGG = {"field": "case.status", "name": "s", "type": "terms"}


def deep_query(levels: int) -> dict[str, Any]:
    query: dict[str, Any] = {"name": "leaf", "type": "terms", "field": "case.type"}
    for i in range(levels):
        query = {"name": f"n{i}", "type": "terms", "field": "case.status",
                 "sub_aggregates": [query]}
    return query


def big_file(tmp: Path) -> Path:
    path = tmp / "big.txt"
    with path.open("wb") as handle:
        handle.truncate(15 * 1024 * 1024 + 1)
    return path


CASES: list[tuple[str, str, Call]] = [
    ("limit zero", "limit", lambda mc, _: _query(mc, limit=0)),
    ("limit 501", "limit", lambda mc, _: _query(mc, limit=501)),
    ("limit word", "limit", lambda mc, _: _query(mc, limit="ten")),
    # ASCII-digit strings are read as FalconPy does, within the same range
    ("limit string zero", "limit", lambda mc, _: _query(mc, limit="0")),
    ("limit string 501", "limit", lambda mc, _: _query(mc, limit="501")),
    ("limit negative string", "limit", lambda mc, _: _query(mc, limit="-5")),
    ("limit arabic-indic digits", "limit", lambda mc, _: _query(mc, limit="\u0661\u0660")),
    ("limit superscript digit", "limit", lambda mc, _: _query(mc, limit="\u00b2")),
    ("limit bool", "limit", lambda mc, _: _query(mc, limit=True)),
    ("limit float", "limit", lambda mc, _: _query(mc, limit=2.5)),
    ("offset negative", "offset", lambda mc, _: _query(mc, offset=-1)),
    ("offset word", "offset", lambda mc, _: _query(mc, offset="ten")),
    ("offset superscript digit", "offset", lambda mc, _: _query(mc, offset="\u00b2")),
    ("offset circled digit", "offset", lambda mc, _: _query(mc, offset="\u2460")),
    ("offset arabic-indic digit", "offset", lambda mc, _: _query(mc, offset="\u0663")),
    ("unknown sort", "sort", lambda mc, _: _query(mc, sort="case.title.asc")),
    ("sort wrong type", "sort", lambda mc, _: _query(mc, sort=5)),
    ("activity sort on cases", "sort",
     lambda mc, _: _query(mc, sort="activity.created_time.asc")),
    ("case sort on activities", "sort",
     lambda mc, _: _activities(mc, case_id="c", sort="case.id.asc")),
    ("unbalanced quote", "filter", lambda mc, _: _query(mc, filter="case.status:'open")),
    ("unbalanced bracket", "filter", lambda mc, _: _query(mc, filter="case.type:['a','b'")),
    ("unbalanced paren", "filter", lambda mc, _: _query(mc, filter="(case.status:'open'")),
    ("empty filter", "filter", lambda mc, _: _query(mc, filter="  ")),
    ("filter wrong type", "filter", lambda mc, _: _query(mc, filter=42)),
    ("activities without case", "case_id",
     lambda mc, _: _activities(mc, case_id="")),
    ("activities limit", "limit",
     lambda mc, _: _activities(mc, case_id="c", limit=1000)),
    ("get_cases empty list", "ids", lambda mc, _: mc.get_cases([])),
    ("get_cases empty string", "ids", lambda mc, _: mc.get_cases(" , ")),
    ("get_cases None", "ids", lambda mc, _: mc.get_cases()),
    ("get_cases int", "ids", lambda mc, _: mc.get_cases(5)),  # type: ignore[arg-type]
    ("get_cases blank id", "ids", lambda mc, _: mc.get_cases(["a", ""])),
    ("get_cases non-str id", "ids", lambda mc, _: mc.get_cases(["a", 3])),  # type: ignore[list-item]
    ("get_cases body without ids", "body.ids", lambda mc, _: mc.get_cases(body={})),
    ("get_case_activity empty", "ids", lambda mc, _: mc.get_case_activity([])),
    # a dict passed as ids is the body, validated as body= is
    ("get_cases payload without ids", "body.ids",
     lambda mc, _: mc.get_cases({"idz": ["a"]})),
    ("get_case_activity payload with blank id", "body.ids",
     lambda mc, _: mc.get_case_activity({"ids": ["a", " "]})),
    ("get_cases payload and body", "body",
     lambda mc, _: mc.get_cases({"ids": ["a"]}, body={"ids": ["b"]})),
    ("aggregate nothing", "queries", lambda mc, _: mc.aggregate_cases()),
    ("aggregate missing field", "queries.field",
     lambda mc, _: mc.aggregate_cases({"name": "n", "type": "terms"})),
    ("aggregate too deep", "queries", lambda mc, _: mc.aggregate_cases(deep_query(4))),
    ("aggregate wrong size type", "queries.size",
     lambda mc, _: mc.aggregate_cases({"name": "n", "type": "terms", "field": "f",
                                       "size": "big"})),
    ("create v2 missing title", "title",
     lambda mc, _: mc.create_case_v2(content="b", type="fc:contact")),
    ("create v2 missing content", "content",
     lambda mc, _: mc.create_case_v2(title="t", type="fc:contact")),
    ("create v2 blank type", "type",
     lambda mc, _: mc.create_case_v2(content="b", title="t", type=" ")),
    ("create v2 bad detection", "detections.0",
     lambda mc, _: mc.create_case_v2(content="b", title="t", type="fc:contact",
                                     detections=["ldt:1"])),  # type: ignore[list-item]
    # a lone reference was iterated by its keys (a misleading "detections.0: Input should
    # be a valid dictionary"), a string by its characters
    ("create v2 lone detection dict", "detections",
     lambda mc, _: mc.create_case_v2(content="b", title="t", type="fc:contact",
                                     detections={"id": "ldt:1", "url": "https://x"})),  # type: ignore[arg-type]
    ("create v2 lone incident model", "incidents",
     lambda mc, _: mc.create_case_v2(content="b", title="t", type="fc:contact",
                                     incidents=EntityRef(id="inc:1"))),  # type: ignore[arg-type]
    ("create v1 detections string", "detections",
     lambda mc, _: mc.create_case(content="b", title="t", type="fc:contact", user_uuid="u",
                                  detections="ldt:1")),  # type: ignore[arg-type]
    ("create v2 incidents number", "incidents",
     lambda mc, _: mc.create_case_v2(content="b", title="t", type="fc:contact",
                                     incidents=5)),  # type: ignore[arg-type]
    ("update lone detection dict", "detections",
     lambda mc, _: mc.update_case(id="c", detections={"id": "ldt:1"})),  # type: ignore[arg-type]
    ("create v1 missing user_uuid", "user_uuid",
     lambda mc, _: mc.create_case(content="b", title="t", type="fc:contact")),
    ("update without id", "id", lambda mc, _: mc.update_case(content="x")),
    ("comment missing user_uuid", "user_uuid",
     lambda mc, _: mc.add_case_activity(case_id="c", content="hi")),
    ("comment missing content", "content",
     lambda mc, _: mc.add_case_activity(case_id="c", user_uuid="u")),
    ("comment not a comment", "type",
     lambda mc, _: mc.add_case_activity(case_id="c", content="x", user_uuid="u",
                                        type="status_change")),
    ("upload no source", "file_data",
     lambda mc, _: mc.add_case_attachment(case_id="c", user_uuid="u")),
    ("upload two sources", "file_data",
     lambda mc, tmp: mc.add_case_attachment(case_id="c", user_uuid="u", file_data=b"x",
                                            path=tmp / "x.txt", filename="x.txt")),
    ("upload bytes without name", "filename",
     lambda mc, _: mc.add_case_attachment(case_id="c", user_uuid="u", file_data=b"x")),
    ("upload forbidden extension", "filename",
     lambda mc, _: mc.add_case_attachment(case_id="c", user_uuid="u", file_data=b"x",
                                          filename="run.exe")),
    ("upload leading dot", "filename",
     lambda mc, _: mc.add_case_attachment(case_id="c", user_uuid="u", file_data=b"x",
                                          filename=".hidden.txt")),
    ("upload path traversal", "filename",
     lambda mc, _: mc.add_case_attachment(case_id="c", user_uuid="u", file_data=b"x",
                                          filename="../x.txt")),
    ("upload name too long", "filename",
     lambda mc, _: mc.add_case_attachment(case_id="c", user_uuid="u", file_data=b"x",
                                          filename="a" * 252 + ".txt")),
    ("upload unicode name", "filename",
     lambda mc, _: mc.add_case_attachment(case_id="c", user_uuid="u", file_data=b"x",
                                          filename="r\u00e9sum\u00e9.pdf")),
    ("upload too large", "file", lambda mc, tmp: mc.add_case_attachment(
        case_id="c", user_uuid="u", path=big_file(tmp))),
    ("upload missing path", "path", lambda mc, tmp: mc.add_case_attachment(
        case_id="c", user_uuid="u", path=tmp / "nope.txt")),
    ("upload text-mode file", "file", lambda mc, tmp: mc.add_case_attachment(
        case_id="c", user_uuid="u", file=io.StringIO("x"), filename="x.txt")),  # type: ignore[arg-type]
    ("upload missing user_uuid", "user_uuid", lambda mc, _: mc.add_case_attachment(
        case_id="c", user_uuid="", file_data=b"x", filename="x.txt")),
    ("download empty id", "id", lambda mc, _: mc.download_case_attachment("").__aenter__()),
    # lone surrogates (undecodable bytes from argv or a file): UnicodeEncodeError deep in
    # httpx, or sent on as JSON escapes the server fails on
    ("filter not Unicode", "filter", lambda mc, _: _query(mc, filter="case.title:'caf\udce9'")),
    ("title not Unicode", "title", lambda mc, _: mc.create_case_v2(
        content="c", title="caf\udce9", type="fc:contact")),
    ("ids not Unicode", "ids", lambda mc, _: mc.get_cases(["c-\udce9"])),
    ("a detection not Unicode", "body", lambda mc, _: mc.create_case_v2(
        content="c", title="t", type="fc:contact", detections=[{"id": "ldt:\udce9"}])),
    # it went into the part's headers as given: CR/LF added a second Content-Disposition
    ("upload content_type with CR/LF", "content_type", lambda mc, _: mc.add_case_attachment(
        case_id="c", user_uuid="u", file_data=b"x", filename="x.txt",
        content_type='text/plain\r\nContent-Disposition: form-data; filename="../x.exe"')),
    ("upload content_type ending the headers", "content_type", lambda mc, _: mc.add_case_attachment(
        case_id="c", user_uuid="u", file_data=b"x", filename="x.txt",
        content_type="text/plain\r\n\r\n;injected")),
    # keywords given beside body= were dropped without a word
    ("body= and keywords", "body", lambda mc, _: mc.create_case_v2(
        body={"body": "b", "title": "t", "type": "fc:contact"}, user_uuid="u")),
    # unknown aggregate keywords went to the server, which ignores them
    ("aggregate keyword typo", "siz", lambda mc, _: mc.aggregate_cases(
        name="n", type="terms", field="case.status", siz=1)),
    ("aggregate FalconPy parameters=", "parameters", lambda mc, _: mc.aggregate_cases(
        name="n", type="terms", field="case.status", parameters={"x": 1})),
    # body= and query keywords: FalconPy ignores the keywords; here one was sent as a second
    # query, or the keyword alone failed as "queries.field: Field required"
    ("aggregate body= and filter=", "body", lambda mc, _: mc.aggregate_cases(
        body=[AGG], filter="case.type:'fc:contact'")),
    ("aggregate body= and a keyword query", "body", lambda mc, _: mc.aggregate_cases(
        body=[AGG], field="case.type", name="t", type="terms")),
    # body= problems name body (they named "queries")
    ("aggregate body item missing field", "body.1.field", lambda mc, _: mc.aggregate_cases(
        body=[AGG, {"name": "n", "type": "terms"}])),
    ("aggregate lone body missing name", "body.name", lambda mc, _: mc.aggregate_cases(
        body={"field": "case.status", "type": "terms"})),
    ("aggregate body too deep", "body.0", lambda mc, _: mc.aggregate_cases(
        body=[deep_query(4)])),
    ("aggregate body a string", "body", lambda mc, _: mc.aggregate_cases(
        body="case.status")),  # type: ignore[arg-type]
    # the file part's type: "multipart/form-data" (the Uber class's request type) labelled
    # the file so, without a boundary
    ("upload content_type multipart", "content_type", lambda mc, _: mc.add_case_attachment(
        case_id="c", user_uuid="u", file_data=b"x", file_name="x.png",
        content_type="multipart/form-data")),
    ("upload content_type Multipart/Mixed", "content_type", lambda mc, _: mc.add_case_attachment(
        case_id="c", user_uuid="u", file_data=b"x", file_name="x.png",
        content_type="Multipart/Mixed; boundary=x")),
    # file_data takes bytes or a binary file object (as file= does)
    ("upload file_data text", "file_data", lambda mc, _: mc.add_case_attachment(
        case_id="c", user_uuid="u", file_data="abc", filename="x.txt")),  # type: ignore[arg-type]
    ("upload file_data text-mode file", "file_data", lambda mc, _: mc.add_case_attachment(
        case_id="c", user_uuid="u", file_data=io.StringIO("x"), filename="x.txt")),  # type: ignore[arg-type]
    ("upload file_data file and file", "file_data", lambda mc, _: mc.add_case_attachment(
        case_id="c", user_uuid="u", file_data=io.BytesIO(b"x"), file=io.BytesIO(b"y"),
        filename="x.txt")),
    # a reference without an id was sent, and refused by the server with a 400
    ("create v2 detection without id", "detections.0", lambda mc, _: mc.create_case_v2(
        content="b", title="t", type="fc:detection-support",
        detections=[{"url": "https://falcon.crowdstrike.com/x", "product": "epp"}])),
    ("create v1 incident with a blank id", "incidents.1", lambda mc, _: mc.create_case(
        content="b", title="t", type="fc:incident-support", user_uuid="u",
        incidents=[{"id": "inc:1", "url": ""}, {"id": " ", "url": ""}])),
    ("update detection model without id", "detections.0", lambda mc, _: mc.update_case(
        id="c", detections=[EntityRef(url="https://falcon.crowdstrike.com/x")])),
    ("create v2 body= incident without id", "body.incidents.0", lambda mc, _: mc.create_case_v2(
        body={"body": "b", "title": "t", "type": "fc:contact", "incidents": [{"url": "u"}]})),
]


@pytest.mark.parametrize(("argument", "call"), [(a, c) for _, a, c in CASES],
                         ids=[name for name, _, _ in CASES])
async def test_bad_input_is_refused_before_sending(
    argument: str, call: Call, tmp_path: Path
) -> None:
    router = respx.MockRouter(assert_all_called=False)
    async with AsyncMessageCenter(client_id="a", client_secret="b",
                                  transport=httpx.MockTransport(router.async_handler)) as mc:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # the v1 routes warn first
            with pytest.raises(ValueError, match=f"^{argument}") as info:
                await call(mc, tmp_path)
    assert isinstance(info.value, InvalidArgumentError)
    assert info.value.argument == argument
    assert str(info.value).startswith(argument)
    assert not router.calls, "nothing may reach the wire"


def test_there_are_at_least_forty_cases() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize(("offset", "expected"), [("10", 10), (" 7 ", 7), ("0", 0), (3, 3)])
def test_offset_accepts_ascii_digit_strings(offset: object, expected: int) -> None:
    assert check_offset(offset) == expected


@pytest.mark.parametrize(("limit", "expected"), [("100", 100), (" 7 ", 7), ("500", 500), (3, 3)])
def test_limit_accepts_ascii_digit_strings(limit: object, expected: int) -> None:
    assert check_limit(limit) == expected


async def test_multipart_content_type_is_explained() -> None:
    """``content_type=`` is the file part's type; the message says so."""
    async with AsyncMessageCenter(client_id="a", client_secret="b") as mc:
        with pytest.raises(InvalidArgumentError, match="uploaded file's own type"):
            await mc.add_case_attachment(case_id="c", user_uuid="u", file_data=b"x",
                                         file_name="x.png", content_type="multipart/form-data")


@pytest.mark.parametrize("refs", [{"id": "ldt:1"}, EntityRef(id="ldt:1")])
async def test_a_lone_reference_is_told_to_be_wrapped_in_a_list(refs: object) -> None:
    async with AsyncMessageCenter(client_id="a", client_secret="b") as mc:
        with pytest.raises(InvalidArgumentError, match=r"^detections: .*single .*wrap it in a"):
            await mc.create_case_v2(content="b", title="t", type="fc:contact",
                                    detections=refs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("base_url", "message"),
    [
        ("http://api.crowdstrike.com", "plain http"),
        ("http://10.0.0.5:8080", "plain http"),
        ("ftp://api.crowdstrike.com", "neither a cloud"),
        ("us-3", "neither a cloud"),
        ("", "expected a Cloud"),
        # credentials in the URL replaced the bearer token (and showed in repr)
        ("https://proxyuser:hunter2@api.crowdstrike.com", "without user:password@"),
        ("https://api.crowdstrike.com/?x=1", "without user:password@"),
        ("https://api.crowdstrike.com/#top", "without user:password@"),
    ],
)
def test_base_url_is_checked(base_url: str, message: str) -> None:
    with pytest.raises(InvalidArgumentError, match=message) as info:
        AsyncMessageCenter(client_id="a", client_secret="b", base_url=base_url)
    assert info.value.argument == "base_url"
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("base_url", ["http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:9"])
async def test_plain_http_is_fine_on_loopback(base_url: str) -> None:
    mc = AsyncMessageCenter(client_id="a", client_secret="b", base_url=base_url)
    assert mc.base_url == base_url
    await mc.aclose()


def test_missing_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FALCON_CLIENT_ID", raising=False)
    monkeypatch.delenv("FALCON_CLIENT_SECRET", raising=False)
    with pytest.raises(InvalidArgumentError) as info:
        AsyncMessageCenter()
    assert info.value.argument == "client_id"
    with pytest.raises(InvalidArgumentError) as info:
        AsyncMessageCenter(client_id="x")
    assert info.value.argument == "client_secret"


@pytest.mark.parametrize(("name", "value"), [
    ("max_concurrency", 0), ("max_ids_per_request", -1), ("max_retries", -1),
    ("max_retries", 1.5), ("max_attachment_bytes", 0), ("retry_base_delay", -1),
    # timeouts were never checked: -1 or 0 timed out every request, "5" raised TypeError later
    ("timeout", -1), ("timeout", 0), ("timeout", "5"), ("timeout", float("nan")),
    ("timeout", httpx.Timeout(5, read=-1)),
])
def test_client_options_are_checked(name: str, value: object) -> None:
    options: dict[str, Any] = {name: value}
    with pytest.raises(InvalidArgumentError) as info:
        AsyncMessageCenter(client_id="a", client_secret="b", **options)
    assert info.value.argument == name


@pytest.mark.parametrize(("name", "value"), [
    ("max_retries", 1.5), ("max_retries", -1), ("timeout", -1), ("timeout", "5"),
])
def test_with_options_checks_like_the_constructor(name: str, value: object) -> None:
    mc = AsyncMessageCenter(client_id="a", client_secret="b")
    options: dict[str, Any] = {name: value}
    with pytest.raises(InvalidArgumentError) as info:
        mc.with_options(**options)
    assert info.value.argument == name


def test_timeouts_may_be_none_or_a_full_httpx_timeout() -> None:
    mc = AsyncMessageCenter(client_id="a", client_secret="b", timeout=None)
    assert mc.with_options(timeout=httpx.Timeout(3, pool=None))._options.timeout.pool is None


def test_clouds_are_the_spec_clouds() -> None:
    assert {c.value for c in Cloud} == {"us-1", "us-2", "eu-1", "us-gov-1", "auto"}
    assert AggregateQuery(name="n", type="terms", field="f").name == "n"
