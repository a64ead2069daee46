"""The token manager: failures shared by waiting tasks, early refresh, autodiscovery, redaction."""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Coroutine

import anyio
import httpx
import pytest
import respx
from pydantic import SecretStr

from falcon_mc import APIConnectionError, APITimeoutError, AsyncMessageCenter, Cloud, OAuthError
from falcon_mc._auth import REFRESH_RETRY, TokenManager
from falcon_mc._cli._core import describe_error
from falcon_mc._log import redact
from falcon_mc._retry import RetryPolicy
from falcon_mc.emulator import Emulator

from .conftest import BASE, SECRET, envelope

CREATE = "/message-center/entities/case/v2"
QUERY = "/message-center/queries/cases/v1"
EU1 = "https://api.eu-1.crowdstrike.com"
BASIC = base64.b64encode(f"cid-123:{SECRET}".encode()).decode()

Handler = Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]


def granted(token: str, expires_in: float = 1799) -> httpx.Response:
    return httpx.Response(201, json={"access_token": token, "expires_in": expires_in})


def manager(http: httpx.AsyncClient, now: list[float] | None = None) -> TokenManager:
    """A token manager on ``http`` with zero retry delays; ``now[0]`` is its clock, if given."""
    clock = (lambda: now[0]) if now is not None else anyio.current_time
    return TokenManager(
        http=http, client_id="cid-123", client_secret=SecretStr(SECRET), member_cid=None,
        autodiscover=False, policy=RetryPolicy(base_delay=0), clock=clock,
    )


def http_for(handler: Handler) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=BASE, transport=httpx.MockTransport(handler))


# -- 1: a failed token request sent nothing on the caller's behalf ---------------------------------

@pytest.mark.parametrize(
    ("failure", "raised"),
    [(httpx.ConnectError, APIConnectionError), (httpx.ConnectTimeout, APITimeoutError),
     (httpx.ReadTimeout, APITimeoutError)],
)
async def test_a_write_whose_token_request_failed_was_not_applied(
    router: respx.MockRouter, failure: type[httpx.TransportError], raised: type[Exception]
) -> None:
    router.routes["token"].mock(side_effect=failure("down"))
    write = router.post(CREATE).respond(200, json=envelope([{"id": "c", "path": "p"}]))
    async with AsyncMessageCenter(client_id="cid-123", client_secret=SECRET, retry_base_delay=0,
                                  transport=httpx.MockTransport(router.async_handler)) as mc:
        with pytest.raises(raised) as info:
            await mc.create_case_v2(title="t", content="c", type="fc:contact")
    assert type(info.value) is raised
    assert info.value.may_have_been_applied is False  # type: ignore[attr-defined]
    assert write.call_count == 0


# -- 2: tasks waiting for a fetch that fails share its failure -------------------------------------

@pytest.mark.parametrize(("status", "requests"), [(403, 1), (503, 4)])
async def test_tasks_waiting_for_a_failed_fetch_share_its_failure(
    status: int, requests: int
) -> None:
    release = anyio.Event()
    sent: list[int] = []

    async def token(request: httpx.Request) -> httpx.Response:
        sent.append(1)
        await release.wait()
        return httpx.Response(status, json=envelope())

    failures: list[OAuthError] = []

    async def call(tokens: TokenManager) -> None:
        try:
            await tokens.get()
        except OAuthError as exc:
            failures.append(exc)

    async with http_for(token) as http:
        tokens = manager(http)
        async with anyio.create_task_group() as tg:
            for _ in range(50):
                tg.start_soon(call, tokens)
            await anyio.wait_all_tasks_blocked()  # one fetching, 49 queued on the lock
            release.set()
        assert len(sent) == requests  # one fetch (with its retries), not fifty
        assert len(failures) == 50
        assert {exc.status_code for exc in failures} == {status}
        assert len({id(exc) for exc in failures}) == 50  # each task raises its own copy
        with pytest.raises(OAuthError):  # a call made after the failure tries again
            await tokens.get()
        assert len(sent) == 2 * requests


