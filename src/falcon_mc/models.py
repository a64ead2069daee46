"""Pydantic models of the Message Center wire format (replies and requests).

Field names are the wire names; an alias is used only where the wire name is not a Python
name (``from``) or is capitalised (``From``/``To``, ``Hits``, ``MaxScore``, ``ID``, ``Score``,
``Source``). Serialise with ``model_dump(by_alias=True, exclude_none=True, mode="json")``.

Every model keeps unknown fields (``extra="allow"``), so a reply survives a round trip even when
CrowdStrike adds fields.

* Reply models are tolerant: every field is optional (``None`` or an empty list; a JSON ``null``
  where a list is expected reads as an empty list), but a field of the wrong type (a list where a
  string is expected, ``"big"`` for an integer) fails validation.
* Request models require what the caller must decide and default the rest to what FalconPy sends.

Example::

    from pydantic import TypeAdapter
    from falcon_mc.models import Case, Envelope

    env = TypeAdapter(Envelope[Case]).validate_json(raw_bytes)
    for case in env.resources:
        print(case.id, case.status, case.created_time)
"""

from __future__ import annotations

import email.utils
import math
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    FiniteFloat,
    GetCoreSchemaHandler,
    field_serializer,
    field_validator,
)
from pydantic_core import PydanticCustomError, core_schema

from ._exceptions import InvalidArgumentError
from ._fieldsets import SharingModel

__all__ = [
    "ActivityCreationRequest",
    "AffectedEntity",
    "AggregateQuery",
    "AggregationResult",
    "Attachment",
    "Bucket",
    "Case",
    "CaseActivity",
    "CaseCreationRequest",
    "CaseCreationRequestV2",
    "CaseUpdateRequest",
    "DateRange",
    "EntityRef",
    "Envelope",
    "ErrorDetail",
    "ExtendedBounds",
    "FiltersSpec",
    "Hit",
    "Hits",
    "IdPage",
    "IdsRequest",
    "Meta",
    "Pagination",
    "Range",
    "RateLimit",
    "User",
    "Writes",
    "parse_retry_after",
    "validate_aggregate_depth",
]

T = TypeVar("T")
_T = TypeVar("_T")

# --------------------------------------------------------------------------- helpers


def _tolerant_timestamp(value: object) -> object:
    """Fallback for reply timestamps that pydantic's own parser refuses.

    Reads an empty (or blank) string as "no time", and trims fractional seconds beyond
    microseconds (the wire may carry nanoseconds: ``2021-05-15T14:55:21.892315096Z``).
    """
    if isinstance(value, str):
        if not value or value.isspace():
            return None
        dot = value.find(".")
        if dot != -1:
            end = dot + 1
            while end < len(value) and value[end].isdigit():
                end += 1
            if end - dot > 7:
                return value[: dot + 7] + value[end:]
    return value


def _empty_list(_: None) -> list[Any]:
    return []


def _plain_first(plain: core_schema.CoreSchema, fallback: core_schema.CoreSchema) -> core_schema.CoreSchema:
    """``plain``, else ``fallback``: a ``left_to_right`` union, so a well-formed value (nearly
    every value) validates in Rust and only what ``plain`` refuses calls into Python."""
    return core_schema.union_schema([plain, fallback], mode="left_to_right")


class _NullAsEmpty:
    """Annotation: a JSON ``null`` where a list is expected reads as ``[]``.

    (Go's encoding/json writes a nil slice as ``null``.) A list is validated straight from the
    JSON bytes; only a ``null`` takes the second branch.
    """

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        null = core_schema.no_info_after_validator_function(_empty_list, core_schema.none_schema())
        return _plain_first(handler(source), null)


