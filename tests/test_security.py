"""Security: no secret leaks, TLS on, no token to another host, safe file names, escaped FQL.

* The client secret and every bearer token stay out of ``repr``/``str``, exception messages and
  tracebacks, and out of the logs at every level, httpx's own DEBUG logs included
  (a real loopback session through success, 401, OAuth failure, 5xx, 429, dropped and refused
  connections).
* The ``falcon_mc`` logger redacts ``Authorization`` headers, bearer tokens and secrets.
* TLS certificates and host names are verified by default.
* The token never goes to another host: redirects are not followed, arguments cannot change the
  host or the route, a hostile ``X-Cs-Region`` cannot move the client.
* Server-supplied attachment names cannot make ``download.save(dir)`` write outside ``dir``.
* User text put into FQL through ``falcon_mc.fql`` matches literally on the emulator.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import ssl
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import anyio
import httpx
import pytest
import respx
import trustme
from anyio.abc import SocketAttribute, SocketStream
from anyio.streams.tls import TLSStream
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from falcon_mc import (
    APIConnectionError,
    APIStatusError,
    AsyncMessageCenter,
    AuthenticationError,
    Cloud,
    InternalServerError,
    OAuthError,
    RateLimitError,
    fql,
)
from falcon_mc._filenames import parse_content_disposition_filename, safe_join
from falcon_mc._lanes import LaneTransport
from falcon_mc._log import RedactingFilter, redact
from falcon_mc.emulator import Emulator

CLIENT_ID = "sec-client"
SECRET = "Sup3r/S3cret+Value=xyz"  # characters that change under URL and form encoding
SECRET_FORMS = (SECRET, quote(SECRET, safe=""), urlencode({"s": SECRET})[2:])
BASIC = base64.b64encode(f"{CLIENT_ID}:{SECRET}".encode()).decode()

API = "https://api.crowdstrike.com"
EVIL = "https://evil.example"
QUERY = "/message-center/queries/cases/v1"
GET_CASES = "/message-center/entities/cases/GET/v1"
CREATE = "/message-center/entities/case/v2"
DOWNLOAD = "/message-center/entities/case-attachment/v1"


# -- helpers ------------------------------------------------------------------------------------
class TokenSpy:
    """Records every bearer token the emulator issues."""

    def __init__(self, emu: Emulator) -> None:
        self.tokens: list[str] = []
        service = emu._service
        original = service.issue_token

        def issue() -> tuple[str, int]:
            token, ttl = original()
            self.tokens.append(token)
            return token, ttl

        service.issue_token = issue  # type: ignore[method-assign]

    def secrets(self) -> list[str]:
        return [*SECRET_FORMS, BASIC, *self.tokens]


def exception_texts(exc: BaseException) -> Iterator[str]:
    """Everything an exception shows: str, repr, args, attributes, traceback, its whole chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield str(current)
        yield repr(current)
        yield repr(current.args)
        yield repr(vars(current))
        yield "".join(traceback.format_exception(current))
        current = current.__cause__ or current.__context__


def log_texts(caplog: pytest.LogCaptureFixture) -> Iterator[str]:
    yield caplog.text
    for record in caplog.records:
        yield record.getMessage()
        yield repr(record.args)
        yield repr(record.__dict__)


def leaks(texts: Iterator[str], secrets: list[str]) -> list[str]:
    found = []
    for text in texts:
        for secret in secrets:
            if secret and secret in text:
                found.append(f"{secret[:6]}... in {text[:200]!r}")
    return found


def capture_all_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    for name in ("falcon_mc", "httpx", "httpcore", "h11", "anyio"):
        caplog.set_level(logging.DEBUG, logger=name)


def served_client(url: str, **kwargs: Any) -> AsyncMessageCenter:
    return AsyncMessageCenter(
        client_id=CLIENT_ID, client_secret=SECRET, base_url=url, retry_base_delay=0, **kwargs
    )


