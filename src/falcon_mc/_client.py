"""``AsyncMessageCenter``: configuration, lifecycle, and the 11 operations as thin methods.

Every operation builds its request here (arguments checked first, nothing sent on bad input) and
hands it to the one request pipeline (:mod:`falcon_mc._pipeline`).
"""

from __future__ import annotations

import copy
import enum
import operator
import os
import warnings
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Callable,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager
from types import TracebackType
from typing import Any, Self, TypeVar, cast

import anyio
import httpx
from pydantic import BaseModel, SecretStr, TypeAdapter

from . import _operations as ops
from ._args import (
    build_model,
    check_count,
    check_limit,
    check_offset,
    check_seconds,
    check_sort,
    check_text,
    check_timeout,
    normalize_filter,
    normalize_ids,
    normalize_refs,
)
from ._auth import TokenManager
from ._cloud import Cloud, resolve_base_url
from ._download import AttachmentDownload
from ._exceptions import InvalidArgumentError, NotFoundError
from ._filenames import UPLOAD_MAX_BYTES
from ._lanes import LaneTransport, default_transport
from ._pagination import AsyncPaginator
from ._pipeline import Operation, Pipeline
from ._ratelimit import RateLimitGate
from ._retry import Options, RetryPolicy
from ._tasks import task_group
from ._upload import BinaryFile, attachment_body
from .fql import ACTIVITY_SORT_VALUES, CASE_SORT_VALUES, Filter
from .models import (
    ActivityCreationRequest,
    AffectedEntity,
    AggregateQuery,
    AggregationResult,
    Attachment,
    Case,
    CaseActivity,
    CaseCreationRequest,
    CaseCreationRequestV2,
    CaseUpdateRequest,
    EntityRef,
    Envelope,
    ErrorDetail,
    IdPage,
    RateLimit,
    validate_aggregate_depth,
)

__all__ = ["AsyncMessageCenter"]

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
DEFAULT_MAX_CONCURRENCY = 16
DEFAULT_MAX_IDS_PER_REQUEST = 500

_IDS: TypeAdapter[Envelope[str]] = TypeAdapter(Envelope[str])
_ID_PAGE = IdPage[str]  # parametrised once, at import
_AGGREGATE_KEYS = frozenset(AggregateQuery.model_fields) | {
    info.serialization_alias for info in AggregateQuery.model_fields.values()
    if info.serialization_alias
}
_ID = operator.attrgetter("id")  # a Case's or CaseActivity's id
_CASES: TypeAdapter[Envelope[Case]] = TypeAdapter(Envelope[Case])
_ACTIVITIES: TypeAdapter[Envelope[CaseActivity]] = TypeAdapter(Envelope[CaseActivity])
_AFFECTED: TypeAdapter[Envelope[AffectedEntity]] = TypeAdapter(Envelope[AffectedEntity])
_AGGREGATES: TypeAdapter[Envelope[AggregationResult]] = TypeAdapter(Envelope[AggregationResult])
_ATTACHMENTS: TypeAdapter[Envelope[Attachment]] = TypeAdapter(Envelope[Attachment])
#: add-activity's reply: meta and errors by the spec; ``resources`` (should the API add them)
#: kept as plain JSON values rather than failing a write that was done.
_META_ONLY: TypeAdapter[Envelope[object]] = TypeAdapter(Envelope[object])

Refs = Sequence[EntityRef | Mapping[str, Any]]
Queries = Sequence[AggregateQuery | Mapping[str, Any]] | AggregateQuery | Mapping[str, Any]
Payload = Mapping[str, Any] | BaseModel


class _Unchanged(enum.Enum):
    """The default of a ``with_options`` keyword: the setting stays as it is (``None`` is a
    setting: no timeout)."""

    UNCHANGED = "unchanged"


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


