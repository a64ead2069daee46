"""OAuth2 client-credentials token manager.

One token per client, shared by every task: the first task that finds no usable token fetches
one under a lock; the others wait on the lock and then share the outcome of that fetch (double
check, by a fetch generation number): its token, or its failure, which they re-raise instead of
fetching again (a call made after the failure was delivered tries again).

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
import random
import re
from collections.abc import Callable

import anyio
import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, field_validator

from ._cloud import Cloud, cloud_named
from ._exceptions import APIConnectionError, APITimeoutError, FalconError, OAuthError
from ._log import logger
from ._responses import unhook_stream
from ._retry import RetryPolicy
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
        self._policy = policy
        self._refresh_margin = refresh_margin
        self._clock = clock
        self._token: SecretStr | None = None
        self._expires_at = 0.0  # hard expiry: the token is refused from then on
        self._refresh_at = 0.0  # the time to fetch its successor
        self._generation = 0  # fetches finished, successful or not
        self._error: FalconError | None = None  # the last fetch's failure (None: it succeeded)
        self._lock = anyio.Lock()
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

    async def get(self) -> str:
        """A valid bearer token, fetching one if needed (one fetch however many tasks ask).

        Tasks that waited for a fetch that failed re-raise its failure rather than fetch again.
        """
        token = self._current(refreshing=self._lock.locked())
        if token is not None:
            return token
        generation = self._generation
        async with self._lock:
            token = self._current(refreshing=False)
            if token is not None:
                return token
            if generation != self._generation and self._error is not None:
                raise copy.copy(self._error)  # the fetch this task waited for failed
            return await self._refresh()

    async def _refresh(self) -> str:
        """Fetch a token (the lock is held); after a failure keep the current one while valid."""
        try:
            await self._fetch()
        except FalconError as exc:
            self._generation += 1
            self._error = copy.copy(exc)  # without the traceback
            if self._token is None or not self._alive():
                raise
            now = self._clock()
            self._refresh_at = min(now + REFRESH_RETRY, self._expires_at)
            logger.warning(
                "token refresh failed (%s); the current token is valid for %.0f s more, "
                "refresh tried again in %.0f s",
                _reason(exc), self._expires_at - now, self._refresh_at - now,
            )
            return self._token.get_secret_value()
        self._generation += 1
        self._error = None
        assert self._token is not None
        return self._token.get_secret_value()

    def invalidate(self, token: str) -> None:
        """Drop ``token`` if it is still the current one (it was refused with a 401)."""
        if self._token is not None and self._token.get_secret_value() == token:
            self._token = None

    async def _fetch(self) -> None:
        for attempt in range(self._policy.max_retries + 1):
            last = attempt == self._policy.max_retries
            sent_at = self._clock()
            response = await self._post_token(last=last)
            if response is None:
                await anyio.sleep(self._policy.delay(attempt, rng=self._rng))
                continue
            trace_id = response.headers.get("X-CS-TRACEID")
            status = response.status_code
            if status in (200, 201):
                await self._accept(response, trace_id, sent_at)
                return
            if (status == 429 or status >= 500) and not last:
                retry_after = parse_retry_after(response.headers) if status == 429 else None
                await anyio.sleep(self._policy.delay(attempt, retry_after=retry_after, rng=self._rng))
                continue
            raise OAuthError(
                f"token request refused with HTTP {status}: check the API client id and "
                "secret and that the client exists in this cloud",
                status_code=status,
                trace_id=trace_id,
            )
        raise AssertionError("unreachable")  # pragma: no cover

    async def _post_token(self, *, last: bool) -> httpx.Response | None:
        form = {
            "client_id": self._client_id,
            "client_secret": self._client_secret.get_secret_value(),
        }
        if self._member_cid:
            form["member_cid"] = self._member_cid
        try:
            response = await self._http.post(TOKEN_PATH, data=form)
            unhook_stream(response)
        except httpx.TimeoutException as exc:
            if last:  # nothing was sent on the caller's behalf yet
                raise APITimeoutError(
                    "token request timed out", may_have_been_applied=False
                ) from None
            logger.debug("token request timed out: %s", type(exc).__name__)
            return None
        except (httpx.TransportError, httpx.DecodingError) as exc:
            if last:
                raise APIConnectionError(
                    f"token request failed: {type(exc).__name__}", may_have_been_applied=False
                ) from None
            logger.debug("token request failed: %s", type(exc).__name__)
            return None
        self.fetch_count += 1
        return response

    async def _accept(self, response: httpx.Response, trace_id: str | None, sent_at: float) -> None:
        try:
            reply = _TOKEN_REPLY(response.content)
        except ValidationError:
            raise OAuthError(
                "token endpoint sent a reply without a usable access token",
                status_code=response.status_code,
                trace_id=trace_id,
            ) from None
        region = response.headers.get("X-Cs-Region")
        if self._autodiscover and region:
            self._autodiscover = False
            cloud = cloud_named(region)
            url = cloud.base_url if cloud is not None and cloud is not Cloud.AUTO else ""
            old = str(self._http.base_url).rstrip("/")
            if url and url != old:
                logger.info("cloud autodiscovery: tenant is in %s", region)
                # the first cloud's token is not used: revoke it where it was issued
                await self._revoke(reply.access_token, old + REVOKE_PATH)
                self._http.base_url = httpx.URL(url)
                await self._fetch()
                return
        self._autodiscover = False
        if self._closed:  # the client was closed while this token was on its way
            await self._revoke(reply.access_token, REVOKE_PATH)
            raise APIConnectionError("the client was closed", may_have_been_applied=False)
        self._token = reply.access_token
        # counted from when the request was sent: the token cannot have been issued earlier
        self._expires_at = sent_at + reply.expires_in
        # refreshed ``refresh_margin`` early, or halfway through a lifetime shorter than twice that
        early = min(self._refresh_margin, reply.expires_in / 2)
        self._refresh_at = min(sent_at + max(reply.expires_in - early, 1.0), self._expires_at)
        logger.debug("token fetched, expires in %.0f s", reply.expires_in)

    async def revoke(self) -> None:
        """Revoke the current token, for good (best effort: never raises; at most 5 s, even
        when cancelled). A fetch in flight is waited for: the token it brings is revoked too."""
        self._closed = True
        with anyio.move_on_after(5, shield=True):
            async with self._lock:
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