# -- secrets: reprs, exceptions, logs -----------------------------------------------------------
async def test_no_secret_or_token_in_reprs_errors_or_debug_logs_of_a_whole_session(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    capture_all_logs(caplog)
    emu = Emulator.seeded(n_cases=30, seed=3)
    spy = TokenSpy(emu)
    case_id = next(iter(emu.cases))
    attachment_id = emu.add_attachment(case_id, "notes.txt", b"hello")
    errors: list[BaseException] = []
    shown: list[str] = []

    async def expect(kind: type[BaseException], call: Callable[[], Awaitable[Any]]) -> None:
        with pytest.raises(kind) as info:
            await call()
        errors.append(info.value)

    with emu.serve() as url:
        async with served_client(url, max_retries=1) as mc:
            # success, every kind of operation
            page = await mc.query_cases(filter=fql.eq("case.status", "open"), limit=5)
            cases = await mc.get_cases(page.ids or [case_id])
            created = await mc.create_case_v2(content="c", title="t", type="fc:contact")
            await mc.add_case_activity(case_id=case_id, content="hi", user_uuid="u-1")
            await mc.add_case_attachment(case_id=case_id, user_uuid="u-1", file_data=b"x",
                                         filename="a.txt")
            async with mc.download_case_attachment(attachment_id) as download:
                await download.save(tmp_path)
                shown.append(repr(download))
            shown += [repr(page), repr(cases), repr(created), repr(mc.rate_limit)]
            # a revoked token: 401, refreshed once, replayed
            emu._service.tokens.clear()
            await mc.query_cases(limit=1)
            # 401 twice in a row: AuthenticationError
            emu.faults.add("QueryCasesIdsByFilter", "status", status=401, count=2)
            await expect(AuthenticationError, lambda: mc.query_cases(limit=1))
            # 5xx after the retries
            emu.faults.add("GetCaseEntitiesByIDs", "status", status=503, count=2)
            await expect(InternalServerError, lambda: mc.get_cases(case_id))
            # 429 with no retries left
            emu.faults.add("AggregateCases", "rate_limit", retry_after=0.01, count=1)
            await expect(RateLimitError, lambda: mc.with_options(max_retries=0).aggregate_cases(
                {"field": "case.status", "name": "s", "type": "terms"}))
            # connections dropped before and after processing, a truncated reply
            emu.faults.add("CreateCaseV2", "drop_before", count=1)
            await expect(APIConnectionError,
                         lambda: mc.create_case_v2(content="c", title="t", type="fc:contact"))
            emu.faults.add("CaseAddActivity", "drop_after", count=1)
            await expect(APIConnectionError, lambda: mc.add_case_activity(
                case_id=case_id, content="c", user_uuid="u-1"))
            emu.faults.add("QueryCasesIdsByFilter", "truncate", count=2)
            await expect(APIConnectionError, lambda: mc.query_cases(limit=1))
            shown += [repr(mc), str(mc), repr(mc._pipeline.auth), repr(mc.with_options(timeout=1))]
            shown += [repr(vars(mc)), repr(vars(mc._pipeline.auth))]
        # wrong credentials: OAuthError
        emu.settings.credentials = (CLIENT_ID, "the-right-secret")
        async with served_client(url) as bad:
            await expect(OAuthError, lambda: bad.query_cases(limit=1))
            shown.append(repr(bad))
        emu.settings.credentials = None
    # nobody listens any more: connection refused, for the token request and its retries
    async with served_client(url, max_retries=1) as gone:
        await expect(APIConnectionError, lambda: gone.query_cases(limit=1))

    assert len(spy.tokens) >= 2
    assert {type(e).__name__ for e in errors} >= {
        "AuthenticationError", "InternalServerError", "RateLimitError", "APIConnectionError",
        "OAuthError",
    }
    names = {r.name.split(".")[0] for r in caplog.records}
    assert {"falcon_mc", "httpx"} <= names, names  # the DEBUG logs were captured
    secrets = spy.secrets()
    assert leaks(iter(shown), secrets) == []
    assert leaks((t for e in errors for t in exception_texts(e)), secrets) == []
    assert leaks(log_texts(caplog), secrets) == []


@pytest.mark.parametrize("token", ["eyJ.Zq9w7Xk ", "eyJ.Zq9w7Xk\r\nX-Evil: 1", "eyJ.Zq9w7Xké"])
async def test_a_token_the_http_layer_would_refuse_never_reaches_a_message(token: str) -> None:
    """h11 refused the header quoting it, token included ("Illegal header value b'Bearer ..."),
    and a non-ASCII token escaped as a bare UnicodeEncodeError."""
    router = respx.MockRouter(assert_all_called=False)
    router.post(f"{API}/oauth2/token").respond(201, json={"access_token": token,
                                                          "expires_in": 1799})
    query = router.get(f"{API}/message-center/queries/cases/v1")
    async with AsyncMessageCenter(client_id=CLIENT_ID, client_secret=SECRET,
                                  transport=httpx.MockTransport(router.async_handler)) as mc:
        with pytest.raises(OAuthError) as info:
            await mc.query_cases()
    assert "Zq9w7Xk" not in "".join(traceback.format_exception(info.value))
    assert not query.called


async def test_secret_is_masked_in_the_token_manager_state() -> None:
    mc = AsyncMessageCenter(client_id=CLIENT_ID, client_secret=SECRET)
    try:
        state = repr(vars(mc._pipeline.auth))
        assert SECRET not in state
        assert "**********" in state  # pydantic SecretStr
    finally:
        await mc.aclose()


# -- the redacting filter -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Authorization: Bearer abc.def-ghi_123", "abc.def-ghi_123"),
        ("authorization=Bearer abc.def", "abc.def"),
        ("headers={'Authorization': 'Bearer tok123456'}", "tok123456"),
        ('{"authorization": "Basic c2VjcmV0OnZhbHVl"}', "c2VjcmV0OnZhbHVl"),
        ("AUTHORIZATION: basic c2VjcmV0OnZhbHVl", "c2VjcmV0OnZhbHVl"),
        ("sending bearer eyJhbGciOi.payload.sig now", "eyJhbGciOi.payload.sig"),
        ("client_id=x&client_secret=hunter2&member_cid=y", "hunter2"),
        ('{"access_token": "tok-777", "expires_in": 1799}', "tok-777"),
        ("token=revoke-me-123&x=1", "revoke-me-123"),
    ],
)
def test_redact_removes_credentials(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out
    assert "<redacted>" in out


def test_redact_leaves_ordinary_text_alone() -> None:
    text = "GET /message-center/queries/cases/v1 -> 200 in 0.012s (trace id abc-123)"
    assert redact(text) == text


@given(st.text(alphabet="0123456789abcdefABCDEF-_.~+/=", min_size=16, max_size=80),
       st.sampled_from(["Authorization: Bearer {}", "Authorization: {}", "Bearer {}",
                        "'Authorization': 'Bearer {}'", "access_token={}",
                        "client_secret={}", '"access_token": "{}"']))
def test_redact_property_no_credential_survives(token: str, template: str) -> None:
    assert token not in redact(template.format(token))


def test_the_falcon_mc_logger_redacts_records_with_arguments(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="falcon_mc")
    logger = logging.getLogger("falcon_mc")
    assert any(isinstance(f, RedactingFilter) for f in logger.filters)
    logger.debug("request headers %s", {"Authorization": "Bearer tok-abcdef123456"})
    logger.info("form %s", "client_id=a&client_secret=hunter2-secret")
    logger.warning("Authorization: Basic %s", BASIC)
    assert "tok-abcdef123456" not in caplog.text
    assert "hunter2-secret" not in caplog.text
    assert BASIC not in caplog.text
    assert caplog.text.count("<redacted>") == 3


def test_redacting_filter_rewrites_a_record_and_keeps_it() -> None:
    record = logging.LogRecord("falcon_mc", logging.DEBUG, __file__, 1,
                               "sent %s to %s", ("Authorization: Bearer t0k3n-xyz", API), None)
    assert RedactingFilter().filter(record) is True
    assert record.getMessage() == f"sent Authorization: <redacted> to {API}"


# -- TLS ----------------------------------------------------------------------------------------
def _ssl_context(mc: AsyncMessageCenter) -> ssl.SSLContext:
    transport = mc._pipeline.http._transport
    assert isinstance(transport, LaneTransport)
    for lane in transport.lanes:  # every lane uses the one context
        assert lane._ssl_context is transport.ssl_context
    return transport.ssl_context


@pytest.mark.parametrize("cloud", [Cloud.US1, Cloud.US2, Cloud.EU1, Cloud.USGOV1, Cloud.AUTO])
async def test_tls_verification_is_on_by_default(cloud: Cloud) -> None:
    async with AsyncMessageCenter(client_id="a", client_secret="b", base_url=cloud) as mc:
        assert mc.base_url.startswith("https://")
        context = _ssl_context(mc)
        assert context.verify_mode == ssl.CERT_REQUIRED
        assert context.check_hostname is True
        assert context.minimum_version >= ssl.TLSVersion.TLSv1_2


class TLSServer:
    """An HTTP/1.1 server over TLS on loopback, its certificate for ``host`` from a CA of its own
    (which no system store trusts); it answers every request with ``secure``."""

    def __init__(self, ca: trustme.CA, port: int) -> None:
        self.ca = ca
        self.url = f"https://127.0.0.1:{port}/"
        self.connections = 0  # TLS handshakes completed

    def trust(self, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Make the server's CA the one trusted (``SSL_CERT_FILE``, read when a transport is
        made, as httpx does)."""
        self.ca.cert_pem.write_to_path(str(folder / "ca.pem"))
        monkeypatch.setenv("SSL_CERT_FILE", str(folder / "ca.pem"))


@asynccontextmanager
async def tls_server(host: str) -> AsyncIterator[TLSServer]:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(host).configure_cert(context)
    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1")
    server = TLSServer(ca, tcp.extra(SocketAttribute.local_port))  # noqa: S610

    async def serve(stream: SocketStream) -> None:
        async with stream:
            try:
                tls = await TLSStream.wrap(stream, server_side=True, ssl_context=context,
                                           standard_compatible=False)
            except (anyio.BrokenResourceError, anyio.EndOfStream, ssl.SSLError, OSError):
                return  # the client refused the certificate
            server.connections += 1
            pending = b""
            try:
                while True:
                    while b"\r\n\r\n" not in pending:
                        pending += await tls.receive()
                    pending = pending.partition(b"\r\n\r\n")[2]
                    await tls.send(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecure")
            except (anyio.EndOfStream, anyio.BrokenResourceError):
                return

    async with tcp, anyio.create_task_group() as tg:
        tg.start_soon(tcp.serve, serve)
        yield server
        tg.cancel_scope.cancel()


async def test_tls_refuses_a_certificate_no_trusted_authority_signed() -> None:
    transport = LaneTransport(1)
    async with tls_server("127.0.0.1") as server, httpx.AsyncClient(transport=transport) as client:
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            await client.get(server.url)
        assert (server.connections, transport.connections, transport.busy) == (0, 0, 0)


async def test_tls_trusts_the_authority_in_ssl_cert_file_and_keeps_the_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with tls_server("127.0.0.1") as server:
        server.trust(tmp_path, monkeypatch)
        transport = LaneTransport(1)
        async with httpx.AsyncClient(transport=transport) as client:
            replies = [await client.get(server.url) for _ in range(3)]
        assert [r.content for r in replies] == [b"secure"] * 3
        assert server.connections == 1  # one handshake, the connection kept alive


async def test_tls_refuses_a_trusted_certificate_for_another_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with tls_server("api.crowdstrike.com") as server:
        server.trust(tmp_path, monkeypatch)
        transport = LaneTransport(1)
        async with httpx.AsyncClient(transport=transport) as client:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.get(server.url)  # 127.0.0.1 is not the certificate's host
        assert (server.connections, transport.connections) == (0, 0)


async def test_a_callers_transport_is_used_as_given() -> None:
    transport = httpx.AsyncHTTPTransport(verify=True)
    async with AsyncMessageCenter(client_id="a", client_secret="b", transport=transport) as mc:
        assert mc._pipeline.http._transport is transport


# -- the token stays home -----------------------------------------------------------------------
def two_host_router() -> tuple[respx.MockRouter, respx.Route]:
    """The API (token, revoke) and an attacker's host, both mocked; returns (router, evil)."""
    router = respx.MockRouter(assert_all_called=False, assert_all_mocked=True)
    router.post(f"{API}/oauth2/token").respond(
        201, json={"access_token": "tok-never-elsewhere", "expires_in": 1799}
    )
    router.post(f"{API}/oauth2/revoke").respond(200, json={"meta": {}, "resources": []})
    evil = router.route(host="evil.example").respond(200, json={"meta": {}, "resources": []})
    return router, evil


def assert_only_api_host(router: respx.MockRouter) -> None:
    for call in router.calls:
        assert call.request.url.host == "api.crowdstrike.com", call.request.url
        if "authorization" in call.request.headers:
            assert str(call.request.url).startswith(f"{API}/")


async def _download(mc: AsyncMessageCenter) -> None:
    async with mc.download_case_attachment("att-1") as download:
        await download.aread()


OPERATIONS: dict[str, tuple[str, str, Callable[[AsyncMessageCenter], Awaitable[Any]]]] = {
    "query_cases": ("GET", QUERY, lambda mc: mc.query_cases(limit=1)),
    "get_cases": ("POST", GET_CASES, lambda mc: mc.get_cases("c-1")),
    "create_case_v2": ("POST", CREATE,
                       lambda mc: mc.create_case_v2(content="c", title="t", type="fc:contact")),
    "download": ("GET", DOWNLOAD, _download),
}


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("operation", list(OPERATIONS))
async def test_a_redirect_to_another_origin_is_not_followed(status: int, operation: str) -> None:
    router, evil = two_host_router()
    method, path, call = OPERATIONS[operation]
    router.route(method=method, url=f"{API}{path}").respond(
        status, headers={"Location": f"{EVIL}/steal{path}"}
    )
    async with AsyncMessageCenter(client_id=CLIENT_ID, client_secret=SECRET, retry_base_delay=0,
                                  transport=httpx.MockTransport(router.async_handler)) as mc:
        with pytest.raises(APIStatusError) as info:
            await call(mc)
    assert info.value.status_code == status
    assert not evil.called
    assert_only_api_host(router)


@pytest.mark.parametrize(
    "hostile",
    ["https://evil.example", "//evil.example/x", "evil.example:443", "../../oauth2/revoke",
     "@evil.example", "x?id=1#frag", "%2F%2Fevil.example"],
)
async def test_arguments_cannot_change_the_host_or_the_route(hostile: str) -> None:
    router, evil = two_host_router()
    router.get(f"{API}{QUERY}").respond(200, json={"meta": {}, "resources": []})
    router.post(f"{API}{GET_CASES}").respond(200, json={"meta": {}, "resources": []})
    router.get(f"{API}{DOWNLOAD}").respond(200, content=b"x")
    async with AsyncMessageCenter(client_id=CLIENT_ID, client_secret=SECRET,
                                  transport=httpx.MockTransport(router.async_handler)) as mc:
        await mc.query_cases(filter=fql.eq("case.title", hostile))
        await mc.get_cases([hostile])
        async with mc.download_case_attachment(hostile) as download:
            await download.aread()
    assert not evil.called
    assert_only_api_host(router)
    paths = {call.request.url.path for call in router.calls}
    assert paths <= {"/oauth2/token", "/oauth2/revoke", QUERY, GET_CASES, DOWNLOAD}


@pytest.mark.parametrize(
    "region", ["evil.example", "https://evil.example", "us-1.evil.example", "", "us-1/../x"]
)
async def test_a_hostile_region_header_cannot_move_the_client(region: str) -> None:
    router, evil = two_host_router()
    router.post(f"{API}/oauth2/token").respond(
        201, json={"access_token": "tok-1", "expires_in": 1799}, headers={"X-Cs-Region": region}
    )
    router.get(f"{API}{QUERY}").respond(200, json={"meta": {}, "resources": []})
    async with AsyncMessageCenter(client_id=CLIENT_ID, client_secret=SECRET, base_url=Cloud.AUTO,
                                  transport=httpx.MockTransport(router.async_handler)) as mc:
        await mc.query_cases(limit=1)
        assert mc.base_url == API
    assert not evil.called
    assert_only_api_host(router)


# -- attachment names from the server -----------------------------------------------------------
HOSTILE_NAMES = [
    "../../evil.txt",
    "..\\..\\evil.txt",
    "....//....//evil.txt",
    "/etc/evil.txt",
    "C:\\Windows\\evil.txt",
    "..",
    ".",
    "",
    ".bashrc",
    "CON.txt",
    "evil.txt/",
    "caf\u00e9/../../evil.txt",  # latin-1: the emulator can send it as is
]


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir()}


