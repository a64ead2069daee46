"""The 11 Message Center operations of the spec: operationId, method, route, idempotency."""

from __future__ import annotations

from ._pipeline import Operation

__all__ = ["OPERATIONS"]

AGGREGATE_CASES = Operation(
    "AggregateCases", "POST", "/message-center/aggregates/cases/GET/v1", idempotent=True
)
GET_CASE_ACTIVITY = Operation(
    "GetCaseActivityByIds", "POST", "/message-center/entities/case-activities/GET/v1", True
)
ADD_CASE_ACTIVITY = Operation(
    "CaseAddActivity", "POST", "/message-center/entities/case-activity/v1", idempotent=False
)
# The reply is the file, in any of the spec's many types (JSON only for errors): accept them
# all. Not compressed: the types are mostly compressed already, and a decoded chunk could
# otherwise be any size (a small gzip body can decode to gigabytes).
DOWNLOAD_CASE_ATTACHMENT = Operation(
    "CaseDownloadAttachment", "GET", "/message-center/entities/case-attachment/v1", True,
    (("Accept", "*/*"), ("Accept-Encoding", "identity")),
)
ADD_CASE_ATTACHMENT = Operation(
    "CaseAddAttachment", "POST", "/message-center/entities/case-attachment/v1", idempotent=False
)
CREATE_CASE = Operation("CreateCase", "POST", "/message-center/entities/case/v1", idempotent=False)
UPDATE_CASE = Operation("UpdateCase", "PATCH", "/message-center/entities/case/v1", idempotent=False)
CREATE_CASE_V2 = Operation(
    "CreateCaseV2", "POST", "/message-center/entities/case/v2", idempotent=False
)
GET_CASES = Operation(
    "GetCaseEntitiesByIDs", "POST", "/message-center/entities/cases/GET/v1", idempotent=True
)
QUERY_ACTIVITIES = Operation(
    "QueryActivityByCaseID", "GET", "/message-center/queries/case-activities/v1", True
)
QUERY_CASES = Operation(
    "QueryCasesIdsByFilter", "GET", "/message-center/queries/cases/v1", idempotent=True
)

OPERATIONS: dict[str, Operation] = {
    op.id: op
    for op in (
        AGGREGATE_CASES,
        GET_CASE_ACTIVITY,
        ADD_CASE_ACTIVITY,
        DOWNLOAD_CASE_ATTACHMENT,
        ADD_CASE_ATTACHMENT,
        CREATE_CASE,
        UPDATE_CASE,
        CREATE_CASE_V2,
        GET_CASES,
        QUERY_ACTIVITIES,
        QUERY_CASES,
    )
}
