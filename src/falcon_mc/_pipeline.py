"""THE request path. Every operation of the client goes through :class:`Pipeline`.

limiter -> rate-limit gate -> token -> send -> record rate limit -> classify ->
retry or raise -> parse the envelope straight from the raw bytes.
"""

from __future__ import annotations

import gc
import json
import random
import time
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import TypeVar

import anyio
import httpx
from pydantic import TypeAdapter, ValidationError

from ._args import NOT_UNICODE
from ._auth import TokenManager
from ._exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    InvalidArgumentError,
    RateLimitError,
    status_error_class,
)
from ._fieldsets import share_fields_sets
from ._log import logger
from ._ratelimit import RateLimitGate
from ._responses import aclose_response
from ._retry import Failure, Options, should_retry
from ._version import __version__
from .models import Envelope, RateLimit, parse_retry_after

__all__ = ["BodyFactory", "Operation", "Pipeline", "RequestBody"]

E = TypeVar("E")
T = TypeVar("T")

USER_AGENT = f"falcon-mc/{__version__}"

#: The most of an error reply's body that is read (an error envelope is a few hundred bytes; a
#: proxy's error page, or a misbehaving server, could send any amount).
MAX_ERROR_BODY = 1024 * 1024


@dataclass(frozen=True)
class Operation:
    """One Message Center operation: its spec operationId, method, route and idempotency, and
    the headers that say what its replies may be: JSON, compressed only in the codings an
    error body is decoded in here (httpx would also offer ``br``/``zstd`` when their packages
    are installed)."""

    id: str
    method: str
    path: str
    idempotent: bool
    headers: tuple[tuple[str, str], ...] = (
        ("Accept", "application/json"),
        ("Accept-Encoding", "gzip, deflate"),
    )


@dataclass(frozen=True)
class RequestBody:
    """A streamed request body, built anew for every attempt."""

    stream: httpx.AsyncByteStream
    headers: Mapping[str, str]


BodyFactory = Callable[[], Awaitable[RequestBody]]

_ERROR_ENVELOPE: TypeAdapter[Envelope[object]] = TypeAdapter(Envelope[object])
_ENVELOPE_KEYS = frozenset({"meta", "errors", "resources"})


