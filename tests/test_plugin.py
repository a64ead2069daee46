"""The pytest plugin, used as a user would: its fixtures here, and from a separate tiny project."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from falcon_mc import AsyncMessageCenter, InternalServerError, fql
from falcon_mc.emulator import Emulator
from falcon_mc.pytest_plugin import FalconKit

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
USER = "5d9dc9f8-1818-4811-892f-902bd23f0824"


# -- the fixtures in our own session ---------------------------------------------------------------


async def test_client_talks_to_the_seeded_emulator(
    falcon_client: AsyncMessageCenter, falcon_emulator: Emulator
) -> None:
    assert len(falcon_emulator.cases) == 50
    ids = [case_id async for case_id in falcon_client.query_cases()]
    assert sorted(ids) == sorted(falcon_emulator.cases)
    assert falcon_emulator.stats.tokens_issued == 1


@pytest.mark.falcon_emulator(n_cases=0, latency=0.0, region="eu-1")
async def test_marker_configures_the_emulator(
    falcon_client: AsyncMessageCenter, falcon_kit: FalconKit
) -> None:
    assert falcon_kit.emulator.settings.region == "eu-1"
    assert (await falcon_client.query_cases()).total == 0
    case_id = falcon_kit.add_case(title="Printer on fire", status="open")
    page = await falcon_client.query_cases(filter=fql.eq("case.title", "Printer on fire"))
    assert page.ids == [case_id]


async def test_kit_separates_set_up_from_created(
    falcon_client: AsyncMessageCenter, falcon_kit: FalconKit
) -> None:
    case_id = falcon_kit.add_case(title="Set up")
    falcon_kit.add_activity(case_id, "set-up comment")
    falcon_kit.add_attachment(case_id, "setup.txt", b"x")
    assert falcon_kit.created_cases() == []
    assert falcon_kit.created_activities() == []
    assert falcon_kit.created_attachments() == []

    created = await falcon_client.create_case_v2(title="New", content="Body", type="fc:contact")
    await falcon_client.add_case_activity(case_id=case_id, content="Hello", user_uuid=USER)
    await falcon_client.add_case_attachment(
        case_id=case_id, user_uuid=USER, file_data=b"log", filename="log.txt"
    )
    [case] = falcon_kit.created_cases()
    assert case["id"] == created.resources[0].id
    assert falcon_kit.case(case["id"])["title"] == "New"
    assert [a["body"] for a in falcon_kit.created_activities(case_id)] == ["Hello"]
    assert falcon_kit.created_activities("another-case") == []
    [attachment] = falcon_kit.created_attachments(case_id)
    assert (attachment.name, attachment.data) == ("log.txt", b"log")
    assert falcon_kit.requests("CreateCaseV2") == 1


async def test_kit_injects_faults(falcon_client: AsyncMessageCenter, falcon_kit: FalconKit) -> None:
    read = falcon_kit.fail("GetCaseEntitiesByIDs", status=503, count=2)
    some_id = next(iter(falcon_kit.emulator.cases))
    assert len((await falcon_client.get_cases(some_id)).resources) == 1
    assert read.fired == 2
    assert falcon_kit.requests("GetCaseEntitiesByIDs") == 3

    falcon_kit.fail("CreateCaseV2", status=500, count=1)
    with pytest.raises(InternalServerError) as raised:
        await falcon_client.create_case_v2(title="t", content="c", type="fc:contact")
    assert raised.value.may_have_been_applied
    assert falcon_kit.created_cases() == []


class TestClientOptions:
    @pytest.fixture
    def falcon_client_options(self) -> dict[str, Any]:
        return {"max_retries": 0, "max_concurrency": 2}

    async def test_overridden_options_apply(
        self, falcon_client: AsyncMessageCenter, falcon_kit: FalconKit
    ) -> None:
        falcon_kit.fail("QueryCasesIdsByFilter", status=503, count=1)
        with pytest.raises(InternalServerError):
            await falcon_client.query_cases()
        assert "max_concurrency=2" in repr(falcon_client)


def test_served_emulator_is_a_loopback_url(
    falcon_served_emulator: str, falcon_emulator: Emulator
) -> None:
    assert falcon_served_emulator.startswith("http://127.0.0.1:")
    reply = httpx.post(
        f"{falcon_served_emulator}/oauth2/token",
        data={"client_id": "id", "client_secret": "secret"},
    )
    assert reply.status_code == 201
    assert falcon_emulator.stats.tokens_issued == 1


# -- a separate project using the installed plugin ------------------------------------------------


def _docs_file(title: str) -> str:
    """The ```python title="<title>" block of docs/testing.md."""
    text = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    opener = f'```python title="{title}"\n'
    start = text.index(opener) + len(opener)
    return text[start : text.index("```", start)]


INI = """\
[pytest]
asyncio_mode = {mode}
asyncio_default_fixture_loop_scope = function
filterwarnings = error
"""


def test_documented_example_project_passes(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI.format(mode="auto"))
    pytester.makepyfile(escalation=_docs_file("escalation.py"))
    pytester.makepyfile(test_escalation=_docs_file("test_escalation.py"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--strict-markers")
    result.assert_outcomes(passed=3)


def test_strict_mode_project(pytester: pytest.Pytester) -> None:
    """pytest-asyncio in strict mode: tests are marked, the async fixture still works."""
    pytester.makeini(INI.format(mode="strict"))
    pytester.makepyfile(
        test_strict=textwrap.dedent(
            """
            import sys

            import pytest

            def test_nothing_loaded_until_asked():
                assert "falcon_mc.emulator" not in sys.modules

            @pytest.mark.asyncio
            @pytest.mark.falcon_emulator(n_cases=3, seed=1)
            async def test_client(falcon_client, falcon_emulator):
                page = await falcon_client.query_cases()
                assert page.total == 3
                assert sorted(page.ids) == sorted(falcon_emulator.cases)

            @pytest.mark.falcon_emulator(no_such_setting=1)
            def test_bad_marker(falcon_emulator):
                pass
            """
        )
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--strict-markers")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*unknown emulator setting 'no_such_setting'*"])


def test_plugin_is_registered(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI.format(mode="auto"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--fixtures")
    listing = result.stdout.str()
    assert "fixtures defined from falcon_mc.pytest_plugin" in listing
    for name in ("falcon_client", "falcon_client_options", "falcon_emulator", "falcon_kit",
                 "falcon_served_emulator"):
        assert f"{name} -- " in listing
    assert sys.modules.get("falcon_mc.pytest_plugin") is not None  # loaded here too
