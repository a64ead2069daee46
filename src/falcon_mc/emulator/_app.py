"""Request handling: routing, auth, rate limits, faults and the 11 Message Center operations.

The same :class:`Service` serves the ASGI app, the in-process httpx transport and the loopback
server; each of them turns a :class:`~._http.Reply` into its own wire events.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import re
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from email.utils import formatdate
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlsplit

import anyio

from .._cloud import Cloud
from . import _fql
from ._aggregate import AggregationError, aggregate
from ._faults import FaultKind, FaultRule
from ._fields import (
    ACTIVITY_FILTER_FIELDS,
    ACTIVITY_SORTS,
    CASE_FILTER_FIELDS,
    CASE_SORTS,
    activity_resolver,
    case_resolver,
    sort_key,
)
from ._http import BodyTooLarge, Reply, Request
from ._multipart import MultipartError, parse_multipart
from ._state import mime_type_for
from ._util import envelope, error, format_time, new_trace_id

if TYPE_CHECKING:
    from ._emulator import Emulator

logger = logging.getLogger("falcon_mc.emulator")

__all__ = ["MC_OPERATIONS", "ROUTES", "Service"]

#: path -> {method: operationId}
ROUTES: dict[str, dict[str, str]] = {
    "/oauth2/token": {"POST": "oauth2AccessToken"},
    "/oauth2/revoke": {"POST": "oauth2RevokeToken"},
    "/message-center/aggregates/cases/GET/v1": {"POST": "AggregateCases"},
    "/message-center/entities/case-activities/GET/v1": {"POST": "GetCaseActivityByIds"},
    "/message-center/entities/case-activity/v1": {"POST": "CaseAddActivity"},
    "/message-center/entities/case-attachment/v1": {
        "GET": "CaseDownloadAttachment",
        "POST": "CaseAddAttachment",
    },
    "/message-center/entities/case/v1": {"POST": "CreateCase", "PATCH": "UpdateCase"},
    "/message-center/entities/case/v2": {"POST": "CreateCaseV2"},
    "/message-center/entities/cases/GET/v1": {"POST": "GetCaseEntitiesByIDs"},
    "/message-center/queries/case-activities/v1": {"GET": "QueryActivityByCaseID"},
    "/message-center/queries/cases/v1": {"GET": "QueryCasesIdsByFilter"},
}

#: The 11 Message Center operation ids.
MC_OPERATIONS = frozenset(
    op for methods in ROUTES.values() for op in methods.values() if not op.startswith("oauth2")
)

DEFAULT_LIMIT = 100
DEFAULT_RATE_LIMIT = 6000
_JSON_LIMIT = 16 * 2**20
_MULTIPART_OVERHEAD = 2**20
_INT64_MAX = 2**63 - 1
_INT_PARAM = re.compile(r"-?[0-9]+")
_NAME_FIRST = re.compile(r"[A-Za-z0-9_-]")
_NAME_CHARS = re.compile(r"[A-Za-z0-9\-_.\s]*")
#: The API host names of the clouds: the only ``Host`` a token reply names a region to.
CROWDSTRIKE_API_HOSTS = frozenset(urlsplit(cloud.base_url).hostname for cloud in Cloud)
UPLOAD_EXTENSIONS = (
    "png", "bmp", "jpg", "jpeg", "gif", "pdf", "doc", "docx", "xls", "xlsx", "pptx", "txt", "csv"
)


class _BadRequest(Exception):
    def __init__(self, status: int, message: str, id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.id = id


class RateLimiter:
    """A sliding one-minute window of request times (monotonic seconds)."""

    def __init__(self) -> None:
        self.window: deque[float] = deque()

    def hit(self, now: float, limit: int | None) -> tuple[bool, int, float]:
        """Count a request at ``now``: (allowed, remaining, when the oldest slot frees)."""
        while self.window and self.window[0] <= now - 60.0:
            self.window.popleft()
        budget = DEFAULT_RATE_LIMIT if limit is None else limit
        if limit is not None and len(self.window) >= limit:
            # the request fits once all but ``limit - 1`` of the window's requests have aged out
            return False, 0, self.window[-limit] + 60.0 if limit > 0 else now + 60.0
        self.window.append(now)
        return True, max(0, budget - len(self.window)), self.window[0] + 60.0

    def remaining(self, now: float, limit: int | None) -> int:
        """What is left in the window at ``now`` (without counting a request)."""
        while self.window and self.window[0] <= now - 60.0:
            self.window.popleft()
        budget = DEFAULT_RATE_LIMIT if limit is None else limit
        return max(0, budget - len(self.window))


class _Ctx:
    def __init__(self, service: Service, request: Request, operation: str) -> None:
        self.request = request
        self.operation = operation
        self.trace_id = new_trace_id()
        self.started = time.perf_counter()
        settings = service.emu.settings
        self.limit = (
            DEFAULT_RATE_LIMIT if settings.rate_limit_per_minute is None
            else settings.rate_limit_per_minute
        )
        self.remaining = service.limiter.remaining(
            service.emu.clock(), settings.rate_limit_per_minute
        )
        self.date = formatdate(service.emu.wall_clock(), usegmt=True)
        self.extra: list[tuple[str, str]] = []

    def headers(self) -> list[tuple[str, str]]:
        """The headers of every reply: ``Date`` (by ``wall_clock``, the clock that
        ``X-RateLimit-RetryAfter`` is reckoned by), the trace id, the rate-limit headers."""
        return [
            ("Date", self.date),
            ("X-CS-TRACEID", self.trace_id),
            ("X-RateLimit-Limit", str(self.limit)),
            ("X-RateLimit-Remaining", str(self.remaining)),
            *self.extra,
        ]

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


Handler = Callable[[_Ctx], Awaitable[Reply]]


class Service:
    """The emulator's request handler (one per :class:`Emulator`)."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.limiter = RateLimiter()
        self.tokens: dict[str, float] = {}
        self.handlers: dict[str, Handler] = {
            "oauth2AccessToken": self.token,
            "oauth2RevokeToken": self.revoke,
            "AggregateCases": self.aggregate_cases,
            "GetCaseActivityByIds": self.get_activities,
            "CaseAddActivity": self.add_activity,
            "CaseDownloadAttachment": self.download,
            "CaseAddAttachment": self.upload,
            "CreateCase": self.create_case_v1,
            "UpdateCase": self.update_case,
            "CreateCaseV2": self.create_case_v2,
            "GetCaseEntitiesByIDs": self.get_cases,
            "QueryActivityByCaseID": self.query_activities,
            "QueryCasesIdsByFilter": self.query_cases,
        }

    # plumbing -----------------------------------------------------------------------------------
    def reply(
        self,
        ctx: _Ctx,
        status: int,
        *,
        resources: list[Any] | None = None,
        errors: list[dict[str, Any]] | None = None,
        pagination: dict[str, int] | None = None,
        writes: int | None = None,
    ) -> Reply:
        body = envelope(
            trace_id=ctx.trace_id, query_time=ctx.elapsed(), resources=resources, errors=errors,
            pagination=pagination, writes=writes,
        )
        return Reply.json(status, body, ctx.headers())

    def fail(self, ctx: _Ctx, status: int, message: str, id: str | None = None) -> Reply:
        return self.reply(ctx, status, errors=[error(status, message, id)])

    async def handle(self, request: Request) -> Reply:
        """Answer one request (never raises for a client error: it becomes a reply).

        A bug in a handler becomes a 500 envelope (and a log record), as on a real server;
        a failure while reading the request body propagates (the peer is gone).
        """
        try:
            reply = await self._handle(request)
        except Exception:
            if request.body_failed:
                raise
            logger.exception("emulator: unexpected error in %s %s", request.method, request.path)
            ctx = _Ctx(self, request, "unknown")
            reply = self.fail(ctx, 500, "internal error in the emulator")
        if not reply.drop:
            self.emu.stats.responses[reply.status] += 1
            if reply.status == 429:
                self.emu.stats.rate_limited += 1
        return reply

    async def _handle(self, request: Request) -> Reply:
        emu = self.emu
        path = request.path.rstrip("/") or "/"
        methods = ROUTES.get(path)
        operation = methods.get(request.method.upper()) if methods else None
        ctx = _Ctx(self, request, operation or "unknown")
        if operation is None:
            emu.stats.requests["unknown"] += 1
            if methods is None:
                return self.fail(ctx, 404, f"no route for {request.method} {request.path}")
            ctx.extra.append(("Allow", ", ".join(sorted(methods))))
            return self.fail(ctx, 405, f"method {request.method} not allowed on {path}")
        emu.stats.requests[operation] += 1
        drawn = emu.faults.draw(operation)
        latency = self.apply_fault(drawn, "latency")
        delay = emu.settings.latency + (latency.delay if latency is not None else 0.0)
        # The reply leaves ``delay`` after the request arrived, the work being done meanwhile (as
        # on a server farm): requests that arrive together are answered together, not one
        # handler's run after another.
        reply_at = anyio.current_time() + delay
        reply = await self._answer(ctx, operation, drawn)
        if delay > 0:
            await anyio.sleep_until(reply_at)
        return reply

    def apply_fault(
        self, drawn: dict[FaultKind, FaultRule], kind: FaultKind
    ) -> FaultRule | None:
        """The drawn rule of ``kind``, counted as fired (rule and stats), if it is to be injected.

        Called only at the point where that fault takes effect: a reply of higher precedence
        (``drop_before``, 401, 429, ``status``...) leaves the rules it pre-empts uncounted.
        """
        rule = drawn.get(kind)
        if rule is None or not self.emu.faults.apply(rule):
            return None
        self.emu.stats.faults[kind] += 1
        return rule

    async def _answer(self, ctx: _Ctx, operation: str, drawn: dict[FaultKind, FaultRule]) -> Reply:
        emu = self.emu
        request = ctx.request
        if self.apply_fault(drawn, "drop_before") is not None:
            return Reply.dropped()
        is_mc = operation in MC_OPERATIONS
        if is_mc and not self.authorized(request):
            return self.fail(ctx, 401, "access denied, invalid bearer token")
        if (limited := self.apply_fault(drawn, "rate_limit")) is not None:
            return self.too_many(ctx, emu.wall_clock() + limited.retry_after)
        if is_mc:
            now = emu.clock()
            allowed, remaining, free_at = self.limiter.hit(now, emu.settings.rate_limit_per_minute)
            ctx.remaining = remaining
            if not allowed:
                return self.too_many(ctx, emu.wall_clock() + (free_at - now))
        if (failing := self.apply_fault(drawn, "status")) is not None:
            return self.fail(ctx, failing.status, failing.message or _reason(failing.status))
        try:
            reply = await self.handlers[operation](ctx)
        except _BadRequest as exc:
            reply = self.fail(ctx, exc.status, exc.message, exc.id)
        if self.apply_fault(drawn, "drop_after") is not None:
            return Reply.dropped()
        if (truncating := self.apply_fault(drawn, "truncate")) is not None:
            reply = await _truncate(reply, truncating)
        if (slow := self.apply_fault(drawn, "slow_body")) is not None:
            reply.chunks = _slow(reply.iter_chunks(), slow)
        return reply

    def too_many(self, ctx: _Ctx, retry_at_epoch: float) -> Reply:
        ctx.remaining = 0
        ctx.extra.append(("X-RateLimit-RetryAfter", str(int(retry_at_epoch * 1000))))
        return self.fail(ctx, 429, "API rate limit exceeded.")

    def authorized(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        expires = self.tokens.get(token.strip())
        if expires is None:
            return False
        if self.emu.clock() >= expires:
            del self.tokens[token.strip()]
            return False
        return True

    def issue_token(self) -> tuple[str, int]:
        """Mint a bearer token valid for ``settings.token_ttl`` seconds."""
        token = self.emu._store.hex32() + self.emu._store.hex32()
        ttl = self.emu.settings.token_ttl
        self.tokens[token] = self.emu.clock() + ttl
        self.emu.stats.tokens_issued += 1
        return token, int(ttl)

    async def json_body(self, ctx: _Ctx) -> Any:
        try:
            data = await ctx.request.read(_JSON_LIMIT)
        except BodyTooLarge as exc:
            raise _BadRequest(400, f"request body too large ({exc.size} bytes)") from None
        if not data.strip():
            raise _BadRequest(400, "a JSON request body is required")
        return _parse_json(data)

    async def json_object(self, ctx: _Ctx) -> dict[str, Any]:
        body = await self.json_body(ctx)
        if not isinstance(body, dict):
            raise _BadRequest(400, "the request body must be a JSON object")
        return body

    # oauth2 -------------------------------------------------------------------------------------
    async def token(self, ctx: _Ctx) -> Reply:
        raw = await ctx.request.read(_JSON_LIMIT)
        form = dict(_parse_form(bytes(raw)))
        client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
        if not client_id or not secret:
            return self.fail(ctx, 400, "client_id and client_secret are required")
        expected = self.emu.settings.credentials
        if expected is not None and (client_id, secret) != tuple(expected):
            return self.fail(ctx, 403, "Failed to issue access token - Not Authorized")
        token, ttl = self.issue_token()
        region = self.emu.settings.region
        if region and _is_crowdstrike_api_host(ctx.request.headers.get("host", "")):
            ctx.extra.append(("X-Cs-Region", region))
        body = {"access_token": token, "expires_in": ttl, "token_type": "bearer"}
        return Reply.json(201, body, ctx.headers())

    async def revoke(self, ctx: _Ctx) -> Reply:
        raw = await ctx.request.read(_JSON_LIMIT)
        header = ctx.request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return self.fail(ctx, 401, "revoke requires basic authentication (client id/secret)")
        try:
            client_id, _, secret = base64.b64decode(value.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return self.fail(ctx, 401, "malformed basic authentication")
        expected = self.emu.settings.credentials
        if not client_id or not secret or (
            expected is not None and (client_id, secret) != tuple(expected)
        ):
            return self.fail(ctx, 403, "access denied, authorization failed")
        token = dict(_parse_form(bytes(raw))).get("token", "")
        if not token:
            return self.fail(ctx, 400, "token is required")
        if self.tokens.pop(token, None) is not None:
            self.emu.stats.tokens_revoked += 1
        return self.reply(ctx, 200, resources=[])

    # queries ------------------------------------------------------------------------------------
    def paging(self, ctx: _Ctx) -> tuple[int, int]:
        raw_limit = ctx.request.param("limit")
        raw_offset = ctx.request.param("offset")
        limit = DEFAULT_LIMIT
        if raw_limit not in (None, ""):
            limit = _int_param("limit", raw_limit)
        page_max = self.emu.settings.page_limit_max
        if not 1 <= limit <= page_max:
            raise _BadRequest(400, f"invalid limit {limit}: must be within [1-{page_max}]")
        offset = 0
        if raw_offset not in (None, ""):
            offset = _int_param("offset", raw_offset)
        if offset < 0:
            raise _BadRequest(400, f"invalid offset {offset}: must be >= 0")
        return limit, offset

    def sorting(self, ctx: _Ctx, allowed: frozenset[str], prefix: str) -> tuple[str, bool] | None:
        raw = ctx.request.param("sort")
        if raw in (None, ""):
            return None
        text = raw.strip()
        if "|" in text:
            name, _, direction = text.partition("|")
        elif text.endswith((".asc", ".desc")):
            name, _, direction = text.rpartition(".")
        else:
            name, direction = text, "asc"
        name = name.strip()
        if not name.startswith(prefix):
            name = prefix + name
        direction = direction.strip().lower()
        if name not in allowed or direction not in ("asc", "desc"):
            values = ", ".join(f"{f}.{d}" for f in sorted(allowed) for d in ("asc", "desc"))
            raise _BadRequest(400, f"invalid sort {raw!r}; allowed values: {values}")
        return name, direction == "desc"

    def parse_filter(self, ctx: _Ctx, fields: frozenset[str]) -> _fql.Node | None:
        try:
            node = _fql.parse(ctx.request.param("filter") or "", fields)
            _fql.check_times(node)
        except _fql.FQLError as exc:
            raise _BadRequest(400, str(exc)) from None
        return node

    @staticmethod
    def ordered(
        entities: list[dict[str, Any]], sort: tuple[str, bool] | None, default: str
    ) -> list[dict[str, Any]]:
        out = sorted(entities, key=lambda e: str(e.get("id", "")))
        field, descending = sort if sort is not None else (default, True)
        out.sort(key=lambda e: sort_key(e, field), reverse=descending)
        return out

    async def query_cases(self, ctx: _Ctx) -> Reply:
        limit, offset = self.paging(ctx)
        sort = self.sorting(ctx, CASE_SORTS, "case.")
        node = self.parse_filter(ctx, CASE_FILTER_FIELDS)
        store = self.emu._store
        cases = list(store.cases.values())  # a snapshot: another thread may add cases meanwhile
        hits = [c for c in cases if _fql.evaluate(node, case_resolver(store, c))]
        hits = self.ordered(hits, sort, "case.created_time")
        page = [c["id"] for c in hits[offset : offset + limit]]
        return self.reply(
            ctx, 200, resources=page,
            pagination={"offset": offset, "limit": limit, "total": len(hits)},
        )

    async def query_activities(self, ctx: _Ctx) -> Reply:
        case_id = ctx.request.param("case_id")
        if not case_id:
            raise _BadRequest(400, "case_id is required")
        limit, offset = self.paging(ctx)
        sort = self.sorting(ctx, ACTIVITY_SORTS, "activity.")
        node = self.parse_filter(ctx, ACTIVITY_FILTER_FIELDS)
        store = self.emu._store
        acts = [store.activities[a] for a in store.activities_by_case.get(case_id, ())]
        hits = [a for a in acts if _fql.evaluate(node, activity_resolver(a))]
        hits = self.ordered(hits, sort, "activity.created_time")
        page = [a["id"] for a in hits[offset : offset + limit]]
        return self.reply(
            ctx, 200, resources=page,
            pagination={"offset": offset, "limit": limit, "total": len(hits)},
        )

    # gets ---------------------------------------------------------------------------------------
    async def ids(self, ctx: _Ctx) -> list[str]:
        body = await self.json_object(ctx)
        ids = body.get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) and i for i in ids):
            raise _BadRequest(400, "'ids' must be an array of non-empty strings")
        if not ids:
            raise _BadRequest(400, "'ids' must not be empty")
        cap = self.emu.settings.max_ids_per_request
        if cap is not None and len(ids) > cap:
            raise _BadRequest(400, f"too many ids: {len(ids)} (at most {cap} per request)")
        return list(dict.fromkeys(ids))

    def entities(self, ctx: _Ctx, ids: list[str], table: dict[str, Any], what: str) -> Reply:
        found = [table[i] for i in ids if i in table]
        errors = [error(404, f"{what} {i} not found", i) for i in ids if i not in table]
        return self.reply(ctx, 200 if found else 404, resources=found, errors=errors)

    async def get_cases(self, ctx: _Ctx) -> Reply:
        return self.entities(ctx, await self.ids(ctx), self.emu._store.cases, "case")

    async def get_activities(self, ctx: _Ctx) -> Reply:
        return self.entities(ctx, await self.ids(ctx), self.emu._store.activities, "activity")

    # writes -------------------------------------------------------------------------------------
    @staticmethod
    def text(body: dict[str, Any], key: str, *, required: bool = True) -> str:
        value = body.get(key)
        if value is None or value == "":
            if required:
                raise _BadRequest(400, f"'{key}' is required")
            return ""
        if not isinstance(value, str):
            raise _BadRequest(400, f"'{key}' must be a string")
        return value

    @staticmethod
    def refs(body: dict[str, Any], key: str) -> list[dict[str, Any]]:
        value = body.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise _BadRequest(400, f"'{key}' must be an array")
        out = []
        for item in value:
            if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not item["id"]:
                raise _BadRequest(400, f"each of '{key}' must be an object with a string 'id'")
            url = item.get("url")
            out.append({"id": item["id"], "url": url if isinstance(url, str) else ""})
        return out

    async def create(self, ctx: _Ctx, *, v2: bool) -> Reply:
        body = await self.json_object(ctx)
        title = self.text(body, "title")
        case_type = self.text(body, "type")
        content = body.get("body")
        if not isinstance(content, str) or not content:
            raise _BadRequest(400, "'body' is required (the case description)")
        user_uuid = self.text(body, "user_uuid", required=not v2)
        store = self.emu._store
        now = format_time(self.emu.wall_clock())
        fields: dict[str, Any] = {
            "title": title,
            "type": case_type,
            "body": content,
            "status": "open",
            "created_time": now,
            "detections": self.refs(body, "detections"),
            "incidents": self.refs(body, "incidents"),
            "assigner": store.author(user_uuid or None),
        }
        if v2:
            for key in ("malware_submission_id", "recon_rule_type"):
                fields[key] = self.text(body, key, required=False)
        case_id = store.add_case(**fields)
        path = f"/message-center/entities/cases/GET/v1?ids={case_id}"
        return self.reply(ctx, 200, resources=[{"id": case_id, "path": path}], writes=1)

    async def create_case_v1(self, ctx: _Ctx) -> Reply:
        return await self.create(ctx, v2=False)

    async def create_case_v2(self, ctx: _Ctx) -> Reply:
        return await self.create(ctx, v2=True)

    def case_or_404(self, case_id: str) -> dict[str, Any]:
        case = self.emu._store.cases.get(case_id)
        if case is None:
            raise _BadRequest(404, f"case {case_id} not found", case_id)
        return case

    async def update_case(self, ctx: _Ctx) -> Reply:
        body = await self.json_object(ctx)
        case = self.case_or_404(self.text(body, "id"))
        content = body.get("body")
        if content is not None and not isinstance(content, str):
            raise _BadRequest(400, "'body' must be a string")
        detections, incidents = self.refs(body, "detections"), self.refs(body, "incidents")
        if content:
            case["body"] = content
        for key, refs in (("detections", detections), ("incidents", incidents)):
            known = {r["id"] for r in case[key]}
            case[key].extend(r for r in refs if r["id"] not in known)
        case["last_modified_time"] = format_time(self.emu.wall_clock())
        path = f"/message-center/entities/cases/GET/v1?ids={case['id']}"
        return self.reply(ctx, 200, resources=[{"id": case["id"], "path": path}], writes=1)

    async def add_activity(self, ctx: _Ctx) -> Reply:
        body = await self.json_object(ctx)
        case = self.case_or_404(self.text(body, "case_id"))
        content = self.text(body, "body")
        kind = body.get("type", "comment")
        if kind != "comment":
            raise _BadRequest(
                400, f"invalid activity type {kind!r}: only 'comment' can be added via the API"
            )
        user_uuid = self.text(body, "user_uuid")
        self.emu._store.add_activity(
            case["id"], body=content, type="comment", user_uuid=user_uuid,
            created_time=format_time(self.emu.wall_clock()),
        )
        return self.reply(ctx, 200, writes=1)

    # attachments --------------------------------------------------------------------------------
    async def upload(self, ctx: _Ctx) -> Reply:
        content_type = ctx.request.headers.get("content-type", "")
        if not content_type.lower().startswith("multipart/form-data"):
            raise _BadRequest(400, "the request must be multipart/form-data")
        limit = self.emu.settings.max_attachment_bytes
        try:
            raw = await ctx.request.read(limit + _MULTIPART_OVERHEAD)
        except BodyTooLarge:
            raise _BadRequest(400, _too_big(limit)) from None
        self.emu.stats.bytes_uploaded += len(raw)
        try:
            form = parse_multipart(raw, content_type)
        except MultipartError as exc:
            raise _BadRequest(400, f"invalid multipart body: {exc}") from None
        del raw
        case_id = form.fields.get("case_id", "")
        user_uuid = form.fields.get("user_uuid", "")
        if not case_id:
            raise _BadRequest(400, "'case_id' is required")
        if not user_uuid:
            raise _BadRequest(400, "'user_uuid' is required")
        upload = form.files.get("file")  # spec: formData "file"; other part names don't count
        if upload is None:
            raise _BadRequest(400, "a file part named 'file' is required")
        name, data = upload
        _check_name(name)
        if len(data) > limit:
            raise _BadRequest(400, _too_big(limit))
        self.case_or_404(case_id)
        store = self.emu._store
        att_id = store.add_attachment(
            case_id, name, data, user_uuid=user_uuid,
            created_time=format_time(self.emu.wall_clock()),
        )
        store.cases[case_id]["last_modified_time"] = format_time(self.emu.wall_clock())
        return self.reply(
            ctx, 200, resources=[store.attachments[att_id].metadata()], writes=1
        )

    async def download(self, ctx: _Ctx) -> Reply:
        att_id = ctx.request.param("id") or ctx.request.param("ids")
        if not att_id:
            raise _BadRequest(400, "'id' is required")
        record = self.emu._store.attachments.get(att_id)
        if record is None:
            raise _BadRequest(404, f"attachment {att_id} not found", att_id)
        data = record.data
        chunk = max(1, self.emu.settings.chunk_size)
        self.emu.stats.bytes_downloaded += len(data)
        headers = [
            ("Content-Type", mime_type_for(record.name)),
            ("Content-Length", str(len(data))),
            ("Content-Disposition", _disposition(record.name)),
            *ctx.headers(),
        ]
        return Reply(status=200, headers=headers, chunks=_chunked(data, chunk))

    async def aggregate_cases(self, ctx: _Ctx) -> Reply:
        body = await self.json_body(ctx)
        queries = [body] if isinstance(body, dict) else body
        if not isinstance(queries, list) or not queries:
            raise _BadRequest(400, "the body must be a non-empty JSON array of aggregate queries")
        try:
            results = aggregate(queries, self.emu._store, now=self.emu.wall_clock())
        except AggregationError as exc:
            raise _BadRequest(400, str(exc)) from None
        return self.reply(ctx, 200, resources=results)


