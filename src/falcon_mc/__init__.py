"""falcon-mc: an async, fully typed client for the CrowdStrike Falcon Message Center API.

Example::

    import anyio
    from falcon_mc import AsyncMessageCenter

    async def main() -> None:
        async with AsyncMessageCenter() as mc:        # FALCON_CLIENT_ID / FALCON_CLIENT_SECRET
            async for case in mc.iter_cases(filter="case.status:'open'"):
                print(case.id, case.title)

    anyio.run(main)
"""

from . import fql
from ._client import AsyncMessageCenter
from ._cloud import Cloud
from ._download import AttachmentDownload
from ._exceptions import (
    APIConnectionError,
    APIError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    FalconError,
    InternalServerError,
    InvalidArgumentError,
    NotFoundError,
    OAuthError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)
from ._pagination import AsyncPaginator
from ._version import __version__
from .models import (
    AffectedEntity,
    AggregateQuery,
    AggregationResult,
    Attachment,
    Bucket,
    Case,
    CaseActivity,
    DateRange,
    EntityRef,
    Envelope,
    ErrorDetail,
    IdPage,
    Meta,
    Pagination,
    Range,
    RateLimit,
    User,
)

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AffectedEntity",
    "AggregateQuery",
    "AggregationResult",
    "AsyncMessageCenter",
    "AsyncPaginator",
    "Attachment",
    "AttachmentDownload",
    "AuthenticationError",
    "BadRequestError",
    "Bucket",
    "Case",
    "CaseActivity",
    "Cloud",
    "ConflictError",
    "DateRange",
    "EntityRef",
    "Envelope",
    "ErrorDetail",
    "FalconError",
    "IdPage",
    "InternalServerError",
    "InvalidArgumentError",
    "Meta",
    "NotFoundError",
    "OAuthError",
    "Pagination",
    "PermissionDeniedError",
    "Range",
    "RateLimit",
    "RateLimitError",
    "UnprocessableEntityError",
    "User",
    "__version__",
    "fql",
]
