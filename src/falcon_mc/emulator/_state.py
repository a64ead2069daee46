"""In-memory state of the emulator (cases, activities, attachments) and reproducible seeding.

Everything is stored wire-shaped: ``cases`` and ``activities`` hold the dicts the API returns
(spec ``messages.Case`` / ``messages.Activity``); ``attachments`` holds
:class:`AttachmentRecord` objects (metadata + bytes).
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .._filenames import UPLOAD_CONTENT_TYPES
from ._util import format_time, parse_time

__all__ = [
    "ACTIVITY_TYPES",
    "CASE_TYPES",
    "MIME_TYPES",
    "REFERENCE_DATE",
    "STATUSES",
    "AttachmentRecord",
    "Store",
]

#: The fixed "now" of seeded data: every seeded timestamp lies in the year before it.
REFERENCE_DATE = datetime(2025, 6, 1, tzinfo=UTC)

#: Case statuses used by the emulator (human-readable; see the package docstring).
STATUSES = ("open", "in_progress", "waiting_for_customer", "closed")
_STATUS_WEIGHTS = (35, 15, 15, 35)

#: Case types (PSFalcon's create-case values).
CASE_TYPES = (
    "fc:detection-support",
    "fc:contact",
    "fc:falcon-product-support",
    "fc:incident-support",
)

#: Activity types seen on the wire (only ``comment`` can be created through the API).
ACTIVITY_TYPES = ("comment", "status_change")

#: File extension -> media type, for uploads (``mime_type``) and downloads (``Content-Type``).
MIME_TYPES = {**UPLOAD_CONTENT_TYPES, "zip": "application/zip"}


@dataclass
class AttachmentRecord:
    """A stored attachment: its wire metadata (``messages.Attachment``) and its bytes.

    Example::

        rec = emu.attachments[att_id]
        rec.name, rec.size, rec.data[:10], rec.metadata()
    """

    id: str
    case_id: str
    name: str
    mime_type: str
    created_by: str
    created_time: str
    data: bytes = field(repr=False)

    @property
    def size(self) -> int:
        """Size in bytes."""
        return len(self.data)

    def metadata(self) -> dict[str, Any]:
        """The wire ``messages.Attachment`` dict."""
        return {
            "id": self.id,
            "name": self.name,
            "mime_type": self.mime_type,
            "size": self.size,
            "created_by": self.created_by,
            "created_time": self.created_time,
        }


def _copied(value: Any) -> Any:
    """A copy of wire-shaped ``value``: dicts, lists and tuples are copied all the way down.

    Other values (strings, numbers...) are shared; they cannot change in place. Cheaper than
    :func:`copy.deepcopy` for the small JSON-like values the store holds.
    """
    if isinstance(value, dict):
        return {key: _copied(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_copied(item) for item in value]
    return value


def mime_type_for(name: str) -> str:
    """Media type from a file name's extension (``application/octet-stream`` if unknown)."""
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return MIME_TYPES.get(ext, "application/octet-stream")