def _as_utc(value: datetime | None) -> datetime | None:
    """A time without an offset is read as UTC, so that every reply time is timezone-aware."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class _TolerantTimestamp:
    """Annotation: RFC 3339 (nanoseconds truncated; no offset read as UTC) or ``null``; ``""``
    also reads as ``None``. The result is always timezone-aware (or ``None``).

    A time with an offset (nearly every one) validates in Rust; only the others, truncated,
    blank or naive, call into Python.
    """

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        aware = core_schema.nullable_schema(core_schema.datetime_schema(tz_constraint="aware"))
        anything = core_schema.no_info_after_validator_function(_as_utc, handler(source))
        fallback = core_schema.no_info_before_validator_function(_tolerant_timestamp, anything)
        return _plain_first(aware, fallback)


#: A reply timestamp: RFC 3339 on the wire, an aware ``datetime`` (or ``None``) in Python.
Timestamp = Annotated[datetime | None, _TolerantTimestamp]
#: A reply list: ``null`` on the wire reads as ``[]``.
NullableList = Annotated[list[_T], _NullAsEmpty]


def _rfc3339(value: datetime) -> str:
    """Format ``value`` as RFC 3339 in UTC with a ``Z`` (naive datetimes are taken as UTC)."""
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    text = value.strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}"
    return text + "Z"


def _datetime_to_wire(value: object) -> object:
    """A ``datetime`` or ``date`` as RFC 3339 UTC with ``Z``; anything else unchanged.

    A naive ``datetime`` is taken as UTC; a ``date`` is its midnight UTC.
    """
    if isinstance(value, datetime):
        return _rfc3339(value)
    if isinstance(value, date):
        return _rfc3339(datetime(value.year, value.month, value.day, tzinfo=UTC))
    return value


class _Model(SharingModel):
    """Base of every wire model: unknown fields are kept; fields fill by name or alias.

    Models validated from one reply may share one frozen ``model_fields_set`` (see
    ``_fieldsets``); a model takes a private copy before anything could change it.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)


# --------------------------------------------------------------------------- replies


class User(_Model):
    """A person on the Falcon side or the customer side (spec ``messages.Author``).

    Appears as ``Case.assigner`` and ``CaseActivity.created_by``.

    Example::

        User.model_validate({"uuid": "5d7c...", "display_name": "Jane Doe"}).display_name
    """

    uid: str | None = None
    uuid: str | None = None
    display_name: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email_address: str | None = None


class EntityRef(_Model):
    """A reference to a detection, incident or alert attached to a case.

    Spec ``messages.Detection`` / ``messages.Incident`` (``id``, ``url``) and ``messages.Alert``
    (adds ``product``, used by the v2 create request). Used in requests and in replies; every
    field is optional so replies always parse, but the request models refuse a reference
    without an ``id`` (a non-blank string).
    Id shapes seen: detection ``ldt:<32 hex>:<digits>``, incident ``inc:<32 hex>:<32 hex>``.

    Example::

        EntityRef(id="ldt:0123456789abcdef0123456789abcdef:42", url="")
    """

    id: str | None = None
    url: str | None = None
    product: str | None = None


def _named(ref: EntityRef) -> EntityRef:
    """A reference sent in a request must name what it refers to."""
    if ref.id is None or not ref.id.strip():
        raise PydanticCustomError("missing_id", "a reference needs an 'id' (a non-empty string)")
    return ref


#: A detection or incident reference in a request: an :class:`EntityRef` with an ``id``.
_RequestRef = Annotated[EntityRef, AfterValidator(_named)]


class Attachment(_Model):
    """Metadata of a file attached to a case (spec ``messages.Attachment``).

    ``created_by`` is a plain string here (not a :class:`User`); ``size`` is in bytes.
    Download the file with ``download_case_attachment(attachment.id)``.

    Example::

        att = env.resources[0]
        print(att.name, att.mime_type, att.size, att.created_time)
    """

    id: str | None = None
    name: str | None = None
    mime_type: str | None = None
    size: int | None = None
    created_by: str | None = None
    created_time: Timestamp = None