@pytest.fixture
def nest(tmp_path: Path) -> Path:
    """``tmp_path/a/b/dl``: the download folder, with room above it to escape into."""
    target = tmp_path / "a" / "b" / "dl"
    target.mkdir(parents=True)
    return target


@pytest.mark.parametrize("name", [*HOSTILE_NAMES, "<absolute>"])
async def test_served_attachment_names_cannot_escape_the_folder(
    name: str, tmp_path: Path, nest: Path
) -> None:
    if name == "<absolute>":
        name = str(tmp_path / "abs-evil.txt")
    emu = Emulator.seeded(n_cases=1, seed=1)
    attachment_id = emu.add_attachment(next(iter(emu.cases)), name, b"payload")
    with emu.serve() as url:
        async with served_client(url) as mc, mc.download_case_attachment(attachment_id) as dl:
            saved = await dl.save(nest)
    assert saved.parent == nest.resolve()
    assert saved.read_bytes() == b"payload"
    assert tree(tmp_path) == {str(saved.relative_to(tmp_path.resolve()))}


@pytest.mark.parametrize(
    "disposition",
    [
        "attachment; filename*=UTF-8''..%2F..%2Fevil.txt",
        "attachment; filename*=UTF-8''%EF%BC%8E%EF%BC%8E%EF%BC%8Fevil.txt",  # fullwidth ../
        "attachment; filename*=UTF-8''%E2%80%AEtxt.exe",  # right-to-left override
        "attachment; filename*=UTF-8''..%5C..%5Cevil.txt",
        "attachment; filename*=UTF-8''%00evil.txt",
        "attachment; filename=\"evil.txt\x00../../x\"",
        "attachment; filename=\"..\u2215..\u2215evil.txt\"",  # division slash
        "attachment; filename=\"\u2025/evil.txt\"",  # two-dot leader
        "attachment; filename=../../evil.txt; filename*=UTF-8''%2Fetc%2Fpasswd",
    ],
)
async def test_hostile_content_disposition_cannot_escape_the_folder(
    disposition: str, tmp_path: Path, nest: Path
) -> None:
    router, _ = two_host_router()
    router.get(f"{API}{DOWNLOAD}").mock(
        return_value=httpx.Response(200, content=b"data", headers=[
            (b"Content-Type", b"text/plain"),
            (b"Content-Disposition", disposition.encode("utf-8")),
        ])
    )
    async with (
        AsyncMessageCenter(client_id=CLIENT_ID, client_secret=SECRET,
                           transport=httpx.MockTransport(router.async_handler)) as mc,
        mc.download_case_attachment("att-1") as download,
    ):
        saved = await download.save(nest)
    assert saved.parent == nest.resolve()
    assert "\x00" not in saved.name and "/" not in saved.name
    assert tree(tmp_path) == {str(saved.relative_to(tmp_path.resolve()))}


