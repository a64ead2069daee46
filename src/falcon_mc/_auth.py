"""OAuth2 client-credentials token manager.

One token per client, shared by every task: the first task that finds no usable token fetches
one; the others follow that fetch and share its outcome: its token, or its failure, which they
re-raise instead of fetching again (a call made after the failure was delivered tries again).

A fetch runs under the options of the call that makes it (``with_options``): its timeout for
each token request, its ``max_retries``. A task that follows another's fetch holds it to its own
options, as if the fetch were its own, started when that one started: it gives up when a token
request outlasts what its own timeout allows one request (every phase to its limit), or when the
fetch fails once more than its own ``max_retries`` allows, raising what its own fetch would
have. When the fetch gives up where the follower's own would have gone on (the fetching call
allowed fewer retries, or a shorter timeout), the follower carries the fetch on under its own
options, the failed requests its own would have seen counting against its retries: it is not
handed a failure that only another call's stricter options caused, and costs no more requests,
nor much more time, than its own fetch would have (rather than a wait of its own followed by a
fetch from the start, which could take twice what its options allow).

A token has a hard expiry (its ``expires_in``) and a refresh time ``refresh_margin`` seconds
earlier, or halfway through a lifetime shorter than twice that. While an early refresh is in
flight the other tasks keep using the current token; if that refresh fails, the still valid token
is kept (a WARNING is logged) and the refresh is tried again ``REFRESH_RETRY`` seconds later.

After a 401 the pipeline calls ``invalidate(token)`` with the token it used; only if that is
still the current token is it dropped (invalidate by compare), so fifty tasks that all saw a 401
cause one refresh, not fifty.
"""

from __future__ import annotations

import copy
import math
import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import anyio
import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, field_validator

from ._cloud import Cloud, cloud_named
from ._exceptions import APIConnectionError, APITimeoutError, FalconError, OAuthError
from ._log import logger
from ._responses import unhook_stream
from ._retry import RetryPolicy
from .models import parse_retry_after

__all__ = ["CallOptions", "TokenManager"]

TOKEN_PATH = "/oauth2/token"  # noqa: S105 - a route, not a secret
REVOKE_PATH = "/oauth2/revoke"
REFRESH_RETRY = 10.0
"""Seconds after a failed early refresh before the next one (the current token serves meanwhile)."""


#: RFC 6750's token68: what a bearer token may hold. Anything else (a space, CR/LF, non-ASCII)
#: would be refused by the HTTP layer, whose error message quotes the header, token included.
_TOKEN68 = re.compile(r"[A-Za-z0-9._~+/-]+=*")


class _TokenReply(BaseModel):
    model_config = ConfigDict(extra="allow")
    access_token: SecretStr
    expires_in: float = 1799.0

    @field_validator("access_token")
    @classmethod
    def _token68(cls, token: SecretStr) -> SecretStr:
        if not _TOKEN68.fullmatch(token.get_secret_value()):
            raise ValueError("not a bearer token")  # pydantic's message never shows the value
        return token
    token_type: str = "bearer"  # noqa: S105


_TOKEN_REPLY = _TokenReply.model_validate_json


class CallOptions(Protocol):
    """What bounds a token fetch: the options of the call that needs the token (the
    pipeline's ``Options``)."""

    @property
    def timeout(self) -> httpx.Timeout:
        """The timeout of each token request."""

    @property
    def policy(self) -> RetryPolicy:
        """How often a failed token request is retried, and the back-off between."""


@dataclass(frozen=True)
class _Defaults:
    """The client's own options, for a :meth:`TokenManager.get` given none."""

    timeout: httpx.Timeout
    policy: RetryPolicy


@dataclass(frozen=True)
class _Granted:
    """A token reply: the token, when it was asked for, and the cloud it names."""

    reply: _TokenReply
    sent_at: float
    region: str | None