def _reject_constant(name: str) -> Any:
    """``parse_constant`` hook: ``NaN``/``Infinity``/``-Infinity`` are not JSON (RFC 8259)."""
    raise ValueError(f"{name} is not a valid JSON value")


def _out_of_range(text: str) -> ValueError:
    """The error for a number literal no float64 holds (shortened if long)."""
    shown = text if len(text) <= 40 else f"{text[:20]}...{text[-10:]}"
    return ValueError(f"number {shown} is out of range")


def _finite_float(text: str) -> float:
    """``parse_float`` hook: ``1e400`` overflows a float64; refused, not read as infinity."""
    value = float(text)
    if math.isinf(value):
        raise _out_of_range(text)
    return value


def _float64_int(text: str) -> int:
    """``parse_int`` hook: an integer literal beyond the float64 range (``1`` and 400 zeros)
    fits no numeric type of a Go server, so it is refused too."""
    value = int(text)
    try:
        float(value)
    except OverflowError:
        raise _out_of_range(text) from None
    return value


def _parse_json(data: bytes | bytearray) -> Any:
    """Decode a JSON request body strictly, as a Go server would; a 400 if it is not JSON.

    Refused: invalid UTF-8, syntax errors, the non-standard ``NaN``/``Infinity`` tokens,
    numbers beyond the float64 range (``1e400``, which Python would read as infinity),
    integers too long for Python to convert, and nesting too deep to decode (a
    ``RecursionError`` would otherwise become a 500).
    """
    try:
        return json.loads(
            data,
            parse_constant=_reject_constant,
            parse_float=_finite_float,
            parse_int=_float64_int,
        )
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _BadRequest(400, f"invalid JSON body: {exc}") from None
    except RecursionError:
        raise _BadRequest(400, "invalid JSON body: nested too deeply") from None