_TRICKS = st.sampled_from(
    ["../", "..\\", "/", "\\", "..", "\x00", "\uff0e\uff0e\uff0f", "\u2025", "\u202e", "\u200b",
     "C:", "~", "%2F", "%2e%2e", "\"", ";", "'", "NUL", " ", "\t"]
)
hostile_names = st.lists(st.one_of(_TRICKS, st.text(max_size=4)), max_size=10).map("".join)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=200)
@given(hostile_names, st.sampled_from(["quoted", "token", "extended"]))
@example("../../../../etc/passwd", "extended")
@example("/etc/passwd", "quoted")
def test_any_content_disposition_name_lands_inside_the_folder(
    tmp_path: Path, name: str, form: str
) -> None:
    if form == "quoted":
        header = 'attachment; filename="{}"'.format(name.replace("\\", "\\\\").replace('"', '\\"'))
    elif form == "token":
        header = f"attachment; filename={name}"
    else:
        header = f"attachment; filename*=UTF-8''{quote(name, safe='')}"
    parsed = parse_content_disposition_filename(header)
    target = safe_join(tmp_path, parsed or "", fallback="attachment-1.bin")
    assert target.parent == tmp_path.resolve()
    assert target.name not in ("", ".", "..")


@pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")
@pytest.mark.parametrize("guessed", [False, True])
async def test_a_planted_part_symlink_cannot_redirect_the_download(
    tmp_path: Path, nest: Path, monkeypatch: pytest.MonkeyPatch, guessed: bool
) -> None:
    """A link planted where the part file goes is never written through: the part file's name
    is random, and even a guessed one is refused (created with O_EXCL | O_NOFOLLOW)."""
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    planted = nest / ("report.txt.0badc0de.part" if guessed else "report.txt.part")
    planted.symlink_to(victim)
    monkeypatch.setattr(secrets, "token_hex", lambda n: "0badc0de")
    emu = Emulator.seeded(n_cases=1, seed=1)
    attachment_id = emu.add_attachment(next(iter(emu.cases)), "report.txt", b"attacker data")
    async with (
        AsyncMessageCenter(client_id="a", client_secret="b", base_url="https://emulator.invalid",
                           transport=emu.transport()) as mc,
        mc.download_case_attachment(attachment_id) as download,
    ):
        if guessed:
            with pytest.raises(FileExistsError):
                await download.save(nest)
        else:
            saved = await download.save(nest)
            assert saved == nest.resolve() / "report.txt"
            assert saved.read_bytes() == b"attacker data"
            assert not saved.is_symlink()
    assert victim.read_bytes() == b"precious"
    assert planted.is_symlink()  # left alone, not followed
    assert sorted(p.name for p in nest.iterdir()) == sorted(
        [planted.name] + ([] if guessed else ["report.txt"])
    )


