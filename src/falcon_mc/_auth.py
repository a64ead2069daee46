"""OAuth2 client-credentials token manager.

One token per client, shared by every task: the first task that finds no usable token fetches
one under a lock; the others wait on the lock and then share the outcome of that fetch (double
check, by a fetch generation number): its token, or its failure, which they re-raise instead of
fetching again (a call made after the failure was delivered tries again).

A fetch runs under the *effective* options of the call that makes it: the stricter of its view's
(``with_options``) and the client's own, phase by phase for the timeout of each token request
(``None`` is no limit), and the fewer ``max_retries``. A view can make the token request stricter,
never looser. A waiting call whose effective options allow no less than those of the fetch in
flight waits for it as long as it runs (no longer than the client's options allow); a stricter
one waits about as long as its own fetch could take (:func:`_budget`), then raises
``APITimeoutError``. A failure more time or retries might mend (no reply, 429, 5xx) is not shared
with a waiting call whose options allow more than the fetch had: that call fetches again itself.

A token has a hard expiry (its ``expires_in``) and a refresh time ``refresh_margin`` seconds
earlier, or halfway through a lifetime shorter than twice that. While an early refresh is in
flight the other tasks keep using the current token. An early refresh makes one token request
(no retries): if it fails, the still valid token is kept (a WARNING is logged) and the refresh is
tried again ``REFRESH_RETRY`` seconds later.

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
from dataclasses import dataclass, replace

import anyio
import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, field_validator

from ._cloud import Cloud, cloud_named
from ._exceptions import APIConnectionError, APITimeoutError, FalconError, OAuthError
from ._log import logger
from ._responses import unhook_stream
from ._retry import Options, RetryPolicy
from .models import parse_retry_after

__all__ = ["TokenManager"]

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


def _phases(timeout: httpx.Timeout) -> tuple[float, ...]:
    """The limits of ``timeout``'s phases (connect, read, write, pool) in seconds; ``inf``: none."""
    phases = (timeout.connect, timeout.read, timeout.write, timeout.pool)
    return tuple(math.inf if phase is None else phase for phase in phases)


def _effective(view: Options, own: Options) -> Options:
    """The options of a token request made for a call on ``view`` of a client whose own are
    ``own``: per timeout phase the shorter, the fewer retries, the back-off of ``view``."""
    limits = (min(a, b) for a, b in zip(_phases(view.timeout), _phases(own.timeout), strict=True))
    connect, read, write, pool = (None if math.isinf(limit) else limit for limit in limits)
    retries = min(view.policy.max_retries, own.policy.max_retries)
    return Options(
        timeout=httpx.Timeout(None, connect=connect, read=read, write=write, pool=pool),
        policy=replace(view.policy, max_retries=retries),
    )


def _covers(wide: Options, narrow: Options) -> bool:
    """Whether ``wide`` allows a token fetch at least as much as ``narrow`` does: as long in
    every timeout phase, and as many retries."""
    longer = (a >= b for a, b in zip(_phases(wide.timeout), _phases(narrow.timeout), strict=True))
    return wide.policy.max_retries >= narrow.policy.max_retries and all(longer)


def _budget(options: Options) -> float:
    """About the longest a token fetch under ``options`` takes: each request with every phase to
    its limit, and the longest back-off between. An approximation: a read timeout bounds each
    wait for bytes (a reply that trickles in takes longer), and a 429's Retry-After may ask for a
    longer pause than the back-off."""
    retries = options.policy.max_retries
    return (retries + 1) * sum(_phases(options.timeout)) + retries * options.policy.max_delay


def _retryable(error: FalconError) -> bool:
    """Whether more time or more attempts might mend ``error``: no reply, a 429, a 5xx."""
    if isinstance(error, APIConnectionError):  # timeouts included
        return True
    status = error.status_code if isinstance(error, OAuthError) else None
    return status is not None and (status == 429 or status >= 500)


@dataclass(frozen=True)
class _Failure:
    """A failed fetch: its error, and the effective options it ran under."""

    error: FalconError
    options: Options

    def shared_with(self, options: Options) -> bool:
        """Whether a call that waited for this fetch, under ``options``, re-raises its error:
        unless more time or retries might have mended it and ``options`` allow them."""
        return not _retryable(self.error) or _covers(self.options, options)