class Case(_Model):
    """A Message Center case (spec ``messages.Case``).

    Open value sets (plain strings, not enums, since they change upstream):

    * ``status``: seen as ``"1"`` (waiting for your response), ``"2"`` (waiting for review),
      ``"3"`` (closed, resolved), ``"4"`` (closed, unresolved); also ``"open"``/``"closed"``
      style strings in FQL filters.
    * ``type``: ``fc:detection-support``, ``fc:contact``, ``fc:falcon-product-support``,
      ``fc:incident-support``. ``case_type`` is a newer optional field.

    Example::

        env = await mc.get_cases(["c-1"])
        case = env.resources[0]
        print(case.title, case.status, case.assigner.display_name if case.assigner else None)
    """

    id: str | None = None
    cid: str | None = None
    key: str | None = None
    title: str | None = None
    body: str | None = None
    status: str | None = None
    type: str | None = None
    case_type: str | None = None
    assigner: User | None = None
    aids: NullableList[str] = Field(default_factory=list)
    hosts: NullableList[str] = Field(default_factory=list)
    ip_addresses: NullableList[str] = Field(default_factory=list)
    attachments: NullableList[Attachment] = Field(default_factory=list)
    detections: NullableList[EntityRef] = Field(default_factory=list)
    incidents: NullableList[EntityRef] = Field(default_factory=list)
    malware_submission_id: str | None = None
    malware_submission_url: str | None = None
    recon_rule_type: str | None = None
    rfi_id: str | None = None
    created_time: Timestamp = None
    last_modified_time: Timestamp = None


class CaseActivity(_Model):
    """An activity (comment, status change...) on a case (spec ``messages.Activity``).

    ``type`` known values: ``comment`` (the only type the API lets you create),
    ``status_change``. ``created_by`` is a :class:`User`; ``modified_by`` a plain string.

    Example::

        env = await mc.get_case_activity(ids)
        for act in env.resources:
            if act.type == "comment":
                print(act.created_by.display_name if act.created_by else "?", act.body)
    """

    id: str | None = None
    case_id: str | None = None
    cid: str | None = None
    type: str | None = None
    body: str | None = None
    created_by: User | None = None
    created_time: Timestamp = None
    last_modified_time: Timestamp = None
    modified_by: str | None = None


class AffectedEntity(_Model):
    """An entity a write touched (spec ``msa.AffectedEntity``): create/update case replies.

    Example::

        env = await mc.create_case_v2(content="...", title="...", type="fc:contact")
        new_id = env.resources[0].id
    """

    id: str | None = None
    path: str | None = None


class ErrorDetail(_Model):
    """One entry of an envelope's ``errors`` (spec ``msa.APIError``).

    Example::

        for err in env.errors:
            print(err.code, err.message, err.id)
    """

    code: int | None = None
    message: str | None = None
    id: str | None = None


class Pagination(_Model):
    """``meta.pagination`` of a query reply (spec ``msa.Paging``).

    Example::

        Pagination.model_validate({"offset": 0, "limit": 100, "total": 250}).total  # 250
    """

    offset: int | None = None
    limit: int | None = None
    total: int | None = None


class Writes(_Model):
    """``meta.writes`` of a write reply (spec ``msa.Resources``).

    Example::

        env.meta.writes.resources_affected if env.meta.writes else None
    """

    resources_affected: int | None = None


class Meta(_Model):
    """An envelope's ``meta`` (spec ``msa.MetaInfo``).

    ``query_time`` is a number (unit unstated by the spec, seconds in practice); ``pagination``
    comes with query replies, ``writes`` with write replies.

    Example::

        print(env.meta.trace_id, env.meta.query_time)
    """

    query_time: float | None = None
    powered_by: str | None = None
    trace_id: str | None = None
    pagination: Pagination | None = None
    writes: Writes | None = None


class Envelope(_Model, Generic[T]):
    """Every JSON reply: ``{"meta": {...}, "resources": [...], "errors": [...]}``.

    ``resources`` and ``errors`` default to empty lists (``null`` reads as ``[]``); ``meta`` to an
    empty :class:`Meta`. ``Envelope[object]`` fits meta-only replies (add-activity): whatever
    ``resources`` such a reply carries are kept as plain JSON values. A 2xx reply may still list
    errors (e.g. ids not found); they are here, not raised.

    Example::

        env = TypeAdapter(Envelope[Case]).validate_json(raw_bytes)
        print(len(env.resources), env.errors, env.trace_id)
    """

    meta: Meta = Field(default_factory=Meta)
    resources: NullableList[T] = Field(default_factory=list)
    errors: NullableList[ErrorDetail] = Field(default_factory=list)

    @field_validator("meta", mode="before")
    @classmethod
    def _null_meta(cls, value: object) -> object:
        return {} if value is None else value

    @property
    def trace_id(self) -> str | None:
        """``meta.trace_id``: quote it to CrowdStrike support."""
        return self.meta.trace_id