async def test_a_waiter_fetches_itself_when_the_fetching_task_is_cancelled() -> None:
    replies = iter([None, granted("t1")])

    async def token(request: httpx.Request) -> httpx.Response:
        reply = next(replies)
        if reply is None:
            await anyio.sleep_forever()
        assert reply is not None
        return reply

    got: list[str] = []
    first = anyio.CancelScope()

    async def call(tokens: TokenManager, scope: anyio.CancelScope) -> None:
        with scope:
            got.append(await tokens.get())

    async with http_for(token) as http:
        tokens = manager(http)
        async with anyio.create_task_group() as tg:
            tg.start_soon(call, tokens, first)  # fetches, and hangs
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(call, tokens, anyio.CancelScope())  # waits on the lock
            await anyio.wait_all_tasks_blocked()
            first.cancel()
    assert got == ["t1"]


# -- 2b: a refused token request says what its status means ---------------------------------------

CREDENTIALS = "check the API client id and secret"


@pytest.mark.parametrize(
    ("status", "says", "exit_code"),
    [
        (400, CREDENTIALS, 3),
        (401, CREDENTIALS, 3),
        (403, CREDENTIALS, 3),
        (429, "the token endpoint is rate limiting", 6),
        (500, "the token endpoint is unavailable", 1),
        (503, "the token endpoint is unavailable", 1),
        (308, "answered unexpectedly with HTTP 308, a redirect: check the base URL", 3),
        (404, "answered unexpectedly with HTTP 404", 3),
    ],
)
async def test_a_refused_token_request_is_worded_by_its_status(
    status: int, says: str, exit_code: int
) -> None:
    async def token(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=envelope(), headers={"X-CS-TRACEID": "tr-9"})

    async with http_for(token) as http:
        with pytest.raises(OAuthError) as info:
            await manager(http).get()
    message = str(info.value)
    assert says in message
    assert f"HTTP {status}" in message
    if status not in (400, 401, 403):  # not a credentials problem: no credentials hint
        assert CREDENTIALS not in message
    assert (info.value.status_code, info.value.trace_id) == (status, "tr-9")
    assert describe_error(info.value)[0] == exit_code  # the CLI maps it by its status


# -- 3: a failed early refresh keeps the still valid token -----------------------------------------