class _Attempt(Exception):
    """Internal: one attempt failed in a way the retry policy decides about."""

    def __init__(
        self,
        failure: Failure,
        error: APIError,
        *,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(failure.value)
        self.failure = failure
        self.error = error
        self.retry_after = retry_after


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a reply becomes models.

    Validation allocates about 13 tracked objects per case, none of them in a cycle; left
    running, the collector starts passes in the middle of it (two for a reply of 100 cases). A
    pass would find nothing to free there, so nothing is lost; the collector's state is restored
    afterwards, and left alone if it was already off.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class _Slot:
    """``async with`` one slot of ``limiter``: taken at once when free, without the turn of the
    event loop that ``CapacityLimiter.acquire`` always takes.

    So a request with a free slot runs straight to its socket write. With a turn at every await,
    the tasks of a burst advance in lockstep and all requests leave together, after the last is
    built (16 requests: about 3 ms later than the first could have).
    """

    __slots__ = ("_limiter",)

    def __init__(self, limiter: anyio.CapacityLimiter) -> None:
        self._limiter = limiter

    async def __aenter__(self) -> None:
        try:
            self._limiter.acquire_nowait()
        except anyio.WouldBlock:
            await self._limiter.acquire()

    async def __aexit__(self, *_: object) -> None:
        self._limiter.release()


def _trace_id(response: httpx.Response, errors_meta: str | None = None) -> str | None:
    return response.headers.get("X-CS-TRACEID") or errors_meta


def _closed(op: Operation, applied: bool) -> APIConnectionError:
    """The error of a call whose client was closed (``applied``: an attempt may have been)."""
    return APIConnectionError(f"{op.id}: the client was closed", may_have_been_applied=applied)


class Pipeline:
    """Sends requests for one client; shared by the client and its ``with_options`` copies."""

    def __init__(
        self,
        *,
        http: httpx.AsyncClient,
        auth: TokenManager,
        gate: RateLimitGate,
        limiter: anyio.CapacityLimiter,
        writes_done: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.http = http
        self.auth = auth
        self.gate = gate
        self.limiter = limiter
        self._slot = _Slot(limiter)
        # Replies are turned into models one at a time (taking the lock is a turn of the event
        # loop), after the requests being written are out (``writes_done``, from the transport):
        # when a burst of replies lands, the requests their freed slots let through go out
        # first, instead of waiting behind every parse of the burst.
        self._parsing = anyio.Lock()
        self._writes_done = writes_done
        self._rng = random.Random()
        self._urls_base: httpx.URL | None = None
        self._urls: dict[str, httpx.URL] = {}

    async def call(
        self,
        op: Operation,
        options: Options,
        adapter: TypeAdapter[E],
        *,
        params: Mapping[str, str | int] | None = None,
        json_body: object = None,
        body: BodyFactory | None = None,
    ) -> E:
        """Send ``op`` (with retries) and parse its JSON reply with ``adapter``."""
        response = await self._send(op, options, params, json_body, body, stream=False)
        return await self._parse(op, response, adapter)

    async def write(
        self,
        op: Operation,
        options: Options,
        adapter: TypeAdapter[Envelope[T]],
        *,
        json_body: object = None,
        body: BodyFactory | None = None,
    ) -> Envelope[T]:
        """:meth:`call` for a write: a 2xx reply that lists errors and reports nothing done
        is a failure (nothing was applied), raised as :class:`APIStatusError`."""
        response = await self._send(op, options, None, json_body, body, stream=False)
        envelope = await self._parse(op, response, adapter)
        if envelope.errors and not envelope.resources:
            raise APIStatusError(
                f"{op.id}: the server reported errors: "
                + "; ".join(e.message or str(e.code) for e in envelope.errors),
                status_code=response.status_code,
                errors=envelope.errors,
                trace_id=_trace_id(response, envelope.meta.trace_id),
                may_have_been_applied=False,
            )
        return envelope

    async def _parse(self, op: Operation, response: httpx.Response, adapter: TypeAdapter[E]) -> E:
        """The read reply of ``op`` parsed with ``adapter``, one reply at a time."""
        try:
            async with self._parsing:
                if self._writes_done is not None:
                    await self._writes_done()
                # one more turn: a task woken meanwhile by a freed slot sends its request first
                await anyio.lowlevel.checkpoint()
                with _gc_paused():
                    parsed = adapter.validate_json(response.content)
                    share_fields_sets(parsed)
                    return parsed
        except ValidationError as exc:
            raise APIResponseValidationError(
                f"{op.id}: the reply is not the JSON the spec promises "
                f"({exc.error_count()} problem(s), first: {_first_problem(exc)})",
                status_code=response.status_code,
                trace_id=_trace_id(response),
                may_have_been_applied=not op.idempotent,
            ) from None

    @asynccontextmanager
    async def stream(
        self,
        op: Operation,
        options: Options,
        *,
        params: Mapping[str, str | int] | None = None,
    ) -> AsyncIterator[httpx.Response]:
        """Send ``op`` and yield the open, unread response; it is always closed afterwards."""
        response = await self._send(op, options, params, None, None, stream=True)
        try:
            yield response
        finally:
            with anyio.CancelScope(shield=True):
                await aclose_response(response)

    async def _send(
        self,
        op: Operation,
        options: Options,
        params: Mapping[str, str | int] | None,
        json_body: object,
        body: BodyFactory | None,
        *,
        stream: bool,
    ) -> httpx.Response:
        policy = options.policy
        attempt = 0
        refreshed = False
        content: bytes | None = None
        applied = False  # whether a failed attempt may have been applied
        began_open = not self.http.is_closed
        while True:
            try:
                async with self._slot:
                    if content is None and json_body is not None:  # once, and only once sending
                        content = _json_bytes(json_body)
                    # the others holding a slot are in flight (or about to be)
                    await self.gate.wait(int(self.limiter.borrowed_tokens) - 1)
                    self._still_open(op, began_open, applied)
                    token = await self.auth.get(options)
                    request = await self._build(op, options, token, params, content, body)
                    self._still_open(op, began_open, applied)
                    response = await self._attempt(op, request, stream=stream)
                    if response.status_code == 401 and not refreshed:
                        await aclose_response(response)
                        self.auth.invalidate(token)
                        refreshed = True
                        logger.debug("%s: 401, fetching a fresh token and replaying once", op.id)
                        continue
                    if not response.is_success:
                        raise await self._status_failure(op, response)
                    return response
            except _Attempt as failed:
                applied = applied or failed.error.may_have_been_applied
                if self.http.is_closed:  # closed meanwhile (its doing, likely): no retry
                    raise _closed(op, applied) from None
                rate_limited = failed.failure is Failure.RATE_LIMITED
                delay = policy.delay(attempt, retry_after=failed.retry_after, rng=self._rng)
                if rate_limited:
                    # one client-wide deadline, set even by the call's last 429: every task of
                    # the client waits for it (this one on its next turn at the gate)
                    self.gate.block_for(delay)
                if attempt >= policy.max_retries or not should_retry(
                    failed.failure, idempotent=op.idempotent
                ):
                    raise failed.error from None
                logger.debug(
                    "%s: attempt %d failed (%s), retrying in %.2fs",
                    op.id,
                    attempt + 1,
                    failed.failure.value,
                    delay,
                )
                attempt += 1
                if delay > 0 and not rate_limited:
                    await anyio.sleep(delay)

    def _still_open(self, op: Operation, began_open: bool, applied: bool) -> None:
        """Raise :func:`_closed` if ``aclose()`` ran since the call began (``began_open``).
        A call begun after it is a programming error: httpx's ``RuntimeError`` (raised here, as
        the token manager, closed for good, would raise :func:`_closed`'s error)."""
        if self.http.is_closed:
            if not began_open:
                raise RuntimeError("Cannot send a request, as the client has been closed.")
            raise _closed(op, applied)

    async def _build(
        self,
        op: Operation,
        options: Options,
        token: str,
        params: Mapping[str, str | int] | None,
        content: bytes | None,
        body: BodyFactory | None,
    ) -> httpx.Request:
        headers = {"Authorization": f"Bearer {token}", "User-Agent": USER_AGENT, **dict(op.headers)}
        payload: bytes | httpx.AsyncByteStream | None = content
        if content is not None:
            headers["Content-Type"] = "application/json"
        elif body is not None:
            built = await body()
            headers.update(built.headers)  # Content-Length is known: no chunked encoding
            payload = built.stream
        return self.http.build_request(
            op.method,
            self._url(op.path),
            params=params,
            headers=headers,
            content=payload,
            timeout=options.timeout,
        )

    def _url(self, path: str) -> httpx.URL:
        """``path`` on the client's base URL, as httpx would join them; kept per base URL (the
        cloud may change after the first token), since httpx would parse and join it anew for
        every request."""
        base = self.http.base_url
        if base is not self._urls_base:
            self._urls_base, self._urls = base, {}
        url = self._urls.get(path)
        if url is None:
            joined = base.raw_path + path.lstrip("/").encode("ascii")
            url = self._urls[path] = base.copy_with(raw_path=joined)
        return url

    async def _attempt(self, op: Operation, request: httpx.Request, *, stream: bool) -> httpx.Response:
        """One send; transport failures become :class:`_Attempt` with what we know of them."""
        started = time.perf_counter()
        try:
            response = await self.http.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            cls = APIConnectionError if isinstance(exc, httpx.ConnectError) else APITimeoutError
            raise _Attempt(
                Failure.NOT_SENT,
                cls(f"{op.id}: could not connect ({type(exc).__name__})", may_have_been_applied=False),
            ) from None
        except httpx.TimeoutException as exc:
            raise _Attempt(
                Failure.AMBIGUOUS,
                APITimeoutError(f"{op.id}: timed out ({type(exc).__name__})"),
            ) from None
        except httpx.TransportError as exc:
            # a LocalProtocolError quotes our own request's headers (the bearer token): not
            # its text; the server's protocol errors only say what it sent
            said = "" if isinstance(exc, httpx.LocalProtocolError) else f": {exc}"
            raise _Attempt(
                Failure.AMBIGUOUS,
                APIConnectionError(f"{op.id}: connection failed ({type(exc).__name__}{said})"),
            ) from None
        except httpx.DecodingError as exc:  # a transport that reads the body (MockTransport)
            raise _Attempt(
                Failure.AMBIGUOUS,
                APIConnectionError(f"{op.id}: the reply could not be decoded ({type(exc).__name__})"),
            ) from None
        self.gate.record(RateLimit.from_headers(response.headers))
        if not stream and response.is_success:
            await self._read(op, response)
        logger.debug(
            "%s %s -> %d in %.3fs (trace id %s)",
            op.method,
            op.path,
            response.status_code,
            time.perf_counter() - started,
            response.headers.get("X-CS-TRACEID"),
        )
        return response

    async def _read(self, op: Operation, response: httpx.Response, *, limit: int = 0) -> bytes:
        """The reply's body (its first ``limit`` bytes only, if given; the rest is not read);
        the response is closed afterwards."""
        try:
            if not limit:
                return await response.aread()
            if response.is_stream_consumed:  # read already (httpx.MockTransport): in memory
                return response.content[:limit]
            raw = bytearray()  # the bytes on the wire: decoding ahead of the limit is unbounded
            async for chunk in response.aiter_raw():
                raw += chunk
                if len(raw) >= limit:
                    break
            return _decoded(response.headers.get("Content-Encoding"), bytes(raw), limit)
        except httpx.TimeoutException as exc:
            raise _Attempt(
                Failure.AMBIGUOUS,
                APITimeoutError(
                    f"{op.id}: timed out reading the reply ({type(exc).__name__})",
                    trace_id=_trace_id(response),
                ),
            ) from None
        except (httpx.TransportError, httpx.DecodingError) as exc:
            cause = "could not be decoded" if isinstance(exc, httpx.DecodingError) else "was cut short"
            raise _Attempt(
                Failure.AMBIGUOUS,
                APIConnectionError(
                    f"{op.id}: the reply {cause} ({type(exc).__name__})",
                    trace_id=_trace_id(response),
                ),
            ) from None
        finally:
            await aclose_response(response)

    async def _status_failure(self, op: Operation, response: httpx.Response) -> _Attempt:
        """Turn an error status into the typed exception, wrapped for the retry decision."""
        body = await self._read(op, response, limit=MAX_ERROR_BODY)
        envelope = _error_envelope(body)
        status = response.status_code
        errors = envelope.errors if envelope is not None else []
        trace_id = _trace_id(response, envelope.meta.trace_id if envelope is not None else None)
        detail = "; ".join(e.message for e in errors if e.message) or response.reason_phrase
        message = f"{op.id}: HTTP {status}: {detail}"
        from_api = _from_api(response, body, envelope)
        cls = status_error_class(status)
        if status == 429:
            retry_after = parse_retry_after(response.headers)
            error: APIStatusError = RateLimitError(
                message,
                status_code=status,
                errors=errors,
                trace_id=trace_id,
                retry_after=retry_after,
            )
            error._api_envelope = from_api
            return _Attempt(Failure.RATE_LIMITED, error, retry_after=retry_after)
        applied = status >= 500 and not op.idempotent
        error = cls(
            message,
            status_code=status,
            errors=errors,
            trace_id=trace_id,
            may_have_been_applied=applied,
        )
        error._api_envelope = from_api
        if status < 500:
            raise error  # final: a 3xx/4xx is never retried
        return _Attempt(Failure.SERVER_ERROR, error)


def _error_envelope(body: bytes) -> Envelope[object] | None:
    """An error reply's body as the API's envelope (spec ``msaspec.ResponseFields``): a JSON
    object with ``meta``, ``errors`` or ``resources``, each of its type. ``None`` for anything
    else: a proxy's or another server's page, empty or not JSON, or JSON without those keys."""
    try:
        envelope = _ERROR_ENVELOPE.validate_json(body)
    except ValidationError:
        return None
    return envelope if _ENVELOPE_KEYS & envelope.model_fields_set else None


def _from_api(response: httpx.Response, body: bytes, envelope: Envelope[object] | None) -> bool:
    """Whether an error reply is the API's own: its body is the API's envelope, or JSON by its
    ``Content-Type`` but longer than :data:`MAX_ERROR_BODY` (cut there, so not parsed: a 404
    listing thousands of ids not found)."""
    if envelope is not None:
        return True
    media = response.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
    return media == "application/json" and len(body) >= MAX_ERROR_BODY


def _decoded(encoding: str | None, data: bytes, limit: int) -> bytes:
    """``data`` decoded as its ``Content-Encoding`` says, to at most ``limit`` bytes (a small
    gzip body can decode to gigabytes); nothing when it does not decode, or in a coding this
    does not know (an error is then described by its status alone)."""
    coding = (encoding or "identity").strip().lower()
    if coding == "identity":
        return data[:limit]
    # gzip; deflate as zlib data, or raw as some servers send it
    for wbits in {"gzip": (16 + zlib.MAX_WBITS,), "deflate": (zlib.MAX_WBITS, -zlib.MAX_WBITS)}.get(
        coding, ()
    ):
        try:
            return zlib.decompressobj(wbits).decompress(data, limit)
        except zlib.error:
            continue
    return b""


def _json_bytes(body: object) -> bytes:
    """``body`` as compact UTF-8 JSON; text that is not valid Unicode is refused (JSON would
    carry it as an escaped lone surrogate, which servers fail on), and so are NaN and infinity
    (``json`` would write them as the bare words ``NaN``/``Infinity``, which are not JSON)."""
    try:
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError as exc:  # UnicodeEncodeError is one too, but is raised by encode() below
        raise InvalidArgumentError(
            "body", f"cannot be sent as JSON: {exc} (NaN and infinity have no JSON form)"
        ) from None
    try:
        return text.encode()
    except UnicodeEncodeError:
        raise InvalidArgumentError("body", NOT_UNICODE) from None


def _first_problem(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "body"
    return f"{where}: {first['msg']}"