# -- FQL escaping, end to end -------------------------------------------------------------------
FIXED_TITLES = [
    "it's", "it\\'s", "a\\b", "a\\\\b", "a*b", "aXb", "a+b", "a b", "a,b", "a'b", "(a)", "[a]",
    "a:b", "a:!b", "!a", "~a", "'", "\\", "*", "", "case.status:'open'", "x',case.title:'y",
    "x' + case.status:'open", "%27", "a%2Bb", "é", "É", "\u00a0", "line\nbreak", "\x00",
]

fql_texts = st.one_of(
    st.text(st.sampled_from("'\"\\+,()[]!~:<>= %&#?;aZé\n\t"), max_size=12),
    st.text(st.characters(codec="utf-8", exclude_characters="*"), max_size=20),
).filter(lambda t: "*" not in t)


async def _titles_matching(text: str) -> tuple[set[str], set[str]]:
    emu = Emulator()
    titles = {*FIXED_TITLES, text, text + "x", "x" + text, text.upper(), text.lower(),
              text + "'", "'" + text, text + "\\", f"{text},{text}"}
    ids = {emu.add_case(title=t, status="open"): t for t in titles}
    async with AsyncMessageCenter(client_id="a", client_secret="b",
                                  base_url="https://emulator.invalid", transport=emu.transport(),
                                  retry_base_delay=0) as mc:
        got = [i async for i in mc.query_cases(filter=fql.eq("case.title", text))]
        both = await mc.query_cases(filter=fql.eq("case.title", text) & fql.eq("case.status", "closed"))
    assert both.ids == []  # the text cannot turn the AND into an OR
    expected = {i for i, t in ids.items() if t.casefold() == text.casefold()}
    return set(got), expected


@settings(max_examples=80, deadline=None)
@given(fql_texts)
@example("x',case.title:'y")
@example("' , case.status:'open")
@example("a\\")
@example("\\'")
@example("a+b")
@example("a%2Bb")
@example("")
@example("\ue000")  # the emulator's marker for an escaped star used to be this character
def test_fql_eq_matches_exactly_the_titles_equal_to_the_text(text: str) -> None:
    got, expected = anyio.run(_titles_matching, text)
    assert got == expected
    assert expected  # the case titled exactly ``text`` is always among them


async def test_an_escaped_star_is_literal_on_the_emulator() -> None:
    got, expected = await _titles_matching("a*b")
    assert got == expected