class Store:
    """The emulator's data: wire-shaped dicts, an index of activities per case, id minting."""

    def __init__(self, *, cid: str | None = None, seed: int | None = None) -> None:
        self.cases: dict[str, dict[str, Any]] = {}
        self.activities: dict[str, dict[str, Any]] = {}
        self.attachments: dict[str, AttachmentRecord] = {}
        self.activities_by_case: dict[str, list[str]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self._case_keys: set[str] = set()
        self._rng = random.Random(seed)
        self.cid = cid or self.hex32()

    # ids ------------------------------------------------------------------------------------
    def hex32(self) -> str:
        """A fresh 32-hex-digit id (reproducible under the store's seed)."""
        return f"{self._rng.getrandbits(128):032x}"

    def new_uuid(self) -> str:
        """A fresh UUID string (reproducible under the store's seed)."""
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def new_case_key(self) -> str:
        """A support-case number such as ``00812345`` (unique)."""
        while True:
            key = f"00{self._rng.randrange(100000, 999999):06d}"
            if key not in self._case_keys:
                return key

    # users ----------------------------------------------------------------------------------
    def author(self, user_uuid: str | None) -> dict[str, Any]:
        """The ``messages.Author`` for a user uuid (known users first; else a synthetic one)."""
        if user_uuid and user_uuid in self.users:
            known: dict[str, Any] = _copied(self.users[user_uuid])
            return known
        uid = user_uuid or "00000000-0000-4000-8000-000000000000"
        return {
            "display_name": "API Client",
            "email_address": "api-client@example.com",
            "first_name": "API",
            "last_name": "Client",
            "uid": "api-client@example.com",
            "uuid": uid,
        }

    # mutation -------------------------------------------------------------------------------
    def add_case(self, **fields: Any) -> str:
        """Insert a case; missing wire fields get neutral defaults. Returns its id.

        The store keeps deep copies of the given values: a later update or upload changes
        this case only, never the caller's lists or another case built from the same ones.
        """
        fields = _copied(fields)
        case_id = str(fields.pop("id", None) or self.hex32())
        now = fields.pop("created_time", None) or format_time(REFERENCE_DATE)
        assigner = fields.pop("assigner", None)
        if assigner is None:
            assigner = self.author(fields.pop("user_uuid", None))
        else:
            fields.pop("user_uuid", None)
        case: dict[str, Any] = {
            "id": case_id,
            "aids": [],
            "assigner": assigner,
            "attachments": [],
            "body": "",
            "cid": self.cid,
            "created_time": now,
            "detections": [],
            "hosts": [],
            "incidents": [],
            "ip_addresses": [],
            "key": self.new_case_key(),
            "last_modified_time": now,
            "malware_submission_id": "",
            "malware_submission_url": "",
            "recon_rule_type": "",
            "rfi_id": "",
            "status": "open",
            "title": "",
            "type": "fc:contact",
        }
        case.update(fields)
        if "last_modified_time" not in fields:
            case["last_modified_time"] = case["created_time"]
        self.cases[case_id] = case
        self._case_keys.add(str(case["key"]))
        self.activities_by_case.setdefault(case_id, [])
        return case_id

    def add_activity(
        self,
        case_id: str,
        *,
        body: str = "",
        type: str = "comment",
        user_uuid: str | None = None,
        created_by: dict[str, Any] | None = None,
        created_time: str | None = None,
        id: str | None = None,
        touch_case: bool = True,
    ) -> str:
        """Insert an activity on a case (which must exist). Returns its id.

        ``created_by`` is stored as a copy (see :meth:`add_case`).
        """
        case = self.cases[case_id]
        activity_id = id or self.hex32()
        when = created_time or format_time(REFERENCE_DATE)
        self.activities[activity_id] = {
            "id": activity_id,
            "body": body,
            "case_id": case_id,
            "cid": case["cid"],
            "created_by": _copied(created_by) if created_by else self.author(user_uuid),
            "created_time": when,
            "type": type,
        }
        self.activities_by_case.setdefault(case_id, []).append(activity_id)
        if touch_case and parse_time(when) > parse_time(case["last_modified_time"]):
            case["last_modified_time"] = when
        return activity_id

    def add_attachment(
        self,
        case_id: str,
        name: str,
        data: bytes,
        *,
        user_uuid: str | None = None,
        created_time: str | None = None,
        id: str | None = None,
        mime_type: str | None = None,
    ) -> str:
        """Store an attachment on a case (listed in the case's ``attachments``). Returns its id."""
        case = self.cases[case_id]
        att_id = id or self.hex32()
        record = AttachmentRecord(
            id=att_id,
            case_id=case_id,
            name=name,
            mime_type=mime_type or mime_type_for(name),
            created_by=user_uuid or case["assigner"].get("uuid", ""),
            created_time=created_time or format_time(REFERENCE_DATE),
            data=bytes(data),
        )
        self.attachments[att_id] = record
        case["attachments"].append(record.metadata())
        return att_id

    # seeding --------------------------------------------------------------------------------
    def seed(self, n_cases: int) -> None:
        """Add ``n_cases`` realistic cases (with activities and some attachments)."""
        _Seeder(self).run(n_cases)


_FIRST = ("Ada", "Grace", "Alan", "Linus", "Margaret", "Ken", "Barbara", "Dennis", "Radia",
          "Frances", "Tim", "Hedy", "Edsger", "Katherine", "Vint", "Sophie")
_LAST = ("Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Thompson", "Liskov", "Ritchie",
         "Perlman", "Allen", "Berners-Lee", "Lamarr", "Dijkstra", "Johnson", "Cerf", "Wilson")
_HOST_PREFIX = ("WS", "LT", "SRV", "DC", "SQL", "WEB", "FS", "MAC")
_SUBJECTS = {
    "fc:detection-support": (
        "Help triaging detection on {host}",
        "Possible false positive: {proc} blocked on {host}",
        "Suspicious PowerShell activity on {host}",
        "Credential dumping detection needs review",
        "Ransomware behaviour flagged on {host}",
    ),
    "fc:contact": (
        "Update billing contact",
        "Request for a call with our account team",
        "Question about licence renewal",
        "Add a new authorised support contact",
    ),
    "fc:falcon-product-support": (
        "Sensor not reporting on {host}",
        "Sensor update policy stuck at version 7.{minor}",
        "High CPU from falcon-sensor on {host}",
        "Console shows host {host} as offline",
        "API client returns 403 on Message Center",
    ),
    "fc:incident-support": (
        "Incident response assistance for {host}",
        "Lateral movement from {host}: need guidance",
        "Escalation: active intrusion suspected",
    ),
}
_PROCS = ("powershell.exe", "rundll32.exe", "mshta.exe", "wmic.exe", "certutil.exe", "python.exe")
_COMMENTS = (
    "Thanks, we are looking into it.",
    "Could you send the sensor logs from the affected host?",
    "Logs attached. The issue started after the last patch window.",
    "We reproduced the behaviour in our lab.",
    "This was confirmed as a false positive; an exclusion is recommended.",
    "Please confirm whether the host has been contained.",
    "Host contained, investigating further.",
    "Closing this case as resolved. Reply to reopen.",
    "Any update on this? It is blocking our rollout.",
    "Escalated to the engineering team.",
)
_TINY_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da63f8cfc0f01f0005000201ffa6d0a0c80000000049454e44ae426082"
)
_TINY_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