class Hit(_Model):
    """One hit of an aggregation's ``hits`` (spec ``msa.Hit``; wire keys ``ID``, ``Score``,
    ``Source``).

    Example::

        Hit.model_validate({"ID": "c-1", "Score": 1.0, "Source": "{}"}).id  # "c-1"
    """

    id: str | None = Field(default=None, validation_alias="ID", serialization_alias="ID")
    score: float | None = Field(
        default=None, validation_alias="Score", serialization_alias="Score"
    )
    source: str | None = Field(
        default=None, validation_alias="Source", serialization_alias="Source"
    )


class Hits(_Model):
    """An aggregation's ``hits`` (spec ``msa.Hits``; wire keys ``Hits``, ``MaxScore``).

    Example::

        Hits.model_validate({"Hits": [], "MaxScore": 0}).max_score  # 0.0
    """

    hits: NullableList[Hit] = Field(
        default_factory=list, validation_alias="Hits", serialization_alias="Hits"
    )
    max_score: float | None = Field(
        default=None, validation_alias="MaxScore", serialization_alias="MaxScore"
    )


class Bucket(_Model):
    """One bucket of an aggregation result (spec ``msa.AggregationResultItem``).

    ``label`` is free-form: a string (the term) or an object. ``from_`` is the wire's ``from``.
    Nested aggregations come back in ``sub_aggregates``.

    Example::

        for bucket in result.buckets:
            print(bucket.label, bucket.count)
    """

    count: int | None = None
    from_: float | None = Field(default=None, validation_alias="from", serialization_alias="from")
    to: float | None = None
    key_as_string: str | None = None
    label: str | dict[str, object] | None = None
    string_from: str | None = None
    string_to: str | None = None
    value: float | None = None
    value_as_string: str | None = None
    sub_aggregates: NullableList[AggregationResult] = Field(default_factory=list)


class AggregationResult(_Model):
    """One named aggregation of an aggregate reply (spec ``msa.AggregationResult``).

    Example::

        env = await mc.aggregate_cases(
            {"field": "case.status", "name": "by_status", "type": "terms"}
        )
        {b.label: b.count for b in env.resources[0].buckets}
    """

    name: str | None = None
    buckets: NullableList[Bucket] = Field(default_factory=list)
    doc_count_error_upper_bound: int | None = None
    sum_other_doc_count: int | None = None
    hits: Hits | None = None


Bucket.model_rebuild()


# --------------------------------------------------------------------------- pages, rate limits


class IdPage(BaseModel, Generic[T]):
    """One page of ids from a query (not a wire model): what awaiting a paginator gives.

    Generic in the type of the ids: ``IdPage[str]`` from ``query_cases``/``query_activities``.

    ``offset`` is where the page starts: the client sets it to the offset it asked for, since
    Falcon APIs differ on what the reply's ``meta.pagination.offset`` means (this page's start,
    or the next page's); the reply's own value stays in ``meta``. ``next_offset`` is the offset
    of the next page, or ``None`` when this is the last one.

    Example::

        page = await mc.query_cases(filter="case.status:'1'", limit=100)
        print(page.ids, page.total, page.next_offset)
    """

    ids: list[T] = Field(default_factory=list)
    offset: int = 0
    limit: int | None = None
    total: int | None = None
    meta: Meta = Field(default_factory=Meta)

    @classmethod
    def from_envelope(cls, env: Envelope[T]) -> IdPage[T]:
        """Build a page from a query reply, reading ``meta.pagination``."""
        pagination = env.meta.pagination or Pagination()
        return cls(
            ids=list(env.resources),
            offset=pagination.offset or 0,
            limit=pagination.limit,
            total=pagination.total,
            meta=env.meta,
        )

    @property
    def next_offset(self) -> int | None:
        """Offset of the next page; ``None`` when this page is empty or reaches ``total``."""
        if not self.ids:
            return None
        nxt = self.offset + len(self.ids)
        if self.total is not None and nxt >= self.total:
            return None
        return nxt


def _lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {key.lower(): value for key, value in headers.items()}


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _integer(text: str | None) -> int | None:
    value = _number(text)
    return int(value) if value is not None else None