def _int_param(name: str, raw: str) -> int:
    """A query parameter holding an integer (the spec's ``integer``, no format: an ``int64``):
    ASCII digits, an optional leading ``-``.

    Python's ``int()`` would also take ``1_0``, surrounding blanks and non-ASCII digits; a
    strict server refuses them, and values outside the int64 range. A negative number is
    returned for the caller's range check, which words the error.
    """
    if not _INT_PARAM.fullmatch(raw):
        raise _BadRequest(400, f"invalid {name} {raw!r}: an integer is required")
    digits = raw.lstrip("-").lstrip("0")
    if len(digits) > len(str(_INT64_MAX)) or int(digits or "0") > _INT64_MAX:
        raise _BadRequest(
            400, f"invalid {name} {raw!r}: out of range (an int64, at most {_INT64_MAX})"
        )
    return int(raw)


def _too_big(limit: int) -> str:
    return f"file too large: the maximum attachment size is {limit} bytes"


def _check_name(name: str) -> None:
    if not name:
        raise _BadRequest(400, "the file part needs a file name")
    if len(name) > 255:
        raise _BadRequest(400, "invalid file name: at most 255 characters are allowed")
    if not _NAME_FIRST.fullmatch(name[0]):
        raise _BadRequest(400, "invalid file name: it must start with a-z, A-Z, 0-9, _ or -")
    if not _NAME_CHARS.fullmatch(name):
        raise _BadRequest(
            400, "invalid file name: only a-z, A-Z, 0-9, -, _, . and spaces are allowed"
        )
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if ext not in UPLOAD_EXTENSIONS:
        raise _BadRequest(
            400, f"invalid file type {ext!r}: allowed types are {', '.join(UPLOAD_EXTENSIONS)}"
        )


