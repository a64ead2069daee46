"""An in-memory CrowdStrike Falcon Message Center, faithful to the spec, for tests and demos.

Serve it in-process (``emu.transport()``), on loopback (``with emu.serve() as url``), from the
shell (``falcon-mc emulator --port 8080``, i.e. :meth:`Emulator.run`), or as an ASGI app
(``emu.app``)::

    from falcon_mc.emulator import Emulator

    emu = Emulator.seeded(n_cases=1000, seed=7)
    emu.settings.latency = 0.05
    emu.settings.rate_limit_per_minute = 6000
    emu.faults.add(operation="GetCaseEntitiesByIDs", kind="status", status=503, rate=0.2)
    with emu.serve() as url:
        ...

What it implements
------------------
* ``POST /oauth2/token`` (form ``client_id``, ``client_secret``, ``member_cid``): 201 with
  ``access_token``, ``expires_in`` (``settings.token_ttl``), ``token_type: bearer`` and an
  ``X-Cs-Region: us-1`` header (``settings.region``; left out for requests addressed to a
  loopback host, because FalconPy follows it away from any custom ``base_url``); 400 if a field is missing, 403 if ``settings.credentials`` names
  another pair. ``POST /oauth2/revoke`` (form ``token``, basic auth): 200; the token stops
  working. Message Center routes answer 401 to a missing, unknown, expired or revoked token.
* The 11 Message Center operations with the spec's routes, methods and envelopes
  (``meta.query_time``, ``powered_by``, ``trace_id``, ``pagination`` on queries, ``writes`` on
  writes; ``resources``; ``errors``) and the headers ``X-CS-TRACEID``, ``X-RateLimit-Limit``,
  ``X-RateLimit-Remaining`` on every reply. Unknown routes: 404; wrong method: 405.
* Queries: FQL (see ``_fql``), the spec's sort values (``case.created_time.desc``; FalconPy's
  ``case.created_time|desc`` too), ``limit`` 1..500 (default 100), ``offset`` >= 0. Default
  order: newest ``created_time`` first, then id.
* Aggregations (see ``_aggregate``): terms, date_range, range, date_histogram, and the metrics
  cardinality, min, max, avg, sum, percentiles.
* Attachments: multipart upload with the spec's rules (name, extension, size) and streamed
  downloads with ``Content-Type``, ``Content-Length`` and ``Content-Disposition``.
* Rate limits: a sliding one-minute window (``settings.rate_limit_per_minute``); over budget, a
  429 with ``X-RateLimit-RetryAfter`` (milliseconds since the epoch, as the spec says).
* Faults (``emu.faults``): latency, error statuses, connections dropped before or after
  processing, truncated and slow bodies, 429 storms; reproducible under ``seed``.

Decisions where the spec is silent
----------------------------------
* ``status`` values are human-readable: ``open``, ``in_progress``, ``waiting_for_customer``,
  ``closed`` (the spec says only "string"; a FalconPy sample shows "1".."4", which
  ``add_case(status="1")`` can still store). New cases start ``open``.
* Get-by-ids: 200 with the found entities (in the order asked, duplicates once) and one
  ``{"code": 404, "message", "id"}`` error per unknown id; 404 when none is found. Empty
  ``ids``: 400. ``settings.max_ids_per_request`` (default none) caps ids per request.
* Update, comment and upload on an unknown case: 404 with the case id in the error.
* A comment's ``type`` defaults to ``comment`` when left out; any other type is a 400.
* String comparisons in FQL are case-insensitive; ``_all`` is a "contains" full-text match.
* Activity queries on an unknown case answer 200 with no ids (``total`` 0).
* Metric aggregations answer one bucket with ``value`` (times in epoch milliseconds, with
  ``value_as_string``); date_histogram buckets are labelled with the RFC 3339 start time.
* The rate-limit budget counts Message Center requests that carry a valid token; token
  requests are not counted (they still carry the headers). A ``"*"`` fault rule applies to the
  11 Message Center operations, not to ``oauth2AccessToken``/``oauth2RevokeToken``, which a rule
  must name.
* Seeded timestamps lie in the year before 2025-06-01T00:00:00Z; writes use the wall clock.
"""

from __future__ import annotations

from ._aggregate import AggregationError
from ._emulator import Emulator, EmulatorSettings
from ._faults import EmulatorStats, FaultKind, FaultRule, Faults
from ._fql import FQLError
from ._http import ConnectionDropped
from ._state import CASE_TYPES, REFERENCE_DATE, STATUSES, AttachmentRecord

__all__ = [
    "CASE_TYPES",
    "REFERENCE_DATE",
    "STATUSES",
    "AggregationError",
    "AttachmentRecord",
    "ConnectionDropped",
    "Emulator",
    "EmulatorSettings",
    "EmulatorStats",
    "FQLError",
    "FaultKind",
    "FaultRule",
    "Faults",
]