def _something_to_update(request: CaseUpdateRequest) -> None:
    if request.body is None and request.detections is None and request.incidents is None:
        raise InvalidArgumentError("content", "nothing to update: pass content, detections or "
                                   "incidents")


def _refs(detections: object, incidents: object) -> dict[str, list[object]]:
    """The ``detections``/``incidents`` keywords given; ``None`` is "not given" (as FalconPy)."""
    given = {
        "detections": normalize_refs("detections", detections),
        "incidents": normalize_refs("incidents", incidents),
    }
    return {key: refs for key, refs in given.items() if refs is not None}


def _one_of(argument: str, **aliases: T | None) -> T | None:
    """The value of whichever alias keyword was given (FalconPy's names); at most one."""
    given = {key: value for key, value in aliases.items() if value is not None}
    if len(given) > 1:
        raise InvalidArgumentError(argument, f"pass only one of {', '.join(sorted(given))}")
    return next(iter(given.values()), None)


def _body_queries(body: object) -> list[tuple[str, object]]:
    """``aggregate_cases(body=)``: a list of queries, or one query (a dict or model), each
    paired with the argument that names it in errors (``body.0``, or ``body``)."""
    if body is None:
        return []
    if isinstance(body, Mapping | AggregateQuery):
        return [("body", body)]
    if isinstance(body, str | bytes) or not isinstance(body, Iterable):
        raise InvalidArgumentError(
            "body", f"expected a list of aggregate queries (or one query), got {body!r}"
        )
    return [(f"body.{index}", item) for index, item in enumerate(body)]


def _only_comments(request: ActivityCreationRequest) -> None:
    if request.type != "comment":
        raise InvalidArgumentError(
            "type", f"only 'comment' activities can be added through the API, got {request.type!r}"
        )


