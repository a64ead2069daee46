"""Seeded data: reproducible and realistic."""

from __future__ import annotations

import re
from datetime import timedelta

from falcon_mc.emulator import CASE_TYPES, REFERENCE_DATE, STATUSES, Emulator
from falcon_mc.emulator._util import parse_time


def test_empty() -> None:
    emu = Emulator()
    assert emu.cases == {}
    assert emu.activities == {}
    assert emu.attachments == {}


def test_reproducible() -> None:
    one, two = Emulator.seeded(n_cases=60, seed=7), Emulator.seeded(n_cases=60, seed=7)
    assert one.cases == two.cases
    assert one.activities == two.activities
    assert {k: v.data for k, v in one.attachments.items()} == {
        k: v.data for k, v in two.attachments.items()
    }
    other = Emulator.seeded(n_cases=60, seed=8)
    assert set(other.cases) != set(one.cases)


def test_realistic() -> None:
    emu = Emulator.seeded(n_cases=300, seed=7)
    assert len(emu.cases) == 300
    start = (REFERENCE_DATE - timedelta(days=366)).timestamp()
    end = REFERENCE_DATE.timestamp()
    assert {c["status"] for c in emu.cases.values()} == set(STATUSES)
    assert {c["type"] for c in emu.cases.values()} == set(CASE_TYPES)
    keys = set()
    for case in emu.cases.values():
        assert re.fullmatch(r"[0-9a-f]{32}", case["id"])
        assert case["title"]
        assert case["body"]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", case["created_time"])
        assert start <= parse_time(case["created_time"]) <= end
        assert parse_time(case["last_modified_time"]) >= parse_time(case["created_time"])
        assert set(case["assigner"]) >= {"display_name", "first_name", "last_name", "uid", "uuid"}
        for det in case["detections"]:
            assert re.fullmatch(r"ldt:[0-9a-f]{32}:\d+", det["id"])
        for inc in case["incidents"]:
            assert re.fullmatch(r"inc:[0-9a-f]{32}:[0-9a-f]{32}", inc["id"])
        assert len(case["hosts"]) == len(case["aids"]) == len(case["ip_addresses"])
        assert 0 <= len(emu.activity_ids(case["id"])) <= 8
        keys.add(case["key"])
        for meta in case["attachments"]:
            record = emu.attachments[meta["id"]]
            assert record.metadata() == meta
            assert record.size == len(record.data) > 0
    assert len(keys) == 300
    assert any(c["detections"] for c in emu.cases.values())
    assert any(c["incidents"] for c in emu.cases.values())
    assert emu.attachments
    kinds = {a["type"] for a in emu.activities.values()}
    assert kinds == {"comment", "status_change"}
    for activity in emu.activities.values():
        assert activity["created_by"]["display_name"]
        case = emu.cases[activity["case_id"]]
        assert parse_time(activity["created_time"]) >= parse_time(case["created_time"])


def test_add_helpers() -> None:
    emu = Emulator(seed=1)
    case_id = emu.add_case(title="Printer on fire", status="open")
    assert emu.cases[case_id]["status"] == "open"
    assert emu.cases[case_id]["attachments"] == []
    act = emu.add_activity(case_id, "hello", created_time="2025-07-01T00:00:00Z")
    assert emu.activities[act]["body"] == "hello"
    assert emu.cases[case_id]["last_modified_time"] == "2025-07-01T00:00:00Z"
    att = emu.add_attachment(case_id, "a.txt", b"data")
    assert emu.cases[case_id]["attachments"][0]["id"] == att
    assert emu.attachments[att].mime_type == "text/plain"
