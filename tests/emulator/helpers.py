"""Shared helpers for the emulator tests: a hand-built dataset, a fake clock, a schema checker."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from falcon_mc.emulator import Emulator

BASE = "https://emulator.local"
SPEC_PATH = Path(__file__).resolve().parents[1] / "data" / "message-center.swagger.json"


def load_spec() -> dict[str, Any]:
    """The swagger copy in tests/data."""
    spec: dict[str, Any] = json.loads(SPEC_PATH.read_text())
    return spec


class FakeClock:
    """A settable clock: ``clock()`` returns ``clock.now``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def author(name: str) -> dict[str, str]:
    """A ``messages.Author`` with uuid ``u-<first name lower>``."""
    first, last = name.split(" ")
    return {
        "display_name": name,
        "email_address": f"{first.lower()}@example.com",
        "first_name": first,
        "last_name": last,
        "uid": f"{first.lower()}@example.com",
        "uuid": f"u-{first.lower()}",
    }


ADA, GRACE, ALAN = author("Ada Lovelace"), author("Grace Hopper"), author("Alan Turing")


def build_small(emu: Emulator) -> None:
    """Six cases c1..c6 with known fields, three activities (a1..a3)."""
    emu.add_case(
        id="c1", title="Printer on fire", body="The printer is on fire", status="open",
        type="fc:contact", created_time="2024-01-01T10:00:00Z", hosts=["WS-1"],
        key="00000010", assigner=ADA,
    )
    emu.add_case(
        id="c2", title="Sensor offline", body="Sensor stopped reporting", status="closed",
        type="fc:falcon-product-support", created_time="2024-01-03T12:00:00Z",
        hosts=["WS-2", "SRV-1"], ip_addresses=["10.0.0.2"], key="00000020", assigner=GRACE,
    )
    emu.add_case(
        id="c3", title="Detection on WS-3", body="It's a 'quoted' thing", status="open",
        type="fc:detection-support", created_time="2024-01-10T08:00:00Z", hosts=["WS-3"],
        detections=[{"id": "ldt:" + "a" * 32 + ":123", "url": "https://x/d"}],
        key="00000030", assigner=ADA,
    )
    emu.add_case(
        id="c4", title="Incident help", body="Need help", status="waiting_for_customer",
        type="fc:incident-support", created_time="2024-01-24T00:00:00Z",
        incidents=[{"id": "inc:" + "b" * 32 + ":" + "c" * 32, "url": "https://x/i"}],
        key="00000040", assigner=ALAN,
    )
    emu.add_case(
        id="c5", title="Billing contact", body="Change billing", status="closed",
        type="fc:contact", created_time="2024-02-01T00:00:00Z", key="00000050", assigner=GRACE,
    )
    emu.add_case(
        id="c6", title="back\\slash case", body="odd title", status="in_progress",
        type="fc:falcon-product-support", created_time="2024-02-15T23:30:00Z", hosts=["WS-1"],
        key="00000060", assigner=ADA,
    )
    emu.add_activity("c1", "please send logs", created_time="2024-01-02T00:00:00Z",
                     created_by=GRACE)
    emu._store.add_activity("c1", body="Status changed to open", type="status_change",
                            created_time="2024-01-03T00:00:00Z", id="a2")
    emu._store.add_activity("c3", body="logs attached", created_time="2024-01-11T00:00:00Z",
                            id="a3")


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


def check_schema(value: Any, schema: dict[str, Any], spec: dict[str, Any], where: str) -> None:
    """Assert ``value`` matches the swagger ``schema``: types, required keys, known keys."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        check_schema(value, spec["definitions"][name], spec, f"{where}<{name}>")
        return
    kind = schema.get("type")
    if kind == "object" and "properties" not in schema:
        # free-form (msa.AggregationResultItem.label): a string or an object in practice
        assert isinstance(value, (str, dict)), f"{where}: free-form value {value!r}"
        return
    if kind is None:
        return
    assert isinstance(value, _TYPES[kind]), f"{where}: expected {kind}, got {value!r}"
    if kind in ("integer", "number"):
        assert not isinstance(value, bool), f"{where}: a boolean where a {kind} is expected"
    if isinstance(value, list):
        for i, element in enumerate(value):
            check_schema(element, schema.get("items", {}), spec, f"{where}[{i}]")
    if isinstance(value, dict):
        props: dict[str, Any] = schema.get("properties", {})
        for key in schema.get("required", []):
            assert key in value, f"{where}: required key {key!r} missing"
        for key, item in value.items():
            assert key in props, f"{where}: key {key!r} not in the schema"
            check_schema(item, props[key], spec, f"{where}.{key}")