def _http_date(text: str | None) -> float | None:
    """An HTTP date (``Date``, ``Retry-After``) as seconds since the epoch; ``None`` if unusable."""
    if text is None:
        return None
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _server_now(lowered: Mapping[str, str], now_epoch: float | None) -> float:
    """Now by the server's clock: the reply's ``Date`` (whole seconds), or the local clock
    (``now_epoch``, default ``time.time()``) while it falls within that second (it is more
    precise) or when there is no usable ``Date``."""
    local = time.time() if now_epoch is None else now_epoch
    server = _http_date(lowered.get("date"))
    if server is None or server <= local < server + 1.0:
        return local
    return server


def _positive(wait: float) -> float | None:
    """A wait that is a usable hint: ``None`` unless it is more than zero."""
    return wait if wait > 0 else None


def parse_retry_after(headers: Mapping[str, str], now_epoch: float | None = None) -> float | None:
    """Seconds to wait before retrying, from ``X-RateLimit-RetryAfter`` or ``Retry-After``.

    ``X-RateLimit-RetryAfter`` is, per spec, milliseconds since the epoch, but other clients read
    it as seconds since the epoch, so it is decoded defensively: above ``1e11`` it is an epoch
    in milliseconds, above ``1e9`` an epoch in seconds, otherwise a number of seconds to wait.
    ``Retry-After`` (seconds or an HTTP date) is the fallback.

    An absolute time is measured against the server's clock: the reply's ``Date`` header, unless
    the local clock (``now_epoch``, default ``time.time()``) is within that second or there is
    no usable ``Date``; so a local clock ahead of or behind the server's does not skew the wait.
    A wait of zero or less (a time already past: clock skew, or a server rounding to whole
    seconds) is no usable hint: ``None``, as when neither header is usable, so the retry
    policy's jittered back-off applies. Header names are matched case-insensitively.

    Example::

        parse_retry_after({"X-RateLimit-RetryAfter": "1700000002000"}, now_epoch=1_700_000_000)
        # 2.0
        parse_retry_after({"X-RateLimit-RetryAfter": "1700000002",
                           "Date": "Tue, 14 Nov 2023 22:13:20 GMT"}, now_epoch=1_800_000_000)
        # 2.0: the server's clock, not the local one
    """
    lowered = _lower_headers(headers)
    now = _server_now(lowered, now_epoch)
    value = _number(lowered.get("x-ratelimit-retryafter"))
    if value is not None:
        if value > 1e11:
            return _positive(value / 1000.0 - now)
        if value > 1e9:
            return _positive(value - now)
        return _positive(value)
    raw = lowered.get("retry-after")
    if raw is None:
        return None
    value = _number(raw)
    if value is not None:
        return _positive(value)
    when = _http_date(raw)
    return None if when is None else _positive(when - now)


class RateLimit(BaseModel):
    """A snapshot of the rate-limit headers of one reply (``AsyncMessageCenter.rate_limit``).

    ``limit`` is requests per minute (``X-RateLimit-Limit``), ``remaining`` what is left of the
    sliding minute (``X-RateLimit-Remaining``), ``retry_after`` seconds to wait (decoded from
    ``X-RateLimit-RetryAfter`` / ``Retry-After``, see :func:`parse_retry_after`), and
    ``observed_at`` the ``time.monotonic()`` reading when the reply was seen.

    Example::

        rl = RateLimit.from_headers(response.headers)
        if rl is not None and rl.remaining == 0:
            ...
    """

    model_config = ConfigDict(frozen=True)

    limit: int | None = None
    remaining: int | None = None
    retry_after: float | None = None
    observed_at: float = 0.0

    @classmethod
    def from_headers(
        cls,
        headers: Mapping[str, str],
        *,
        now_epoch: float | None = None,
        now_monotonic: float | None = None,
    ) -> RateLimit | None:
        """Snapshot ``headers``; ``None`` when no ``X-RateLimit-*`` header is present."""
        lowered = _lower_headers(headers)
        if not any(key.startswith("x-ratelimit-") for key in lowered):
            return None
        return cls(
            limit=_integer(lowered.get("x-ratelimit-limit")),
            remaining=_integer(lowered.get("x-ratelimit-remaining")),
            retry_after=parse_retry_after(lowered, now_epoch),
            observed_at=time.monotonic() if now_monotonic is None else now_monotonic,
        )


