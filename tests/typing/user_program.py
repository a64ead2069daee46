"""A user's program, type-checked by CI with ``mypy --strict`` and *without* pydantic's mypy
plugin (``tests/typing/mypy.ini``): the public API's types must work for users who do not
configure that plugin. It is checked, never run.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import assert_type

from falcon_mc import (
    AffectedEntity,
    AggregateQuery,
    AggregationResult,
    AsyncMessageCenter,
    AsyncPaginator,
    Attachment,
    Case,
    CaseActivity,
    DateRange,
    Envelope,
    IdPage,
    NotFoundError,
    Range,
    fql,
)


async def main() -> None:
    async with AsyncMessageCenter(client_id="id", client_secret="secret") as mc:
        pager: AsyncPaginator[str] = mc.query_cases(filter=fql.eq("case.status", "open"))
        page = await pager
        assert_type(page, IdPage[str])
        assert_type(page.ids, list[str])
        async for case_id in mc.query_cases(limit=100):
            assert_type(case_id, str)
        cases = await mc.get_cases(page.ids)
        assert_type(cases, Envelope[Case])
        async for case in mc.iter_cases(filter="case.status:'open'"):
            assert_type(case, Case)
            assert_type(case.hosts, list[str])
        async for activity in mc.iter_activities(case_id="c-1"):
            assert_type(activity, CaseActivity)
        result = await mc.aggregate_cases(
            AggregateQuery(name="sizes", type="range", field="case.hosts", from_=0, size=10,
                           ranges=[Range(from_=0, to=10), Range(to=100)]),
            AggregateQuery(name="weeks", type="date_range", field="case.created_time",
                           date_ranges=[DateRange(from_=date(2026, 1, 1), to="now"),
                                        DateRange(from_=datetime(2026, 1, 1, tzinfo=UTC),
                                                  to="now")]),
        )
        assert_type(result, Envelope[AggregationResult])
        one = await mc.aggregate_cases(body={"name": "s", "type": "terms", "field": "case.status"})
        assert_type(one, Envelope[AggregationResult])
        # FalconPy's habits: limit as a string, a whole payload as ids, None for "not given"
        assert_type(await mc.query_cases(limit="100", offset="10"), IdPage[str])
        assert_type(await mc.get_cases({"ids": page.ids}), Envelope[Case])
        created = await mc.create_case_v2(content="c", title="t", type="fc:contact",
                                          detections=None, incidents=None)
        assert_type(created, Envelope[AffectedEntity])
        # a meta-only reply; any resources the API adds are plain JSON values
        comment = await mc.add_case_activity(case_id="c-1", content="hi", user_uuid="u-1")
        assert_type(comment, Envelope[object])
        assert_type(comment.resources, list[object])
        with open("notes.txt", "rb") as handle:  # a binary file in file_data, as FalconPy
            uploaded = await mc.add_case_attachment(case_id="c-1", user_uuid="u-1",
                                                    file_data=handle)
            assert_type(uploaded, Envelope[Attachment])
        try:
            async with mc.download_case_attachment("a-1") as download:
                saved = await download.save("downloads/")
                assert_type(saved, Path)
        except NotFoundError as exc:
            assert_type(exc.status_code, int)