async def test_a_failed_early_refresh_keeps_the_valid_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [1000.0]
    replies = [granted("t1")]
    sent: list[int] = []

    async def token(request: httpx.Request) -> httpx.Response:
        sent.append(1)
        return replies.pop(0) if replies else httpx.Response(503, json=envelope())

    async with http_for(token) as http:
        tokens = manager(http, now)
        assert await tokens.get() == "t1"
        now[0] += 1799 - 30  # refresh due, 30 s before the hard expiry
        with caplog.at_level(logging.WARNING, logger="falcon_mc"):
            assert await tokens.get() == "t1"
        assert len(sent) == 1 + 1  # an early refresh makes one request: the token serves
        [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert "token refresh failed" in record.getMessage()
        assert "t1" not in record.getMessage() and SECRET not in record.getMessage()
        assert await tokens.get() == "t1"  # not tried again at once
        assert len(sent) == 2
        now[0] += REFRESH_RETRY  # tried again later, and this time it works
        replies.append(granted("t2"))
        assert await tokens.get() == "t2"
        now[0] += 1799  # t2 has expired: a failure is raised now
        with pytest.raises(OAuthError):
            await tokens.get()


async def test_an_early_refresh_does_not_pause_for_a_retry_after() -> None:
    # the call that finds the refresh due has a valid token: it does not wait out a 429's pause
    now = [1000.0]
    sent: list[int] = []

    async def token(request: httpx.Request) -> httpx.Response:
        sent.append(1)
        if len(sent) == 1:
            return granted("t1")
        return httpx.Response(429, json=envelope(), headers={"Retry-After": "60"})

    async with http_for(token) as http:
        tokens = manager(http, now)
        assert await tokens.get() == "t1"
        now[0] += 1799 - 30
        with anyio.fail_after(5):
            assert await tokens.get() == "t1"
    assert len(sent) == 2


async def test_a_token_expiring_during_its_early_refresh_is_fetched_on() -> None:
    # the one request of an early refresh fails after the token's hard expiry: the call that
    # started it needs a token now, and its retries are still there
    now = [1000.0]
    sent: list[int] = []

    async def token(request: httpx.Request) -> httpx.Response:
        sent.append(1)
        if len(sent) == 1:
            return granted("t1")
        if len(sent) == 2:
            now[0] += 60  # the reply comes after t1 expired
            return httpx.Response(503, json=envelope())
        return granted("t2")

    async with http_for(token) as http:
        tokens = manager(http, now)
        assert await tokens.get() == "t1"
        now[0] += 1799 - 30  # refresh due, 30 s before the hard expiry
        assert await tokens.get() == "t2"
    assert len(sent) == 3


async def test_closing_revokes_the_valid_token_while_its_early_refresh_hangs() -> None:
    now = [1000.0]
    revoked: list[str] = []
    refreshing = anyio.Event()

    async def token(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/oauth2/revoke":
            revoked.append(request.content.decode())
            return httpx.Response(200, json=envelope())
        if not revoked and refreshing.is_set():
            await anyio.sleep_forever()  # the early refresh gets no reply
        refreshing.set()
        return granted("t1")

    async with http_for(token) as http:
        tokens = manager(http, now)
        assert await tokens.get() == "t1"
        now[0] += 1799 - 30
        async with anyio.create_task_group() as tg:
            tg.start_soon(tokens.get)  # starts the refresh, which hangs
            await anyio.wait_all_tasks_blocked()
            with anyio.fail_after(10):
                await tokens.revoke()
            tg.cancel_scope.cancel()
    assert revoked == ["token=t1"]


async def test_others_use_the_valid_token_while_it_is_refreshed() -> None:
    now = [1000.0]
    release = anyio.Event()
    replies = iter(["t1", "t2"])

    async def token(request: httpx.Request) -> httpx.Response:
        reply = next(replies)
        if reply == "t2":
            await release.wait()
        return granted(reply)

    got: list[str] = []

    async def call(tokens: TokenManager) -> None:
        got.append(await tokens.get())

    async with http_for(token) as http:
        tokens = manager(http, now)
        assert await tokens.get() == "t1"
        now[0] += 1799 - 30
        async with anyio.create_task_group() as tg:
            tg.start_soon(call, tokens)  # refreshes, and waits for it
            await anyio.wait_all_tasks_blocked()
            tg.start_soon(call, tokens)
            await anyio.wait_all_tasks_blocked()
            assert got == ["t1"]  # the second call did not wait for the refresh
            release.set()
    assert got == ["t1", "t2"]


# -- 4: autodiscovery revokes the first cloud's token ----------------------------------------------

@pytest.mark.parametrize("revoke_fails", [False, True])
async def test_autodiscovery_revokes_the_first_token(
    revoke_fails: bool, caplog: pytest.LogCaptureFixture
) -> None:
    mock = respx.MockRouter(assert_all_called=False)
    in_eu1 = {"X-Cs-Region": "eu-1"}
    for base, token in ((BASE, "TOKEN-US1"), (EU1, "TOKEN-EU1")):
        mock.post(f"{base}/oauth2/token").respond(
            201, json={"access_token": token, "expires_in": 1799}, headers=in_eu1)
    us1_revoke = mock.post(f"{BASE}/oauth2/revoke")
    if revoke_fails:
        us1_revoke.mock(side_effect=httpx.ConnectError("down"))
    else:
        us1_revoke.respond(200, json=envelope())
    eu1_revoke = mock.post(f"{EU1}/oauth2/revoke").respond(200, json=envelope())
    mock.get(f"{EU1}{QUERY}").respond(200, json=envelope(["a"]))
    with caplog.at_level(logging.DEBUG, logger="falcon_mc"):
        async with AsyncMessageCenter(client_id="cid-123", client_secret=SECRET,
                                      base_url=Cloud.AUTO,
                                      transport=httpx.MockTransport(mock.async_handler)) as mc:
            assert (await mc.query_cases()).ids == ["a"]
    assert us1_revoke.call_count == 1
    revoked = us1_revoke.calls.last.request
    assert dict(httpx.QueryParams(revoked.content.decode())) == {"token": "TOKEN-US1"}
    assert revoked.headers["Authorization"].startswith("Basic ")
    assert eu1_revoke.call_count == 1
    assert dict(httpx.QueryParams(eu1_revoke.calls.last.request.content.decode())) == {
        "token": "TOKEN-EU1"}
    assert not [r for r in caplog.records if r.levelno > logging.INFO]
    assert all("TOKEN-US1" not in r.getMessage() for r in caplog.records)


# -- 5: redaction of Authorization headers in every form -------------------------------------------

@pytest.mark.parametrize(
    ("text", "redacted"),
    [
        ("Authorization: Bearer eyJ.abc", "Authorization: <redacted>"),
        (f"Authorization: Basic {BASIC}", "Authorization: <redacted>"),
        (f"('authorization', 'Basic {BASIC}')", "('authorization', '<redacted>')"),
        (f"[(b'Authorization', b'Basic {BASIC}')]", "[(b'Authorization', b'<redacted>')]"),
        ("{'Authorization': b'Bearer eyJ.abc'}", "{'Authorization': b'<redacted>'}"),
        ("{'token': b'eyJ.abc'}", "{'token': b'<redacted>'}"),
        ('{"access_token": "eyJ.abc", "expires_in": 1799}',
         '{"access_token": "<redacted>", "expires_in": 1799}'),
        ("client_id=a&client_secret=hunter2&x=1", "client_id=a&client_secret=<redacted>&x=1"),
        (f"sent Basic {BASIC} to revoke", "sent Basic <redacted> to revoke"),
        ("basic auth failed", "basic auth failed"),
        ("token fetched, expires in 1799 s", "token fetched, expires in 1799 s"),
    ],
)
def test_redaction_forms(text: str, redacted: str) -> None:
    assert redact(text) == redacted


def test_the_logger_redacts_a_basic_header_list(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="falcon_mc"):
        headers = [(b"Authorization", f"Basic {BASIC}".encode())]
        logging.getLogger("falcon_mc").debug("headers %s", headers)
    [record] = caplog.records
    assert BASIC not in record.getMessage() and BASIC not in caplog.text


# -- the client closed while a token is on its way -------------------------------------------------

async def test_a_token_fetched_while_the_client_closes_is_revoked() -> None:
    # aclose() revoked the token it had (none yet), then the fetch in flight stored a live one
    emu = Emulator.seeded(n_cases=3, seed=1)
    emu.faults.add(operation="oauth2", kind="latency", delay=0.2)
    mc = AsyncMessageCenter(client_id="a", client_secret="b", base_url="https://emulator.invalid",
                            transport=emu.transport())
    errors: list[Exception] = []

    async def call() -> None:
        try:
            await mc.query_cases()
        except Exception as exc:  # checked below
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(call)
        await anyio.wait_all_tasks_blocked()  # the token request is in flight
        await mc.aclose()
    assert emu.stats.tokens_issued == 1
    assert emu._service.tokens == {}  # revoked
    assert [type(e) for e in errors] == [APIConnectionError]
    assert not errors[0].may_have_been_applied  # type: ignore[attr-defined]