# --------------------------------------------------------------------------- requests


class DateRange(_Model):
    """One range of a ``date_range`` aggregation (spec ``msa.DateRangeSpec``).

    Wire keys are lower case ``from``/``to`` (strings; date math like ``now-7d`` works).
    A ``datetime`` is sent as RFC 3339 UTC with ``Z`` (naive means UTC), a ``date`` as its
    midnight UTC (``2024-05-01T00:00:00Z``). The model keeps what it was given (strings as they
    are); the conversion happens when it is serialised, so values assigned later are converted
    too.

    Example::

        DateRange(from_="now-7d", to="now")
        DateRange(from_=datetime(2024, 5, 1, tzinfo=UTC), to="now")  # from: 2024-05-01T00:00:00Z
        DateRange(from_=date(2024, 5, 1), to="now")                  # from: 2024-05-01T00:00:00Z
    """

    from_: str | datetime | date = Field(validation_alias="from", serialization_alias="from")
    to: str | datetime | date

    @field_serializer("from_", "to")
    def _bound_to_wire(self, value: object) -> object:
        """Send a ``datetime``/``date`` bound as RFC 3339 UTC with ``Z``; strings unchanged."""
        return _datetime_to_wire(value)


class Range(_Model):
    """One range of a ``range`` aggregation (spec ``msa.RangeSpec``; wire keys ``From``/``To``).

    Always sent capitalised; read from ``From``/``To``, ``from``/``to`` (as ``date_ranges`` are
    written) or the Python names ``from_``/``to``. Bounds are finite numbers (JSON has no NaN
    or infinity): leave a bound out for an open range.

    Example::

        Range(from_=0, to=100)                      # {"From": 0.0, "To": 100.0}
        Range.model_validate({"from": 0, "to": 100})  # the same
    """

    from_: FiniteFloat | None = Field(
        default=None, validation_alias=AliasChoices("From", "from"), serialization_alias="From"
    )
    to: FiniteFloat | None = Field(
        default=None, validation_alias=AliasChoices("To", "to"), serialization_alias="To"
    )


class ExtendedBounds(_Model):
    """``extended_bounds`` of a ``date_histogram`` (spec ``msa.ExtendedBoundsSpec``).

    Example::

        ExtendedBounds(min="now-30d", max="now")
    """

    min: str | None = None
    max: str | None = None


class FiltersSpec(_Model):
    """``filters_spec`` of a filters aggregation (spec ``msa.APIFiltersSpec``).

    Example::

        FiltersSpec(filters={"open": "case.status:'1'"}, other_bucket=True)
    """

    filters: dict[str, str]
    other_bucket: bool | None = None
    other_bucket_key: str | None = None


class AggregateQuery(_Model):
    """One aggregation request (spec ``msa.AggregateQueryRequest``).

    ``field``, ``name`` and ``type`` are required; everything else is sent only when set.
    ``type`` known values: ``terms``, ``date_range``, ``date_histogram``, ``range``,
    ``cardinality``, ``max``, ``min``, ``avg``, ``sum``, ``percentiles``. ``interval`` (for
    ``date_histogram``) known values: ``year``, ``month``, ``week``, ``day``, ``hour``,
    ``minute``. ``sort`` looks like ``_count|desc``. ``from_`` is the wire's ``from`` (bucket
    offset). ``ranges`` / ``date_ranges`` items may be given as models or dicts
    (``AggregateQuery.model_validate``). At most 3 levels of ``sub_aggregates``: the client
    checks with :func:`validate_aggregate_depth` before sending.

    Example::

        AggregateQuery(field="case.status", name="by_status", type="terms", size=10)
        AggregateQuery(
            field="case.created_time", name="weekly", type="date_histogram", interval="week",
            sub_aggregates=[AggregateQuery(field="case.type", name="types", type="terms")],
        )
    """

    field: str
    name: str
    type: str
    date_ranges: list[DateRange] | None = None
    exclude: str | None = None
    extended_bounds: ExtendedBounds | None = None
    filter: str | None = None
    filters_spec: FiltersSpec | None = None
    from_: int | None = Field(default=None, validation_alias="from", serialization_alias="from")
    include: str | None = None
    interval: str | None = None
    max_doc_count: int | None = None
    min_doc_count: int | None = None
    missing: str | None = None
    percents: list[FiniteFloat] | None = None
    q: str | None = None
    ranges: list[Range] | None = None
    size: int | None = None
    sort: str | None = None
    sub_aggregates: list[AggregateQuery] | None = None
    time_zone: str | None = None

    def nesting_depth(self) -> int:
        """Levels of ``sub_aggregates`` below this query (0 when there are none)."""
        return max((1 + sub.nesting_depth() for sub in self.sub_aggregates or ()), default=0)