class AsyncMessageCenter:
    """Async client for the CrowdStrike Falcon Message Center API.

    Credentials come from the arguments or from ``FALCON_CLIENT_ID`` / ``FALCON_CLIENT_SECRET``.
    One instance is meant to be shared by every task of a service; close it with
    ``await mc.aclose()`` or use it as an async context manager.

    Example::

        async with AsyncMessageCenter(base_url=Cloud.US2) as mc:
            page = await mc.query_cases(filter="case.status:'open'", limit=10)
            cases = await mc.get_cases(page.ids)
            for case in cases.resources:
                print(case.id, case.title)
    """

    def __init__(
        self,
        *,
        client_id: str | None = None,
        client_secret: str | SecretStr | None = None,
        base_url: str | Cloud = Cloud.US1,
        member_cid: str | None = None,
        timeout: float | httpx.Timeout | None = DEFAULT_TIMEOUT,
        max_retries: int = 3,
        retry_base_delay: float = 0.5,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        max_ids_per_request: int = DEFAULT_MAX_IDS_PER_REQUEST,
        max_attachment_bytes: int = UPLOAD_MAX_BYTES,
        strict_sort: bool = True,
        http2: bool = False,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        client_id = client_id or os.environ.get("FALCON_CLIENT_ID")
        secret = client_secret or os.environ.get("FALCON_CLIENT_SECRET")
        if not client_id:
            raise InvalidArgumentError(
                "client_id", "pass client_id= or set FALCON_CLIENT_ID in the environment"
            )
        if not secret:
            raise InvalidArgumentError(
                "client_secret", "pass client_secret= or set FALCON_CLIENT_SECRET in the environment"
            )
        check_count("max_concurrency", max_concurrency, minimum=1)
        check_count("max_ids_per_request", max_ids_per_request, minimum=1)
        check_count("max_attachment_bytes", max_attachment_bytes, minimum=1)
        check_count("max_retries", max_retries, minimum=0)
        check_seconds("retry_base_delay", retry_base_delay, zero=True)
        url, autodiscover = resolve_base_url(base_url)
        self._client_id = client_id
        self._max_concurrency = max_concurrency
        self._max_ids = max_ids_per_request
        self._max_attachment_bytes = max_attachment_bytes
        self._strict_sort = strict_sort
        self._options = Options(
            timeout=check_timeout(timeout),
            policy=RetryPolicy(max_retries=max_retries, base_delay=retry_base_delay),
        )
        # room beyond max_concurrency for the token and for downloads being read
        connections = max_concurrency + 4
        transport = transport or default_transport(connections, http2=http2)
        http = httpx.AsyncClient(
            base_url=url,
            transport=transport,  # None: httpx's own pool (HTTP/2, or a proxy from the environment)
            http2=http2,
            limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            timeout=self._options.timeout,
            follow_redirects=False,
        )
        auth = TokenManager(
            http=http,
            client_id=client_id,
            client_secret=secret if isinstance(secret, SecretStr) else SecretStr(secret),
            member_cid=member_cid,
            autodiscover=autodiscover,
            policy=self._options.policy,
        )
        self._pipeline = Pipeline(
            http=http,
            auth=auth,
            gate=RateLimitGate(low_water=max_concurrency),
            limiter=anyio.CapacityLimiter(max_concurrency),
            writes_done=transport.writes_done if isinstance(transport, LaneTransport) else None,
        )

    # -- lifecycle ------------------------------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"AsyncMessageCenter(base_url={str(self._pipeline.http.base_url)!r}, "
            f"client_id={self._client_id!r}, max_concurrency={self._max_concurrency})"
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Revoke the token (best effort, never raises) and close the connection pool."""
        with anyio.CancelScope(shield=True):
            try:
                await self._pipeline.auth.revoke()
            finally:  # asyncio's own cancellation (no shield stops it) may end the revoke
                await self._pipeline.http.aclose()

    def with_options(
        self,
        *,
        timeout: float | httpx.Timeout | _Unchanged | None = _Unchanged.UNCHANGED,
        max_retries: int | None = None,
    ) -> AsyncMessageCenter:
        """A view of this client with other timeouts or retries; it shares the pool and token.

        What is not given stays as it is; ``timeout=None`` means no limit, as on the client.

        Example::

            fast = mc.with_options(timeout=5, max_retries=0)
            await fast.get_cases(ids)
        """
        clone = copy.copy(self)
        policy = self._options.policy
        if max_retries is not None:
            retries = check_count("max_retries", max_retries, minimum=0)
            policy = RetryPolicy(max_retries=retries, base_delay=policy.base_delay)
        new_timeout = (
            self._options.timeout if timeout is _Unchanged.UNCHANGED else check_timeout(timeout)
        )
        clone._options = Options(timeout=new_timeout, policy=policy)
        return clone

    @property
    def rate_limit(self) -> RateLimit | None:
        """The last ``X-RateLimit-*`` snapshot seen, or ``None`` before the first reply."""
        return self._pipeline.gate.snapshot

    @property
    def base_url(self) -> str:
        """The API base URL in use (after cloud autodiscovery, if any)."""
        return str(self._pipeline.http.base_url).rstrip("/")

    # -- queries --------------------------------------------------------------------------------

    def query_cases(
        self,
        *,
        filter: str | Filter | None = None,
        sort: str | None = None,
        limit: int | str | None = None,
        offset: int | str | None = None,
    ) -> AsyncPaginator[str]:
        """Case ids matching an FQL filter (``QueryCasesIdsByFilter``).

        ``await`` the result for one page (:class:`IdPage`), or ``async for`` it for every id.

        Example::

            page = await mc.query_cases(filter="case.status:'open'", sort="case.created_time.desc")
            async for case_id in mc.query_cases(filter=fql.eq("case.type", "fc:contact")):
                ...
        """
        params = self._query_params(filter, sort, limit, offset, CASE_SORT_VALUES)
        return self._paginate(ops.QUERY_CASES, params, limit, offset)

    def query_activities(
        self,
        *,
        case_id: str,
        filter: str | Filter | None = None,
        sort: str | None = None,
        limit: int | str | None = None,
        offset: int | str | None = None,
    ) -> AsyncPaginator[str]:
        """Activity ids of one case (``QueryActivityByCaseID``).

        Example::

            page = await mc.query_activities(case_id=case_id, sort="activity.created_time.asc")
        """
        params = self._query_params(filter, sort, limit, offset, ACTIVITY_SORT_VALUES)
        params["case_id"] = check_text("case_id", case_id)
        return self._paginate(ops.QUERY_ACTIVITIES, params, limit, offset)

    def _query_params(
        self,
        filter: object,
        sort: object,
        limit: object,
        offset: object,
        sorts: frozenset[str],
    ) -> dict[str, str | int]:
        params: dict[str, str | int] = {}
        check_limit(limit)
        check_offset(offset)
        if (text := normalize_filter(filter)) is not None:
            params["filter"] = text
        if (order := check_sort(sort, sorts, strict=self._strict_sort)) is not None:
            params["sort"] = order
        return params

    def _paginate(
        self,
        op: Operation,
        params: dict[str, str | int],
        limit: int | str | None,
        offset: int | str | None,
    ) -> AsyncPaginator[str]:
        async def fetch(page_offset: int, page_limit: int | None) -> IdPage[str]:
            query = dict(params)
            if page_limit is not None:
                query["limit"] = page_limit
            if page_offset or offset is not None:
                query["offset"] = page_offset
            envelope = await self._pipeline.call(op, self._options, _IDS, params=query)
            page = _ID_PAGE.from_envelope(envelope)
            # Where this page starts is the offset asked. Falcon APIs differ on what the reply's
            # meta.pagination.offset means (this page's start, or the next page's), and some
            # leave it out; the raw value stays in page.meta.
            page.offset = page_offset
            return page

        return AsyncPaginator(
            fetch,
            offset=check_offset(offset),
            limit=check_limit(limit),
            concurrency=self._max_concurrency,
        )

    # -- gets -----------------------------------------------------------------------------------

    async def get_cases(
        self, ids: str | Sequence[str] | Payload | None = None, *, body: Payload | None = None
    ) -> Envelope[Case]:
        """Cases by id (``GetCaseEntitiesByIDs``), any number of ids.

        Ids are split into batches of ``max_ids_per_request`` fetched concurrently; results come
        in the order asked, duplicates fetched once; ids not found are listed in ``errors``
        (also when none is found: the API's 404 is not raised, but a 404 whose body is not the
        API's envelope, such as a proxy's page, raises ``NotFoundError``). A dict given as
        ``ids`` is the whole payload, as ``body=`` (FalconPy sends it so).

        Example::

            envelope = await mc.get_cases("id1,id2")
            for case in envelope.resources:
                print(case.title, case.status)
        """
        wanted = self._ids_argument(ids, body)
        return await self._get_by_ids(ops.GET_CASES, _CASES, wanted, _ID)

    async def get_case_activity(
        self, ids: str | Sequence[str] | Payload | None = None, *, body: Payload | None = None
    ) -> Envelope[CaseActivity]:
        """Activities by id (``GetCaseActivityByIds``), batched and concurrent as ``get_cases``.

        Example::

            page = await mc.query_activities(case_id=case_id)
            activities = await mc.get_case_activity(page.ids)
        """
        wanted = self._ids_argument(ids, body)
        return await self._get_by_ids(ops.GET_CASE_ACTIVITY, _ACTIVITIES, wanted, _ID)

    @staticmethod
    def _ids_argument(ids: object, body: Payload | None) -> list[str]:
        if isinstance(ids, Mapping | BaseModel) and body is None:  # a whole payload: the body
            ids, body = None, ids
        if body is not None:
            if ids is not None:
                raise InvalidArgumentError("body", "pass either ids or body, not both")
            raw = body.model_dump() if isinstance(body, BaseModel) else body
            return normalize_ids(raw.get("ids"), argument="body.ids")
        return normalize_ids(ids)

    async def _get_by_ids(
        self,
        op: Operation,
        adapter: TypeAdapter[Envelope[T]],
        ids: list[str],
        key: Callable[[T], str | None],
    ) -> Envelope[T]:
        batches = [ids[i : i + self._max_ids] for i in range(0, len(ids), self._max_ids)]
        results: list[Envelope[T] | None] = [None] * len(batches)
        in_order = [False] * len(batches)

        async def fetch(index: int, batch: list[str]) -> None:
            envelope: Envelope[T]
            try:
                envelope = await self._pipeline.call(
                    op, self._options, adapter, json_body={"ids": batch}
                )
            except NotFoundError as exc:  # none of the batch exists: not an error for a bulk get
                if not exc._api_envelope:  # a proxy's page, a wrong base URL: says nothing of ids
                    raise
                envelope = adapter.validate_python({"meta": {"trace_id": exc.trace_id}})
                envelope.errors = exc.errors or [
                    ErrorDetail(code=404, message=f"{item} not found", id=item) for item in batch
                ]
            results[index] = envelope
            # Checked now, while other batches are in flight: a reply that lists exactly its
            # batch, in order (the usual case), makes the merge below a concatenation.
            in_order[index] = [key(item) for item in envelope.resources] == batch

        if len(batches) == 1:
            await fetch(0, batches[0])
        else:
            async with task_group() as tg:
                for index, batch in enumerate(batches):
                    tg.start_soon(fetch, index, batch)
        envelopes = [env for env in results if env is not None]
        if all(in_order):
            resources = [item for env in envelopes for item in env.resources]
        else:  # ids missing, repeated or reordered: put each id's item back in its place
            by_id: dict[str, T] = {}
            unkeyed: list[T] = []
            for env in envelopes:
                for item in env.resources:
                    item_id = key(item)
                    if item_id is None:
                        unkeyed.append(item)
                    else:
                        by_id.setdefault(item_id, item)
            resources = [by_id.pop(i) for i in ids if i in by_id]
            # items no id asked for (an id spelt otherwise by the server...) are kept, last
            resources += [*by_id.values(), *unkeyed]
        merged = envelopes[0]
        merged.resources = resources
        merged.errors = [error for env in envelopes for error in env.errors]
        return merged

    # -- aggregates -----------------------------------------------------------------------------

    async def aggregate_cases(
        self,
        *queries: AggregateQuery | Mapping[str, Any],
        body: Queries | None = None,
        **query: Any,
    ) -> Envelope[AggregationResult]:
        """Aggregate cases (``AggregateCases``): one result per query, with buckets.

        Pass :class:`AggregateQuery` objects or dicts, a raw ``body=`` (a list of queries, or
        one query), or FalconPy-style keywords for a single query; ``body=`` and keywords do
        not mix.

        Example::

            result = await mc.aggregate_cases(
                AggregateQuery(name="by_status", type="terms", field="case.status", size=10)
            )
            for bucket in result.resources[0].buckets:
                print(bucket.label, bucket.count)
        """
        items = [("queries", item) for item in queries] + _body_queries(body)
        if query:
            if body is not None:  # FalconPy ignores the keywords then; one would be dropped
                names = ", ".join(sorted(query))
                raise InvalidArgumentError("body", f"pass either body= or keywords ({names})")
            for key in query:  # a typo (``siz=``) would go to the server, which ignores it
                if key not in _AGGREGATE_KEYS:
                    raise InvalidArgumentError(key, "not a field of an aggregate query")
            items.append(("queries", query))
        if not items:
            raise InvalidArgumentError("queries", "at least one aggregate query is required")
        payload = []
        for argument, item in items:
            model = build_model(argument, AggregateQuery, item)
            validate_aggregate_depth(model, argument=argument)
            payload.append(_dump(model))
        return await self._pipeline.call(
            ops.AGGREGATE_CASES, self._options, _AGGREGATES, json_body=payload
        )

    # -- writes ---------------------------------------------------------------------------------

    async def create_case(
        self,
        *,
        content: str | None = None,
        title: str | None = None,
        type: str | None = None,
        user_uuid: str | None = None,
        detections: Refs | None = (),
        incidents: Refs | None = (),
        body: Payload | None = None,
        case_type: str | None = None,
    ) -> Envelope[AffectedEntity]:
        """Create a case with the legacy v1 route (``CreateCase``).

        Removed from CrowdStrike's current spec; kept for older tenants. Emits a
        ``DeprecationWarning``: prefer :meth:`create_case_v2`.

        Example::

            created = await mc.create_case(content="...", title="...", type="fc:contact",
                                           user_uuid=user)
        """
        warnings.warn(
            "CreateCase (v1) was removed from CrowdStrike's current API; use create_case_v2",
            DeprecationWarning,
            stacklevel=2,
        )
        keywords = {
            "body": content, "title": title, "user_uuid": user_uuid,
            "type": _one_of("type", type=type, case_type=case_type),
            **_refs(detections, incidents),
        }
        return await self._write(
            ops.CREATE_CASE, _AFFECTED, CaseCreationRequest, body, keywords,
            required=("body", "title", "type", "user_uuid"),
        )

    async def create_case_v2(
        self,
        *,
        content: str | None = None,
        title: str | None = None,
        type: str | None = None,
        user_uuid: str | None = None,
        detections: Refs | None = (),
        incidents: Refs | None = (),
        malware_submission_id: str | None = None,
        recon_rule_type: str | None = None,
        body: Payload | None = None,
        case_type: str | None = None,
    ) -> Envelope[AffectedEntity]:
        """Create a case (``CreateCaseV2``); ``resources[0].id`` is the new case's id.

        ``case_type=`` (FalconPy's alias) works for ``type=``.

        Example::

            created = await mc.create_case_v2(
                content="Please review this detection", title="Suspicious PowerShell",
                type="fc:detection-support", user_uuid=user,
                detections=[{"id": "ldt:...", "product": "epp", "url": "https://..."}],
            )
            case_id = created.resources[0].id
        """
        keywords = {
            "body": content, "title": title, "user_uuid": user_uuid,
            "type": _one_of("type", type=type, case_type=case_type),
            **_refs(detections, incidents),
            "malware_submission_id": malware_submission_id,
            "recon_rule_type": recon_rule_type,
        }
        return await self._write(
            ops.CREATE_CASE_V2, _AFFECTED, CaseCreationRequestV2, body, keywords,
            required=("body", "title", "type"),
        )

    async def update_case(
        self,
        *,
        id: str | None = None,
        content: str | None = None,
        detections: Refs | None = None,
        incidents: Refs | None = None,
        body: Payload | None = None,
    ) -> Envelope[AffectedEntity]:
        """Update a case's body, detections and incidents with the legacy ``UpdateCase`` route.

        Only what is given is sent (as FalconPy does), so the rest of the case is left as it is.
        Removed from CrowdStrike's current spec; emits a ``DeprecationWarning``.

        Example::

            await mc.update_case(id=case_id, content="new text")
        """
        warnings.warn(
            "UpdateCase was removed from CrowdStrike's current API; older tenants only",
            DeprecationWarning,
            stacklevel=2,
        )
        keywords = {
            "id": id, "body": content,
            **_refs(detections, incidents),
        }
        return await self._write(
            ops.UPDATE_CASE, _AFFECTED, CaseUpdateRequest, body, keywords, required=("id",),
            check=_something_to_update,
        )

    async def add_case_activity(
        self,
        *,
        case_id: str | None = None,
        content: str | None = None,
        user_uuid: str | None = None,
        type: str | None = None,
        body: Payload | None = None,
        activity_type: str | None = None,
    ) -> Envelope[object]:
        """Add a comment to a case (``CaseAddActivity``). The reply carries no activity id.

        The spec's reply is ``meta`` and ``errors`` only, so ``resources`` is normally empty;
        should the API send some, they are kept as plain JSON values (dicts, strings).

        ``type`` defaults to ``comment``, the only type the API accepts (``activity_type=`` is
        FalconPy's alias).

        Example::

            await mc.add_case_activity(case_id=case_id, content="Looking into it", user_uuid=user)
        """
        keywords = {"case_id": case_id, "body": content, "user_uuid": user_uuid}
        if (kind := _one_of("type", type=type, activity_type=activity_type)) is not None:
            keywords["type"] = kind  # else the model's default, "comment"
        return await self._write(
            ops.ADD_CASE_ACTIVITY, _META_ONLY, ActivityCreationRequest, body, keywords,
            required=("case_id", "body", "user_uuid"),
            check=_only_comments,
        )

    async def _write(
        self,
        op: Operation,
        adapter: TypeAdapter[Envelope[T]],
        model_type: type[M],
        body: Payload | None,
        keywords: dict[str, Any],
        *,
        required: tuple[str, ...],
        check: Callable[[M], None] | None = None,
    ) -> Envelope[T]:
        """Build a write's request model (from ``body=`` or the keywords), check it, send it."""
        if body is not None:
            given = [k for k, v in keywords.items() if v is not None and v != []]
            if given:  # one of them would be dropped without a word
                names = ", ".join("content" if k == "body" else k for k in given)
                raise InvalidArgumentError("body", f"pass either body= or keywords ({names})")
            model = build_model("body", model_type, body)
        else:
            model = build_model("", model_type, keywords)
        for name in required:  # present and non-blank (the model allows None for tolerance)
            check_text("content" if name == "body" else name, getattr(model, name))
        if check is not None:
            check(model)
        return await self._pipeline.write(op, self._options, adapter, json_body=_dump(model))

    # -- attachments ----------------------------------------------------------------------------

    async def add_case_attachment(
        self,
        *,
        case_id: str,
        user_uuid: str,
        file_data: bytes | BinaryFile | None = None,
        path: str | os.PathLike[str] | None = None,
        file: BinaryFile | None = None,
        filename: str | None = None,
        content_type: str | None = None,
        file_name: str | None = None,
        sample: bytes | BinaryFile | None = None,
        upfile: bytes | BinaryFile | None = None,
    ) -> Envelope[Attachment]:
        """Upload an attachment (``CaseAddAttachment``) from bytes, a path or a binary file.

        Files are streamed from disk in chunks; the spec's rules are checked first (at most
        15 MB; name ``[A-Za-z0-9_-]`` first, then ``[A-Za-z0-9-_. ]``, at most 255 characters;
        png, bmp, jpg, jpeg, gif, pdf, doc, docx, xls, xlsx, pptx, txt, csv). FalconPy's
        keywords work too: ``file_name`` for ``filename``, ``sample``/``upfile`` for
        ``file_data`` (which also takes a binary file object, as ``file=`` does).
        ``content_type`` is the file's own type (guessed from its name when not given), never
        the request's ``multipart/form-data``, which is set here.

        Example::

            uploaded = await mc.add_case_attachment(case_id=case_id, user_uuid=user,
                                                    path="evidence/report.pdf")
            print(uploaded.resources[0].id)
        """
        check_text("case_id", case_id)
        check_text("user_uuid", user_uuid)
        data = cast(  # mypy joins bytes and IO[bytes] to object
            "bytes | BinaryFile | None",
            _one_of("file_data", file_data=file_data, sample=sample, upfile=upfile),
        )
        build = await attachment_body(
            {"case_id": case_id, "user_uuid": user_uuid},
            file_data=data,
            path=path,
            file=file,
            filename=_one_of("filename", filename=filename, file_name=file_name),
            content_type=content_type,
            limit=self._max_attachment_bytes,
        )
        return await self._pipeline.write(
            ops.ADD_CASE_ATTACHMENT, self._options, _ATTACHMENTS, body=build
        )

    def download_case_attachment(self, id: str) -> AbstractAsyncContextManager[AttachmentDownload]:
        """Stream an attachment (``CaseDownloadAttachment``): an async context manager.

        The connection is released when the block ends, also on error or cancellation.

        Example::

            async with mc.download_case_attachment(attachment_id) as download:
                path = await download.save("downloads/")
        """
        attachment_id = check_text("id", id)
        return self._download(attachment_id)

    @asynccontextmanager
    async def _download(self, attachment_id: str) -> AsyncIterator[AttachmentDownload]:
        def reopen() -> AbstractAsyncContextManager[httpx.Response]:
            return self._pipeline.stream(
                ops.DOWNLOAD_CASE_ATTACHMENT, self._options, params={"id": attachment_id}
            )

        async with reopen() as response:
            yield AttachmentDownload(
                response, attachment_id, reopen=reopen,
                max_retries=self._options.policy.max_retries,
                client_closed=lambda: self._pipeline.http.is_closed,
            )

    # -- bulk iteration -------------------------------------------------------------------------

    async def iter_cases(
        self,
        *,
        filter: str | Filter | None = None,
        sort: str | None = None,
        window: int | None = None,
    ) -> AsyncGenerator[Case, None]:
        """Every case matching ``filter``, in query order, fetched concurrently.

        Ids are paged and entities fetched in batches, at most ``window`` cases in memory
        (default ``max_ids_per_request * max_concurrency``).

        Example::

            async for case in mc.iter_cases(filter="case.status:'open'"):
                print(case.id, case.title)
        """
        paginator = self.query_cases(filter=filter, sort=sort, limit=500)
        cases = self._iter_entities(paginator, self.get_cases, window)
        async with aclosing(cases):  # trio warns of a generator left to the collector
            async for case in cases:
                yield case

    async def iter_activities(
        self,
        *,
        case_id: str,
        filter: str | Filter | None = None,
        sort: str | None = None,
        window: int | None = None,
    ) -> AsyncGenerator[CaseActivity, None]:
        """Every activity of a case, in query order (see :meth:`iter_cases`).

        Example::

            async for activity in mc.iter_activities(case_id=case_id):
                print(activity.created_by.display_name if activity.created_by else "", activity.body)
        """
        paginator = self.query_activities(case_id=case_id, filter=filter, sort=sort, limit=500)
        activities = self._iter_entities(paginator, self.get_case_activity, window)
        async with aclosing(activities):
            async for activity in activities:
                yield activity

    async def _iter_entities(
        self, paginator: AsyncPaginator[str], get: Any, window: int | None
    ) -> AsyncGenerator[Any, None]:
        """Yield entities window by window; the next window's ids are paged in meanwhile.

        Each step fetches the current window's entities and the next window's ids at once, in a
        task group that closes before anything is yielded (so breaking out early is safe).
        """
        size = window or self._max_ids * self._max_concurrency
        if size < 1:
            raise InvalidArgumentError("window", f"must be positive, got {size}")
        ids = aiter(paginator)

        async def take(into: list[str]) -> None:
            async for item_id in ids:
                into.append(item_id)
                if len(into) >= size:
                    return

        async def fetch(batch: list[str], out: list[Any]) -> None:
            out.extend((await get(batch)).resources)

        current: list[str] = []
        async with aclosing(ids):  # closed when left early too
            await take(current)
            while current:
                upcoming: list[str] = []
                fetched: list[Any] = []
                async with task_group() as tg:
                    tg.start_soon(fetch, current, fetched)
                    tg.start_soon(take, upcoming)
                for entity in fetched:
                    yield entity
                current = upcoming