class _Seeder:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.rng = store._rng
        if not store.users:
            for _ in range(12):
                first, last = self.rng.choice(_FIRST), self.rng.choice(_LAST)
                user_uuid = store.new_uuid()
                email = f"{first.lower()}.{last.lower()}@example.com"
                store.users[user_uuid] = {
                    "display_name": f"{first} {last}",
                    "email_address": email,
                    "first_name": first,
                    "last_name": last,
                    "uid": email,
                    "uuid": user_uuid,
                }
            for name, email in (("CrowdStrike Support", "support@crowdstrike.com"),
                                ("Falcon Complete", "complete@crowdstrike.com")):
                first, last = name.split(" ", 1)
                user_uuid = store.new_uuid()
                store.users[user_uuid] = {
                    "display_name": name,
                    "email_address": email,
                    "first_name": first,
                    "last_name": last,
                    "uid": email,
                    "uuid": user_uuid,
                }
        self.user_ids = list(store.users)
        self.customers = self.user_ids[:12]
        self.staff = self.user_ids[12:] or self.user_ids

    def host(self) -> str:
        return f"{self.rng.choice(_HOST_PREFIX)}-{self.rng.randrange(1, 9999):04d}"

    def run(self, n_cases: int) -> None:
        ref = REFERENCE_DATE.timestamp()
        year = 365 * 86400
        for _ in range(n_cases):
            self.one_case(ref, year)

    def one_case(self, ref: float, span: float) -> None:
        rng = self.rng
        store = self.store
        case_type = rng.choice(CASE_TYPES)
        created = ref - rng.uniform(3600, span)
        n_hosts = rng.choice((0, 1, 1, 1, 2, 3)) if case_type != "fc:contact" else 0
        hosts = [self.host() for _ in range(n_hosts)]
        aids = [store.hex32() for _ in hosts]
        ips = [
            f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}" for _ in hosts
        ]
        host = hosts[0] if hosts else "the console"
        title = rng.choice(_SUBJECTS[case_type]).format(
            host=host, proc=rng.choice(_PROCS), minor=rng.randrange(10, 25)
        )
        detections: list[dict[str, Any]] = []
        incidents: list[dict[str, Any]] = []
        if case_type == "fc:detection-support":
            for aid in aids or [store.hex32()]:
                det = f"ldt:{aid}:{rng.randrange(10**9, 10**12)}"
                detections.append(
                    {"id": det, "url": f"https://falcon.crowdstrike.com/activity/detections/detail/{aid}"}
                )
        elif case_type == "fc:incident-support":
            inc = f"inc:{store.hex32()}:{store.hex32()}"
            incidents.append(
                {"id": inc, "url": f"https://falcon.crowdstrike.com/crowdscore/incidents/details/{inc}"}
            )
        status = rng.choices(STATUSES, weights=_STATUS_WEIGHTS)[0]
        customer = rng.choice(self.customers)
        body = (
            f"{title}.\n\nEnvironment: {rng.randrange(50, 20000)} endpoints. "
            f"First noticed {format_time(created)}. "
            + ("Affected hosts: " + ", ".join(hosts) + "." if hosts else "No specific host.")
        )
        created_s = format_time(created)
        case_id = store.add_case(
            title=title,
            body=body,
            type=case_type,
            status=status,
            assigner=dict(store.users[customer]),
            created_time=created_s,
            hosts=hosts,
            aids=aids,
            ip_addresses=ips,
            detections=detections,
            incidents=incidents,
        )
        # activities: 0..8, chronological after creation and before the reference date. Each
        # gap is a share of the time left, so recent cases' activities don't pile up at the
        # reference date; a status change names the case's current status. (The draws from
        # ``rng`` are the same as before, so the rest of the seeded data is unchanged.)
        when = created
        for _ in range(rng.randrange(0, 9)):
            gap = rng.uniform(600, 10 * 86400)
            when = when + min(gap, (ref - when) * gap / (12 * 86400))
            kind = "status_change" if rng.random() < 0.15 else "comment"
            author = customer if rng.random() < 0.5 else rng.choice(self.staff)
            text = (
                f"Status changed to {_status_text(rng.choice(STATUSES), status)}"
                if kind == "status_change"
                else rng.choice(_COMMENTS)
            )
            store.add_activity(
                case_id,
                body=text,
                type=kind,
                created_by=dict(store.users[author]),
                created_time=format_time(when),
            )
        if rng.random() < 0.12:
            att_when = format_time(min(ref - 1, created + rng.uniform(60, 86400)))
            choice = rng.randrange(3)
            if choice == 0:
                name = f"sensor-log-{rng.randrange(1000, 9999)}.txt"
                data = ("\n".join(f"{format_time(created + i)} falcon-sensor: event {i}"
                                  for i in range(rng.randrange(5, 40)))).encode()
            elif choice == 1:
                name = f"screenshot_{rng.randrange(1, 99)}.png"
                data = _TINY_PNG
            else:
                name = f"report-{rng.randrange(1, 999)}.pdf"
                data = _TINY_PDF
            store.add_attachment(case_id, name, data, user_uuid=customer, created_time=att_when)


def _status_text(drawn: str, current: str) -> str:
    """The status a seeded status change names: the case's own, unless that one is ``open``."""
    return current if current != "open" else drawn if drawn != "closed" else "in_progress"