AggregateQuery.model_rebuild()


def _depth(query: AggregateQuery | Mapping[str, Any]) -> int:
    if isinstance(query, AggregateQuery):
        return query.nesting_depth()
    subs = query.get("sub_aggregates") or ()
    return max((1 + _depth(sub) for sub in subs), default=0)


def validate_aggregate_depth(
    query: AggregateQuery | Mapping[str, Any], max_depth: int = 3, *, argument: str = "queries"
) -> None:
    """Raise :class:`~falcon_mc.InvalidArgumentError` (naming ``argument``) if ``query`` nests
    deeper than ``max_depth`` levels of ``sub_aggregates`` (the API allows 3 below the top query).

    Example::

        validate_aggregate_depth(AggregateQuery(field="f", name="n", type="terms"))  # fine
    """
    depth = _depth(query)
    if depth > max_depth:
        raise InvalidArgumentError(
            argument,
            f"sub_aggregates nest {depth} levels deep; at most {max_depth} are allowed",
        )


class CaseCreationRequest(_Model):
    """Body of CreateCase v1 (spec ``domain.CaseCreationRequest``): ``user_uuid`` required.

    ``type``: ``fc:detection-support`` (with detections), ``fc:contact``,
    ``fc:falcon-product-support``, ``fc:incident-support`` (with incidents).

    Example::

        CaseCreationRequest(body="Please look", title="Help", type="fc:contact",
                            user_uuid="5d7c0000-0000-0000-0000-000000000000")
    """

    body: str
    title: str
    type: str
    user_uuid: str
    detections: list[_RequestRef] = Field(default_factory=list)
    incidents: list[_RequestRef] = Field(default_factory=list)


class CaseCreationRequestV2(_Model):
    """Body of CreateCaseV2 (spec ``messagecenter.CaseCreationRequestV2``).

    ``user_uuid`` is optional here. ``malware_submission_id`` and ``recon_rule_type`` are
    marked required by the spec but sent only when given, as FalconPy does (it never sends
    them). Detections are ``messages.Alert`` references (``id``, ``url``, ``product``).

    Example::

        CaseCreationRequestV2(body="Please look", title="Help", type="fc:contact")
    """

    body: str
    title: str
    type: str
    detections: list[_RequestRef] = Field(default_factory=list)
    incidents: list[_RequestRef] = Field(default_factory=list)
    malware_submission_id: str | None = None
    recon_rule_type: str | None = None
    user_uuid: str | None = None


class CaseUpdateRequest(_Model):
    """Body of UpdateCase (spec ``api.CaseUpdateRequest``): only body, detections, incidents.

    Fields left ``None`` are not sent, so an update changes only what it names.

    Example::

        CaseUpdateRequest(id="c-1", body="More details")
    """

    id: str
    body: str | None = None
    detections: list[_RequestRef] | None = None
    incidents: list[_RequestRef] | None = None


class ActivityCreationRequest(_Model):
    """Body of CaseAddActivity (spec ``messagecenter.ActivityCreationRequest``).

    ``type`` must be ``comment`` (the only type the API accepts).

    Example::

        ActivityCreationRequest(body="Any news?", case_id="c-1",
                                user_uuid="5d7c0000-0000-0000-0000-000000000000")
    """

    body: str
    case_id: str
    user_uuid: str
    type: str = "comment"


class IdsRequest(_Model):
    """Body of the "GET by ids" POSTs (spec ``msa.IdsRequest``).

    Example::

        IdsRequest(ids=["c-1", "c-2"]).model_dump()  # {"ids": ["c-1", "c-2"]}
    """

    ids: list[str]
