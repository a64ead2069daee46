"""OAuth2 client-credentials token manager.

One token per client, shared by every task: the first task that finds no valid token fetches one
under a lock; the others wait on the lock and then reuse it (double check). The token is refreshed
``refresh_margin`` seconds before it expires, or halfway through a lifetime shorter than twice
that. After a 401 the pipeline calls ``invalidate(token)`` with the token it used; only if that
is still the current token is it dropped (invalidate by compare), so fifty tasks that all saw a
401 cause one refresh, not fifty.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import anyio
import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError

from ._cloud import Cloud, cloud_named
from ._exceptions import APIConnectionError, APITimeoutError, OAuthError
from ._log import logger
from ._responses import unhook_stream
from ._retry import RetryPolicy
from .models import parse_retry_after

__all__ = ["TokenManager"]

TOKEN_PATH = "/oauth2/token"  # noqa: S105 - a route, not a secret
REVOKE_PATH = "/oauth2/revoke"


class _TokenReply(BaseModel):
    model_config = ConfigDict(extra="allow")
    access_token: SecretStr
    expires_in: float = 1799.0
    token_type: str = "bearer"  # noqa: S105


_TOKEN_REPLY = _TokenReply.model_validate_json


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
        self._expires_at = 0.0
        self._lock = anyio.Lock()
        self._rng = random.Random()
        self.fetch_count = 0

    def __repr__(self) -> str:
        state = "valid" if self._valid() else "none"
        return f"TokenManager(client_id={self._client_id!r}, token=<{state}>)"

    def _valid(self) -> bool:
        return self._token is not None and self._clock() < self._expires_at

    async def get(self) -> str:
        """A valid bearer token, fetching one if needed (one fetch however many tasks ask)."""
        if self._token is not None and self._valid():
            return self._token.get_secret_value()
        async with self._lock:
            if self._token is None or not self._valid():
                await self._fetch()
            assert self._token is not None
            return self._token.get_secret_value()

    def invalidate(self, token: str) -> None:
        """Drop ``token`` if it is still the current one (it was refused with a 401)."""
        if self._token is not None and self._token.get_secret_value() == token:
            self._token = None

    async def _fetch(self) -> None:
        for attempt in range(self._policy.max_retries + 1):
            last = attempt == self._policy.max_retries
            response = await self._post_token(last=last)
            if response is None:
                await anyio.sleep(self._policy.delay(attempt, rng=self._rng))
                continue
            trace_id = response.headers.get("X-CS-TRACEID")
            status = response.status_code
            if status in (200, 201):
                await self._accept(response, trace_id)
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
            if last:
                raise APITimeoutError("token request timed out") from None
            logger.debug("token request timed out: %s", type(exc).__name__)
            return None
        except httpx.TransportError as exc:
            if last:
                raise APIConnectionError(
                    f"token request failed: {type(exc).__name__}"
                ) from None
            logger.debug("token request failed: %s", type(exc).__name__)
            return None
        self.fetch_count += 1
        return response

    async def _accept(self, response: httpx.Response, trace_id: str | None) -> None:
        try:
            reply = _TOKEN_REPLY(response.content)
        except ValidationError:
            raise OAuthError(
                "token endpoint sent a reply without an access token",
                status_code=response.status_code,
                trace_id=trace_id,
            ) from None
        region = response.headers.get("X-Cs-Region")
        if self._autodiscover and region:
            self._autodiscover = False
            cloud = cloud_named(region)
            url = cloud.base_url if cloud is not None and cloud is not Cloud.AUTO else ""
            if url and url != str(self._http.base_url).rstrip("/"):
                logger.info("cloud autodiscovery: tenant is in %s", region)
                self._http.base_url = httpx.URL(url)
                await self._fetch()
                return
        self._autodiscover = False
        self._token = reply.access_token
        # refreshed ``refresh_margin`` early, or halfway through a lifetime shorter than twice that
        early = min(self._refresh_margin, reply.expires_in / 2)
        self._expires_at = self._clock() + max(reply.expires_in - early, 1.0)
        logger.debug("token fetched, expires in %.0f s", reply.expires_in)

    async def revoke(self) -> None:
        """Revoke the current token (best effort: never raises, bounded in time)."""
        token, self._token = self._token, None
        if token is None:
            return
        with anyio.move_on_after(5, shield=True):
            try:
                unhook_stream(await self._http.post(
                    REVOKE_PATH,
                    data={"token": token.get_secret_value()},
                    auth=(self._client_id, self._client_secret.get_secret_value()),
                ))
            except Exception as exc:  # best effort: closing must never fail because of it
                logger.debug("token revoke failed: %s", type(exc).__name__)