def _with_retries(options: Options, retries: int) -> Options:
    """``options`` allowing ``retries`` retries."""
    return Options(options.timeout, replace(options.policy, max_retries=retries))


def _timed_out() -> APITimeoutError:
    """A token request gave up waiting (nothing was sent on the caller's behalf yet)."""
    return APITimeoutError("token request timed out", may_have_been_applied=False)


def _client_closed() -> APIConnectionError:
    """The error of a token request the client was closed before (none is sent then)."""
    return APIConnectionError("the client was closed", may_have_been_applied=False)


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
        self._own = Options(timeout=http.timeout, policy=policy)  # the client's options
        self._refresh_margin = refresh_margin
        self._clock = clock
        self._token: SecretStr | None = None
        self._expires_at = 0.0  # hard expiry: the token is refused from then on
        self._refresh_at = 0.0  # the time to fetch its successor
        self._generation = 0  # fetches finished, successful or not
        self._failure: _Failure | None = None  # the last fetch's (None: it succeeded)
        self._fetching: Options | None = None  # the effective options of the fetch in flight
        # fast_acquire: the task that takes the lock records its fetch before another task runs
        self._lock = anyio.Lock(fast_acquire=True)
        self._pausing: anyio.CancelScope | None = None  # the last pause before a retry
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

    async def get(self, options: Options | None = None) -> str:
        """A valid bearer token, fetching one if needed (one fetch however many tasks ask).

        ``options`` are the calling view's (the client's if not given): a fetch this task makes
        runs under the stricter of them and the client's. Tasks that waited for a fetch that
        failed re-raise its failure rather than fetch again, unless more time or retries might
        mend it and their options allow more than that fetch had.
        """
        token = self._current(refreshing=self._lock.locked())
        if token is not None:
            return token
        mine = self._own if options is None else _effective(options, self._own)
        generation = self._generation
        await self._wait_turn(mine)
        try:
            token = self._current(refreshing=False)
            if token is not None:
                return token
            failure, waited = self._failure, generation != self._generation
            if waited and failure is not None and failure.shared_with(mine):
                raise copy.copy(failure.error)  # the fetch this task waited for failed
            return await self._refresh(mine)
        finally:
            self._lock.release()

    async def _wait_turn(self, mine: Options) -> None:
        """Take the lock, waiting about as long as this task's own fetch could take
        (:func:`_budget`), and on, a budget at a time, while the fetch in flight is one that
        ``mine`` cover (bounded no more loosely than this task's own would be); then raise.

        Judged again at every budget's end: the fetch in flight may have changed meanwhile
        (one that failed, then another task's under looser options)."""
        budget = _budget(mine)
        while True:
            with anyio.move_on_after(budget):
                await self._lock.acquire()
                return
            fetching = self._fetching
            if self._closed:
                raise _client_closed()
            if fetching is None or not _covers(mine, fetching):
                raise APITimeoutError(
                    "token request timed out: another call's is still in flight",
                    may_have_been_applied=False,
                )

    async def _refresh(self, options: Options) -> str:
        """Fetch a token under ``options`` (the lock is held), for every task that waits; after
        a failure the current token is kept while valid.

        An early refresh (the current token still valid) makes one request: the others use the
        current token meanwhile, and a failure is tried again later. Should the token expire
        before that request fails, this task needs one now: the fetch goes on with the rest of
        its retries."""
        early = self._alive()
        self._fetching = options
        try:
            try:
                await self._obtain(_with_retries(options, 0) if early else options)
            except FalconError as exc:
                retries = options.policy.max_retries - 1
                if not early or self._alive() or retries < 0 or not _retryable(exc):
                    raise
                await self._obtain(_with_retries(options, retries))
        except FalconError as exc:
            return self._failed(exc, options)
        finally:  # also when cancelled: the next task waiting then fetches itself
            self._fetching = None
        self._generation += 1
        self._failure = None
        assert self._token is not None
        return self._token.get_secret_value()

    def _failed(self, error: FalconError, options: Options) -> str:
        """Share a failed fetch (under ``options``) with the tasks waiting for it; the current
        token if it is still valid (logged), else ``error`` is raised."""
        self._generation += 1
        self._failure = _Failure(copy.copy(error), options)  # without the traceback
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

    async def _obtain(self, options: Options) -> None:
        """Fetch a token (from the tenant's cloud, with autodiscovery) and keep it."""
        granted = await self._fetch(options)
        granted = await self._discover(granted, options)
        await self._store(granted)

    async def _fetch(self, options: Options) -> _Granted:
        """Request a token, each request under ``options.timeout``; one that gets no reply, a
        429 or a 5xx is retried up to ``options.policy.max_retries`` times."""
        policy = options.policy
        attempt = 0
        while True:
            try:
                return await self._attempt(options.timeout)
            except _Retryable as failed:
                if attempt >= policy.max_retries:
                    raise failed.error from None
                delay = policy.delay(attempt, retry_after=failed.retry_after, rng=self._rng)
                logger.debug(
                    "token request failed (%s), retrying in %.2fs", _reason(failed.error), delay
                )
                await self._pause(delay)
                attempt += 1

    async def _pause(self, seconds: float) -> None:
        """Wait ``seconds`` before a retry, or until the client is closed."""
        with anyio.move_on_after(seconds) as self._pausing:
            await anyio.sleep_forever()

    async def _attempt(self, per_request: httpx.Timeout) -> _Granted:
        """One token request; a refusal is raised (as :class:`_Retryable` for a 429 or 5xx).
        None is sent once the client is being closed."""
        if self._closed:
            raise _client_closed()
        sent_at = self._clock()
        response = await self._post_token(per_request)
        trace_id = response.headers.get("X-CS-TRACEID")
        status = response.status_code
        if status in (200, 201):
            return _Granted(_parse(response, trace_id), sent_at, response.headers.get("X-Cs-Region"))
        error = _refused(status, trace_id)
        if _retryable(error):
            raise _Retryable(error, parse_retry_after(response.headers) if status == 429 else None)
        raise error

    async def _post_token(self, per_request: httpx.Timeout) -> httpx.Response:
        """Send the token request; no reply raises :class:`_Retryable` (nothing was sent on
        the caller's behalf yet)."""
        form = {
            "client_id": self._client_id,
            "client_secret": self._client_secret.get_secret_value(),
        }
        if self._member_cid:
            form["member_cid"] = self._member_cid
        try:
            response = await self._http.post(TOKEN_PATH, data=form, timeout=per_request)
            unhook_stream(response)
        except httpx.TimeoutException:
            raise _Retryable(_timed_out()) from None
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise _Retryable(APIConnectionError(
                f"token request failed: {type(exc).__name__}", may_have_been_applied=False
            )) from None
        self.fetch_count += 1
        return response

    async def _discover(self, granted: _Granted, options: Options) -> _Granted:
        """With autodiscovery, the token of the tenant's cloud: when the first reply names
        another cloud, its token is revoked where it was issued and one is fetched there
        (under the same options, its retries counted afresh)."""
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
        return await self._fetch(options)

    async def _store(self, granted: _Granted) -> None:
        """Keep the token of ``granted`` (revoke it instead if the client was closed)."""
        reply = granted.reply
        if self._closed:  # the client was closed while this token was on its way
            await self._revoke(reply.access_token, REVOKE_PATH)
            raise _client_closed()
        self._token = reply.access_token
        # counted from when the request was sent: the token cannot have been issued earlier
        self._expires_at = granted.sent_at + reply.expires_in
        # refreshed ``refresh_margin`` early, or halfway through a lifetime shorter than twice that
        early = min(self._refresh_margin, reply.expires_in / 2)
        self._refresh_at = min(granted.sent_at + max(reply.expires_in - early, 1.0), self._expires_at)
        logger.debug("token fetched, expires in %.0f s", reply.expires_in)

    async def revoke(self) -> None:
        """Revoke the current token, for good (best effort: never raises; at most 5 s, even
        when cancelled). The current token is revoked at once; then a fetch in flight is waited
        for (a pause before a retry is cut short, and no further token request is sent): the
        token it brings is revoked too."""
        self._closed = True
        if self._pausing is not None:
            self._pausing.cancel()
        with anyio.move_on_after(5, shield=True):
            # at once, not after a fetch in flight (an early refresh may hang): that fetch
            # revokes the token it brings itself (see _store)
            token, self._token = self._token, None
            if token is not None:
                await self._revoke(token, REVOKE_PATH)
            async with self._lock:  # the fetch in flight is over
                pass

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