class _Retryable(Exception):
    """Internal: a token request failed in a way another attempt may mend (no reply, 429,
    5xx); ``error`` is what is raised when no attempt is left."""

    def __init__(self, error: FalconError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


class _Progress:
    """A token fetch in flight, as the tasks waiting for it follow it: the timeout of its
    requests, when the one in flight was sent, and its failed attempts as they come."""

    def __init__(self, timeout: httpx.Timeout) -> None:
        self.timeout = timeout
        self.sent_at: float | None = None  # when the request in flight was sent (None: none is)
        self.failures: list[_Retryable] = []
        self.ended = False
        self.changed = anyio.Event()  # set, and replaced, at every change

    def _notify(self) -> None:
        event, self.changed = self.changed, anyio.Event()
        event.set()

    def send(self) -> None:
        """A token request is sent."""
        self.sent_at = anyio.current_time()
        self._notify()

    def answered(self) -> None:
        """The request in flight has its reply, or failed."""
        self.sent_at = None
        self._notify()

    def fail(self, failed: _Retryable) -> None:
        """An attempt failed in a way a retry may mend."""
        self.failures.append(failed)
        self._notify()

    def end(self) -> None:
        """The fetch is over (done, failed or cancelled)."""
        self.ended = True
        self._notify()


@dataclass
class _Tally:
    """What a waiting task has seen of the fetches it followed."""

    failed: int = 0  # the failed attempts its own fetch would have seen fail too
    retry_after: float | None = None  # the wait the last failure asked for (a 429's)


def _phases(timeout: httpx.Timeout) -> tuple[float, ...]:
    """The phases of ``timeout`` (pool, connect, write, read) in seconds; ``inf``: no limit."""
    phases = (timeout.pool, timeout.connect, timeout.write, timeout.read)
    return tuple(math.inf if phase is None else phase for phase in phases)


def _request_bound(timeout: httpx.Timeout) -> float:
    """The longest one token request may take under ``timeout``: every phase to its limit."""
    return sum(_phases(timeout))


def _allows_longer(mine: httpx.Timeout, theirs: httpx.Timeout) -> bool:
    """Whether ``mine`` lets some phase of a request run longer than ``theirs`` does."""
    return any(a > b for a, b in zip(_phases(mine), _phases(theirs), strict=True))


def _timed_out() -> APITimeoutError:
    """A token request gave up waiting (nothing was sent on the caller's behalf yet)."""
    return APITimeoutError("token request timed out", may_have_been_applied=False)


def _refused(status: int, trace_id: str | None) -> OAuthError:
    """The error for a token reply with an error ``status``, worded by what it says."""
    if status in (400, 401, 403):
        message = (f"token request refused with HTTP {status}: check the API client id and "
                   "secret and that the client exists in this cloud")
    elif status == 429:
        message = ("token request refused with HTTP 429: the token endpoint is rate limiting "
                   "this API client; try again later")
    elif status >= 500:
        message = (f"token request failed with HTTP {status}: the token endpoint is "
                   "unavailable; try again later")
    elif 300 <= status < 400:
        message = (f"token endpoint answered unexpectedly with HTTP {status}, a redirect: check "
                   "the base URL (the tenant's cloud, or Cloud.AUTO)")
    else:
        message = f"token endpoint answered unexpectedly with HTTP {status}"
    return OAuthError(message, status_code=status, trace_id=trace_id)


def _parse(response: httpx.Response, trace_id: str | None) -> _TokenReply:
    """The token of a 200/201 reply; an OAuthError if it has none usable."""
    try:
        return _TOKEN_REPLY(response.content)
    except ValidationError:
        raise OAuthError(
            "token endpoint sent a reply without a usable access token",
            status_code=response.status_code,
            trace_id=trace_id,
        ) from None


def _reason(exc: FalconError) -> str:
    """Why a token request failed, for a log line: the exception type and HTTP status."""
    status = getattr(exc, "status_code", None)
    return type(exc).__name__ + (f" {status}" if status is not None else "")


async def _next_change(progress: _Progress, bound: float) -> None:
    """Wait for ``progress`` to change; raise if its request in flight outlasts ``bound``."""
    changed = progress.changed
    deadline = math.inf if progress.sent_at is None else progress.sent_at + bound
    with anyio.CancelScope(deadline=deadline) as scope:
        await changed.wait()
    if scope.cancelled_caught:
        raise _timed_out()


class TokenManager:
    """Fetches, caches, refreshes and revokes the bearer token of one client."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        client_id: str,
        client_secret: SecretStr,
        member_cid: str | None,
        autodiscover: bool,
        policy: RetryPolicy,
        refresh_margin: float = 60.0,
        clock: Callable[[], float] = anyio.current_time,
    ) -> None:
        self._http = http
        self._client_id = client_id
        self._client_secret = client_secret
        self._member_cid = member_cid
        self._autodiscover = autodiscover
        self._defaults = _Defaults(timeout=http.timeout, policy=policy)
        self._refresh_margin = refresh_margin
        self._clock = clock
        self._token: SecretStr | None = None
        self._expires_at = 0.0  # hard expiry: the token is refused from then on
        self._refresh_at = 0.0  # the time to fetch its successor
        self._generation = 0  # fetches finished, successful or not
        self._error: FalconError | None = None  # the last fetch's failure (None: it succeeded)
        self._retryable = False  # whether that failure was one more attempts may mend
        self._in_flight: _Progress | None = None  # the fetch in flight
        self._closed = False  # revoked for good (the client was closed)
        self._rng = random.Random()
        self.fetch_count = 0

    def __repr__(self) -> str:
        state = "valid" if self._alive() else "none"
        return f"TokenManager(client_id={self._client_id!r}, token=<{state}>)"

    def _alive(self) -> bool:
        """Whether there is a token and it has not reached its hard expiry."""
        return self._token is not None and self._clock() < self._expires_at

    def _current(self, *, refreshing: bool) -> str | None:
        """The token, if it can be used without a fetch: before its refresh time, or before its
        hard expiry while another task is ``refreshing`` it."""
        if self._token is None:
            return None
        now = self._clock()
        if now < self._refresh_at or (refreshing and now < self._expires_at):
            return self._token.get_secret_value()
        return None

    async def get(self, options: CallOptions | None = None) -> str:
        """A valid bearer token, fetching one if needed (one fetch however many tasks ask).

        ``options`` (the calling view's; the client's if not given) bound the fetch this task
        makes, and its wait for one in flight: see the module docstring. Tasks that waited for
        a fetch that failed re-raise its failure rather than fetch again, unless their own
        options would have gone on where it gave up.
        """
        token = self._current(refreshing=self._in_flight is not None)
        if token is not None:
            return token
        return await self._wait_or_fetch(options or self._defaults)

    async def _wait_or_fetch(self, options: CallOptions) -> str:
        """The token of the fetch in flight, followed under ``options``; or of one this task
        makes, if none is in flight or the last one gave up where ``options`` go on."""
        generation = self._generation
        tally = _Tally()
        while (progress := self._in_flight) is not None:
            await self._follow(progress, options, tally)
            token = self._current(refreshing=self._in_flight is not None)
            if token is not None:
                return token
        if generation == self._generation or self._error is None:
            return await self._refresh(options)
        if not self._retryable:
            raise copy.copy(self._error)  # the fetch this task waited for failed
        # it gave up where this task's own fetch would have gone on: carry it on from there
        pause = options.policy.delay(
            max(tally.failed - 1, 0), retry_after=tally.retry_after, rng=self._rng
        )
        return await self._refresh(options, attempt=tally.failed, pause=pause)

    async def _follow(self, progress: _Progress, options: CallOptions, tally: _Tally) -> None:
        """Wait for the fetch in flight as if it were this task's own, started when it started:
        raise, as its own would have, when a request outlasts what this task's timeout allows
        one, or when the fetch fails once more than this task's ``max_retries`` allows."""
        bound = _request_bound(options.timeout)
        # a timeout under a shorter timeout than this task's is not one this task would have had
        longer = _allows_longer(options.timeout, progress.timeout)
        seen = 0
        while True:
            for failed in progress.failures[seen:]:
                tally.retry_after = failed.retry_after
                if not (longer and isinstance(failed.error, APITimeoutError)):
                    tally.failed += 1
                if tally.failed > options.policy.max_retries:
                    raise copy.copy(failed.error)
            seen = len(progress.failures)
            if progress.ended:
                return
            await _next_change(progress, bound)

    async def _refresh(self, options: CallOptions, *, attempt: int = 0, pause: float = 0.0) -> str:
        """Fetch a token under ``options``, for every task that asks meanwhile; after a failure
        keep the current one while valid."""
        progress = self._in_flight = _Progress(options.timeout)
        try:
            await self._obtain(options, progress, attempt=attempt, pause=pause)
        except _Retryable as failed:
            return self._failed(failed.error, retryable=True)
        except FalconError as exc:
            return self._failed(exc, retryable=False)
        finally:  # also when cancelled: the tasks following it then fetch one themselves
            self._in_flight = None
            progress.end()
        self._generation += 1
        self._error = None
        assert self._token is not None
        return self._token.get_secret_value()

    def _failed(self, error: FalconError, *, retryable: bool) -> str:
        """Share a failed fetch with the tasks that followed it; the current token if it is
        still valid (logged), else ``error`` is raised."""
        self._generation += 1
        self._error, self._retryable = copy.copy(error), retryable  # without the traceback
        if self._token is None or not self._alive():
            raise error from None
        now = self._clock()
        self._refresh_at = min(now + REFRESH_RETRY, self._expires_at)
        logger.warning(
            "token refresh failed (%s); the current token is valid for %.0f s more, "
            "refresh tried again in %.0f s",
            _reason(error), self._expires_at - now, self._refresh_at - now,
        )
        return self._token.get_secret_value()

    def invalidate(self, token: str) -> None:
        """Drop ``token`` if it is still the current one (it was refused with a 401)."""
        if self._token is not None and self._token.get_secret_value() == token:
            self._token = None

    async def _obtain(
        self, options: CallOptions, progress: _Progress, *, attempt: int, pause: float
    ) -> None:
        """Fetch a token (from the tenant's cloud, with autodiscovery) and keep it."""
        granted = await self._fetch(options, progress, attempt=attempt, pause=pause)
        granted = await self._discover(granted, options, progress)
        await self._store(granted)

    async def _fetch(
        self, options: CallOptions, progress: _Progress, *, attempt: int = 0, pause: float = 0.0
    ) -> _Granted:
        """Request a token, each request under ``options.timeout``, retried up to
        ``options.policy.max_retries`` (counting from ``attempt``, after ``pause`` seconds)."""
        if pause > 0:
            await anyio.sleep(pause)
        policy = options.policy
        while True:
            try:
                return await self._attempt(options.timeout, progress)
            except _Retryable as failed:
                progress.fail(failed)
                if attempt >= policy.max_retries:
                    raise
                delay = policy.delay(attempt, retry_after=failed.retry_after, rng=self._rng)
                logger.debug(
                    "token request failed (%s), retrying in %.2fs", _reason(failed.error), delay
                )
                await anyio.sleep(delay)
                attempt += 1

    async def _attempt(self, per_request: httpx.Timeout, progress: _Progress) -> _Granted:
        """One token request; a refusal is raised (as :class:`_Retryable` for a 429 or 5xx)."""
        sent_at = self._clock()
        response = await self._post_token(per_request, progress)
        trace_id = response.headers.get("X-CS-TRACEID")
        status = response.status_code
        if status in (200, 201):
            return _Granted(_parse(response, trace_id), sent_at, response.headers.get("X-Cs-Region"))
        error = _refused(status, trace_id)
        if status == 429 or status >= 500:
            raise _Retryable(error, parse_retry_after(response.headers) if status == 429 else None)
        raise error

    async def _post_token(self, per_request: httpx.Timeout, progress: _Progress) -> httpx.Response:
        """Send the token request; no reply raises :class:`_Retryable` (nothing was sent on
        the caller's behalf yet)."""
        form = {
            "client_id": self._client_id,
            "client_secret": self._client_secret.get_secret_value(),
        }
        if self._member_cid:
            form["member_cid"] = self._member_cid
        progress.send()
        try:
            response = await self._http.post(TOKEN_PATH, data=form, timeout=per_request)
            unhook_stream(response)
        except httpx.TimeoutException:
            raise _Retryable(_timed_out()) from None
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise _Retryable(APIConnectionError(
                f"token request failed: {type(exc).__name__}", may_have_been_applied=False
            )) from None
        finally:
            progress.answered()
        self.fetch_count += 1
        return response

    async def _discover(
        self, granted: _Granted, options: CallOptions, progress: _Progress
    ) -> _Granted:
        """With autodiscovery, the token of the tenant's cloud: when the first reply names
        another cloud, its token is revoked where it was issued and one is fetched there."""
        if not self._autodiscover:
            return granted
        self._autodiscover = False
        cloud = cloud_named(granted.region) if granted.region else None
        url = cloud.base_url if cloud is not None and cloud is not Cloud.AUTO else ""
        old = str(self._http.base_url).rstrip("/")
        if not url or url == old:
            return granted
        logger.info("cloud autodiscovery: tenant is in %s", granted.region)
        # the first cloud's token is not used: revoke it where it was issued
        await self._revoke(granted.reply.access_token, old + REVOKE_PATH)
        self._http.base_url = httpx.URL(url)
        return await self._fetch(options, progress)

    async def _store(self, granted: _Granted) -> None:
        """Keep the token of ``granted`` (revoke it instead if the client was closed)."""
        reply = granted.reply
        if self._closed:  # the client was closed while this token was on its way
            await self._revoke(reply.access_token, REVOKE_PATH)
            raise APIConnectionError("the client was closed", may_have_been_applied=False)
        self._token = reply.access_token
        # counted from when the request was sent: the token cannot have been issued earlier
        self._expires_at = granted.sent_at + reply.expires_in
        # refreshed ``refresh_margin`` early, or halfway through a lifetime shorter than twice that
        early = min(self._refresh_margin, reply.expires_in / 2)
        self._refresh_at = min(granted.sent_at + max(reply.expires_in - early, 1.0), self._expires_at)
        logger.debug("token fetched, expires in %.0f s", reply.expires_in)

    async def revoke(self) -> None:
        """Revoke the current token, for good (best effort: never raises; at most 5 s, even
        when cancelled). A fetch in flight is waited for: the token it brings is revoked too."""
        self._closed = True
        with anyio.move_on_after(5, shield=True):
            while (progress := self._in_flight) is not None:
                await progress.changed.wait()
            token, self._token = self._token, None
            if token is not None:
                await self._revoke(token, REVOKE_PATH)

    async def _revoke(self, token: SecretStr, url: str) -> None:
        """Revoke ``token`` at ``url`` (best effort: failures are logged at DEBUG, never raised;
        shielded from cancellation for at most 5 s)."""
        with anyio.move_on_after(5, shield=True):
            try:
                unhook_stream(await self._http.post(
                    url,
                    data={"token": token.get_secret_value()},
                    auth=(self._client_id, self._client_secret.get_secret_value()),
                ))
            except Exception as exc:  # best effort: closing must never fail because of it
                logger.debug("token revoke failed: %s", type(exc).__name__)