def _disposition(name: str) -> str:
    """``attachment; filename="..."`` (plus RFC 5987 ``filename*`` for non-ASCII names)."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in name)
    value = f'attachment; filename="{fallback}"'
    if fallback != name:
        value += f"; filename*=UTF-8''{quote(name, safe='')}"
    return value


def _is_crowdstrike_api_host(host: str) -> bool:
    """Whether a Host header names a cloud's API host (``api.crowdstrike.com``, ``...:443``).

    Only then is the emulator standing in for CrowdStrike (an in-process transport, a proxy):
    a client that follows ``X-Cs-Region`` (FalconPy does, whatever its ``base_url``) would
    otherwise leave an emulator reached by IP address or service name for the real cloud.
    """
    name = host.strip().lower()
    if name.count(":") == 1:
        name = name.split(":", 1)[0]
    return name.rstrip(".") in CROWDSTRIKE_API_HOSTS


def _parse_form(raw: bytes) -> list[tuple[str, str]]:
    try:
        return parse_qsl(raw.decode(), keep_blank_values=True)
    except UnicodeDecodeError:
        return []


_REASONS = {
    400: "Bad Request", 403: "Forbidden", 404: "Not Found", 409: "Conflict",
    429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Gateway Timeout",
}


def _reason(status: int) -> str:
    return f"injected fault: {_REASONS.get(status, 'error')}"


async def _chunked(data: bytes, size: int) -> AsyncIterator[bytes]:
    view = memoryview(data)
    for start in range(0, len(data), size):
        yield bytes(view[start : start + size])


async def _truncate(reply: Reply, rule: FaultRule) -> Reply:
    declared = reply.header("Content-Length")
    body = bytearray()
    async for chunk in reply.iter_chunks():
        body += chunk
    total = int(declared) if declared is not None else len(body)
    keep = int(total * rule.fraction)
    reply.chunks = bytes(body[:keep])
    reply.abort = True
    return reply


async def _slow(chunks: AsyncIterable[bytes], rule: FaultRule) -> AsyncIterator[bytes]:
    first = True
    try:
        async for chunk in chunks:
            view = memoryview(chunk)
            for start in range(0, len(chunk), rule.chunk_size):
                if not first:
                    await anyio.sleep(rule.delay)
                first = False
                yield bytes(view[start : start + rule.chunk_size])
    finally:
        closer = getattr(chunks, "aclose", None)
        if closer is not None:  # a body abandoned mid-way closes its source too
            await closer()

