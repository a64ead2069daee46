"""The ``falcon-mc`` command line, driven by typer's test runner against the embedded emulator.

Two ways in: ``--emulator`` (a fresh seeded emulator in-process per invocation) and
``--base-url <url>`` with credentials in the environment, against ``emu.serve()`` on loopback,
whose state the tests then inspect.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner, Result

from falcon_mc import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    InvalidArgumentError,
    NotFoundError,
    OAuthError,
    PermissionDeniedError,
    RateLimitError,
    __version__,
)
from falcon_mc._cli import _core as core
from falcon_mc._cli._core import MissingCredentialsError, describe_error
from falcon_mc._cloud import resolve_base_url
from falcon_mc.cli import app
from falcon_mc.emulator import Emulator

SECRET = "cli-test-secret-never-printed"
CLIENT_ID = "cli-test-client"

runner = CliRunner()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No credentials or targets from the developer's shell."""
    for name in ("FALCON_CLIENT_ID", "FALCON_CLIENT_SECRET", "FALCON_CLOUD", "FALCON_BASE_URL",
                 "FALCON_MEMBER_CID", "FALCON_USER_UUID", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def emu() -> Emulator:
    """A small seeded emulator whose state the tests inspect."""
    return Emulator.seeded(n_cases=60, seed=3)


@pytest.fixture
def served(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``emu`` on loopback; credentials in the environment, as a user would set them."""
    monkeypatch.setenv("FALCON_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("FALCON_CLIENT_SECRET", SECRET)
    with emu.serve() as url:
        yield url


def invoke(args: Sequence[str], *, input: str | None = None) -> Result:
    """Run ``falcon-mc ARGS``; never a traceback, never the secret."""
    result = runner.invoke(app, list(args), input=input)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        result.output, result.exception
    )
    assert "Traceback" not in result.output
    assert SECRET not in result.output
    return result


def ok(args: Sequence[str], **kwargs: Any) -> Result:
    """Run and expect exit 0."""
    result = invoke(args, **kwargs)
    assert result.exit_code == 0, result.output
    return result


def json_lines(text: str) -> list[dict[str, Any]]:
    """Parse JSON lines (every non-empty line must parse)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def a_user(emu: Emulator) -> str:
    """A seeded user's uuid."""
    return next(iter(emu.users))


def a_case(emu: Emulator, *, with_activities: bool = False) -> str:
    """A seeded case id (one with activities, if asked)."""
    for case_id in emu.cases:
        if not with_activities or emu.activity_ids(case_id):
            return case_id
    raise AssertionError("no such case")


# -- version, help, demo ----------------------------------------------------------------------------


def test_version() -> None:
    result = ok(["--version"])
    assert result.stdout.strip() == f"falcon-mc {__version__}"


def test_python_dash_m() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "falcon_mc", "--version"], capture_output=True, text=True,
        check=False, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"falcon-mc {__version__}"


@pytest.mark.parametrize("command", [["export"], ["cases", "list", "--limit", "500"]],
                         ids=["lines", "a-table"])
def test_a_reader_that_stops_early_ends_the_command_quietly(command: list[str]) -> None:
    # ``falcon-mc export | head -c 100``: exit 141 (128 + SIGPIPE) without an error message;
    # tables went through rich, which exited 1 on its own
    process = subprocess.Popen(  # noqa: S603 - our own command line
        [sys.executable, "-m", "falcon_mc", "--emulator", *command],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert process.stdout is not None
    process.stdout.close()  # the reader is gone before anything is written (``| true``)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 141, stderr
    assert b"error" not in stderr and b"Traceback" not in stderr, stderr


def test_help_lists_commands() -> None:
    result = ok(["--help"])
    for command in ("demo", "cases", "activities", "attachments", "aggregate", "export",
                    "emulator"):
        assert command in result.stdout


def test_no_arguments_shows_help() -> None:
    result = invoke([])
    assert "Usage" in result.output


def test_demo_tours_the_api_over_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FALCON_CLIENT_ID", "ignored-by-the-demo")  # the demo needs no credentials
    result = ok(["demo"])
    out = result.stdout
    for step in range(1, 7):
        assert f"Step {step}/6" in out
    assert "http://127.0.0.1:" in out
    assert "case.status:'open'" in out  # the FQL built with falcon_mc.fql
    assert "by_status" in out and "by_week" in out
    assert "Looking into this now" in out
    assert "matches" in out
    assert "total time" in out
    assert "done in" in out


def test_demo_json_summary_in_process() -> None:
    result = ok(["--json", "demo", "--in-process", "--cases", "80", "--seed", "1"])
    [summary] = json_lines(result.stdout)
    seeded = Emulator.seeded(n_cases=80, seed=1)
    n_open = sum(1 for c in seeded.cases.values() if c["status"] == "open")
    assert summary["cases_fetched"] == summary["open_cases"] == n_open
    assert summary["attachment_bytes"] > 0
    assert summary["requests"] >= 10
    assert [s["step"] for s in summary["steps"]] == [1, 2, 3, 4, 5, 6]
    assert "Step 1/6" in result.stderr


def test_demo_without_open_cases_tours_the_others() -> None:
    seeded = Emulator.seeded(n_cases=2, seed=1)
    assert all(c["status"] != "open" for c in seeded.cases.values())
    result = ok(["--json", "demo", "--in-process", "--cases", "2", "--seed", "1"])
    [summary] = json_lines(result.stdout)
    assert summary["open_cases"] == 0
    assert summary["cases_fetched"] == 2
    assert [s["step"] for s in summary["steps"]] == [1, 2, 3, 4, 5, 6]


# -- --emulator -------------------------------------------------------------------------------------


def test_emulator_flag_cases_list_json() -> None:
    result = ok(["cases", "list", "--emulator", "--json", "--limit", "5",
                 "--filter", "case.status:'closed'"])
    rows = json_lines(result.stdout)
    assert len(rows) == 5
    seeded = Emulator.seeded(n_cases=500, seed=7)
    for row in rows:
        assert row["status"] == "closed"
        assert row["id"] in seeded.cases


def test_global_options_before_the_command_too() -> None:
    result = ok(["--emulator", "--json", "cases", "list", "--limit", "3",
                 "--sort", "case.created_time.asc"])
    rows = json_lines(result.stdout)
    assert len(rows) == 3
    assert [r["created_time"] for r in rows] == sorted(r["created_time"] for r in rows)


def test_emulator_flag_table() -> None:
    result = ok(["--emulator", "cases", "list", "--limit", "4"])
    seeded = Emulator.seeded(n_cases=500, seed=7)
    newest = sorted(seeded.cases.values(), key=lambda c: c["created_time"], reverse=True)[:4]
    for case in newest:
        assert case["id"] in result.stdout
    assert "of 500" in result.stderr


def test_list_beyond_one_page() -> None:
    result = ok(["--emulator", "--json", "cases", "list", "--limit", "520"])
    rows = json_lines(result.stdout)
    assert len(rows) == 500
    assert len({r["id"] for r in rows}) == 500


def test_emulator_comment_uses_a_seeded_user() -> None:
    seeded = Emulator.seeded(n_cases=500, seed=7)
    case_id = next(iter(seeded.cases))
    result = ok(["--emulator", "cases", "comment", case_id, "hello from the test"])
    assert f"comment added to case {case_id}" in result.stdout


# -- against a served emulator with env credentials -------------------------------------------------


def test_cases_list_all(served: str, emu: Emulator) -> None:
    result = ok(["--base-url", served, "--json", "cases", "list", "--limit", "500"])
    assert {r["id"] for r in json_lines(result.stdout)} == set(emu.cases)


def test_cases_get(served: str, emu: Emulator) -> None:
    wanted = list(emu.cases)[:3]
    result = ok(["cases", "get", *wanted, "--base-url", served, "--json"])
    assert [r["id"] for r in json_lines(result.stdout)] == wanted
    commas = ok(["--json", "--base-url", served, "cases", "get", f"{wanted[0]},{wanted[1]}",
                 wanted[2]])
    assert [r["id"] for r in json_lines(commas.stdout)] == wanted
    table = ok(["cases", "get", wanted[0], "--base-url", served])
    assert emu.cases[wanted[0]]["title"] in table.stdout


def test_cases_get_partly_missing_exits_5(served: str, emu: Emulator) -> None:
    found = a_case(emu)
    result = invoke(["--base-url", served, "--json", "cases", "get", found, "no-such-case"])
    assert result.exit_code == 5
    assert [r["id"] for r in json_lines(result.stdout)] == [found]
    assert "not found: no-such-case" in result.stderr


def test_cases_create(served: str, emu: Emulator) -> None:
    user = a_user(emu)
    result = ok(["--base-url", served, "--json", "cases", "create", "--title", "Printer on fire",
                 "--content", "It is really on fire", "--type", "fc:contact",
                 "--user-uuid", user, "--detection", "ldt:abc:123", "--detection", "ldt:def:456"])
    [created] = json_lines(result.stdout)
    case = emu.cases[created["id"]]
    assert case["title"] == "Printer on fire"
    assert case["body"] == "It is really on fire"
    assert case["type"] == "fc:contact"
    assert [d["id"] for d in case["detections"]] == ["ldt:abc:123", "ldt:def:456"]


def test_cases_create_content_from_stdin(served: str, emu: Emulator) -> None:
    result = ok(["--base-url", served, "--json", "cases", "create", "--title", "From stdin",
                 "--content", "-", "--type", "fc:contact"], input="body read from stdin\n")
    [created] = json_lines(result.stdout)
    assert emu.cases[created["id"]]["body"] == "body read from stdin\n"


def test_cases_update_is_legacy_without_a_warning(served: str, emu: Emulator) -> None:
    case_id = a_case(emu)
    result = ok(["--base-url", served, "cases", "update", case_id, "--content", "new body"])
    assert f"updated case {case_id}" in result.stdout
    assert "legacy" in result.stderr
    assert emu.cases[case_id]["body"] == "new body"


def test_cases_comment(served: str, emu: Emulator) -> None:
    case_id = a_case(emu)
    before = set(emu.activity_ids(case_id))
    result = ok(["--base-url", served, "cases", "comment", case_id, "on it",
                 "--user-uuid", a_user(emu)])
    assert case_id in result.stdout
    [new] = set(emu.activity_ids(case_id)) - before
    assert emu.activities[new]["body"] == "on it"


def test_cases_comment_requires_a_user(served: str, emu: Emulator) -> None:
    result = invoke(["--base-url", served, "cases", "comment", a_case(emu), "on it"])
    assert result.exit_code == 2
    assert "--user-uuid" in result.stderr


def test_activities_list(served: str, emu: Emulator) -> None:
    case_id = a_case(emu, with_activities=True)
    result = ok(["--base-url", served, "--json", "activities", "list", case_id])
    rows = json_lines(result.stdout)
    assert {r["id"] for r in rows} == set(emu.activity_ids(case_id))
    assert all(r["case_id"] == case_id for r in rows)
    table = ok(["--base-url", served, "activities", "list", case_id, "--limit", "1"])
    assert "1 activities" in table.stderr


def test_text_from_stdin_must_be_utf8(served: str, emu: Emulator) -> None:
    # a UnicodeDecodeError traceback (or, in a C locale, lone surrogates sent on)
    case_id = a_case(emu)
    before = len(emu.activities)
    result = invoke(["--base-url", served, "cases", "comment", case_id, "-",
                     "--user-uuid", "u-1"], input=b"caf\xe9 au lait\n")  # type: ignore[arg-type]
    assert result.exit_code == 2
    assert "stdin is not UTF-8 text (byte 3 is 0xe9)" in result.stderr
    assert len(emu.activities) == before


def test_a_secret_prompt_interrupted_is_an_interrupt(monkeypatch: pytest.MonkeyPatch) -> None:
    # Ctrl-C at the prompt is typer's Abort: "Aborted." and exit 1, not the documented 130
    def interrupted(*args: object, **kwargs: object) -> str:
        raise typer.Abort

    monkeypatch.setattr("typer.prompt", interrupted)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    with pytest.raises(KeyboardInterrupt):
        core.resolve_target(core.GlobalOptions(client_id="someone"), core.Output(json_mode=False))
    assert describe_error(KeyboardInterrupt())[0] == 130


@pytest.mark.parametrize("kind", ["range", "date_range"])
def test_aggregations_with_bounds_point_to_json(kind: str) -> None:
    result = invoke(["--emulator", "aggregate", "--field", "case.created_time", "--type", kind])
    assert result.exit_code == 2
    assert "--json" in result.stderr


def test_tables_fold_text_that_does_not_fit_instead_of_cropping_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # at 80 columns "Request for a call with our account team" showed as "Request / call wit"
    monkeypatch.setenv("COLUMNS", "80")
    table = ok(["--emulator", "cases", "list", "--limit", "100"]).stdout
    rows = json_lines(ok(["--emulator", "--json", "cases", "list", "--limit", "100"]).stdout)
    words = set(table.split())
    assert max(len(line) for line in table.splitlines()) <= 80
    assert [w for row in rows for w in row["title"].split() if w not in words] == []


def test_names_from_the_server_are_shown_as_written_not_as_markup(
    served: str, emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    case_id = a_case(emu)
    user = next(iter(emu.users))
    names = ["Bob [/]", "Carol [link=https://evil.example]click[/link]", "[bold]Dave"]
    for name in names:
        emu.add_activity(case_id, "hello", created_by={"uuid": user, "display_name": name})
    emu.cases[case_id]["status"] = "[red]closed"
    table = ok(["--base-url", served, "activities", "list", case_id])
    for name in names:
        assert name in table.stdout
    assert "[red]closed" in ok(["--base-url", served, "cases", "list", "--limit", "100"]).stdout


def test_attachment_round_trip(served: str, emu: Emulator, tmp_path: Path) -> None:
    case_id = a_case(emu)
    data = b"evidence line\n" * 1000
    source = tmp_path / "evidence.txt"
    source.write_bytes(data)
    upload = ok(["--base-url", served, "--json", "attachments", "upload", case_id, str(source),
                 "--user-uuid", a_user(emu)])
    [attachment] = json_lines(upload.stdout)
    assert attachment["name"] == "evidence.txt"
    assert emu.attachments[attachment["id"]].data == data

    out_dir = tmp_path / "downloads"
    out_dir.mkdir()
    download = ok(["--base-url", served, "--json", "attachments", "download", attachment["id"],
                   "-o", str(out_dir)])
    [saved] = json_lines(download.stdout)
    assert saved["bytes"] == len(data)
    assert (out_dir / "evidence.txt").read_bytes() == data
    assert not list(out_dir.glob("*.part"))

    to_file = tmp_path / "copy.txt"
    ok(["--base-url", served, "attachments", "download", attachment["id"], "-o", str(to_file)])
    assert to_file.read_bytes() == data

    raw = runner.invoke(app, ["--base-url", served, "attachments", "download", attachment["id"],
                              "-o", "-"])
    assert raw.exit_code == 0
    assert raw.stdout_bytes == data


def test_upload_refuses_a_bad_file_type(served: str, emu: Emulator, tmp_path: Path) -> None:
    bad = tmp_path / "tool.exe"
    bad.write_bytes(b"MZ")
    result = invoke(["--base-url", served, "attachments", "upload", a_case(emu), str(bad),
                     "--user-uuid", a_user(emu)])
    assert result.exit_code == 2
    assert "invalid FILE / --name (filename)" in result.stderr


def test_upload_usage_errors_name_the_option(served: str, emu: Emulator, tmp_path: Path) -> None:
    source = tmp_path / "notes.txt"
    source.write_bytes(b"x")
    result = invoke(["--base-url", served, "attachments", "upload", a_case(emu), str(source),
                     "--user-uuid", a_user(emu), "--name", "bad$name.txt"])
    assert result.exit_code == 2
    assert "invalid FILE / --name (filename)" in result.stderr
    big = tmp_path / "big.txt"
    with big.open("wb") as f:
        f.truncate(16 * 1024 * 1024)
    result = invoke(["--base-url", served, "attachments", "upload", a_case(emu), str(big),
                     "--user-uuid", a_user(emu)])
    assert result.exit_code == 2
    assert "invalid FILE (file)" in result.stderr


def test_aggregate_flags(served: str, emu: Emulator) -> None:
    result = ok(["--base-url", served, "--json", "aggregate", "--field", "case.status",
                 "--type", "terms"])
    [agg] = json_lines(result.stdout)
    assert agg["name"] == "by_status"
    counts = {b["label"]: b["count"] for b in agg["buckets"]}
    expected: dict[str, int] = {}
    for case in emu.cases.values():
        expected[case["status"]] = expected.get(case["status"], 0) + 1
    assert counts == expected
    table = ok(["--base-url", served, "aggregate", "--field", "case.created_time",
                "--type", "date_histogram", "--interval", "week", "--name", "weekly"])
    assert "weekly" in table.stdout


def test_aggregate_json_queries(served: str, emu: Emulator) -> None:
    queries = [
        {"name": "types", "type": "terms", "field": "case.type"},
        {"name": "weeks", "type": "date_histogram", "field": "case.created_time",
         "interval": "week"},
    ]
    result = ok(["--json", "--base-url", served, "aggregate", "--json", json.dumps(queries)])
    rows = json_lines(result.stdout)
    assert [r["name"] for r in rows] == ["types", "weeks"]
    assert sum(b["count"] for b in rows[0]["buckets"]) == len(emu.cases)
    assert sum(b["count"] for b in rows[1]["buckets"]) == len(emu.cases)


def test_aggregate_bad_json_is_a_usage_error(served: str) -> None:
    result = invoke(["--base-url", served, "aggregate", "--json", "{not json"])
    assert result.exit_code == 2
    assert "--json" in result.output


def test_export_stdout(served: str, emu: Emulator) -> None:
    result = ok(["--base-url", served, "export", "--filter", "case.status:'open'",
                 "--batch", "7"])
    rows = json_lines(result.stdout)
    expected = {i for i, c in emu.cases.items() if c["status"] == "open"}
    assert {r["id"] for r in rows} == expected
    for row in rows:
        assert {a["id"] for a in row["activities"]} == set(emu.activity_ids(row["id"]))
    assert f"exported {len(expected)} cases" in result.stderr


def test_export_keeps_stdout_clean_when_stderr_is_a_terminal(
    served: str, emu: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The progress bar on a terminal must not capture the JSON lines (``export > f.jsonl``)."""
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich then treats stderr as a terminal
    result = ok(["--base-url", served, "export", "--filter", "case.status:'open'"])
    rows = json_lines(result.stdout)
    assert {r["id"] for r in rows} == {i for i, c in emu.cases.items() if c["status"] == "open"}
    assert '"id"' not in result.stderr


def test_export_to_file(served: str, emu: Emulator, tmp_path: Path) -> None:
    target = tmp_path / "all.jsonl"
    result = ok(["--base-url", served, "export", "-o", str(target)])
    assert result.stdout == ""
    rows = json_lines(target.read_text(encoding="utf-8"))
    assert {r["id"] for r in rows} == set(emu.cases)
    assert sum(len(r["activities"]) for r in rows) == len(emu.activities)


def test_a_failed_export_keeps_the_previous_file(
    served: str, emu: Emulator, tmp_path: Path
) -> None:
    target = tmp_path / "all.jsonl"
    target.write_text("yesterday's export\n", encoding="utf-8")
    emu.faults.add(operation="GetCaseActivityByIds", kind="status", status=403)
    result = invoke(["--base-url", served, "export", "-o", str(target), "--batch", "7"])
    assert result.exit_code == 4
    assert target.read_text(encoding="utf-8") == "yesterday's export\n"
    assert [p.name for p in tmp_path.iterdir()] == ["all.jsonl"]


def test_export_through_a_symlink_writes_its_target_and_keeps_the_link(
    served: str, emu: Emulator, tmp_path: Path
) -> None:
    # the part file's rename replaced the link (and a FIFO, and failed on /dev/fd/N)
    target = tmp_path / "real.jsonl"
    target.write_text("old\n", encoding="utf-8")
    link = tmp_path / "link.jsonl"
    link.symlink_to(target)
    ok(["--base-url", served, "export", "-o", str(link)])
    assert link.is_symlink()
    assert len(json_lines(target.read_text(encoding="utf-8"))) == len(emu.cases)


def test_verbose_logs_without_secrets(served: str, emu: Emulator) -> None:
    result = ok(["--base-url", served, "--verbose", "cases", "list", "--limit", "1"])
    assert "DEBUG" in result.stderr
    assert "falcon_mc" in result.stderr
    token_free = result.stderr.lower()
    assert "bearer " not in token_free or "<redacted>" in token_free


# -- errors and exit codes --------------------------------------------------------------------------


def test_bad_fql_field_exits_7(served: str) -> None:
    result = invoke(["--base-url", served, "cases", "list", "--filter", "case.nope:'x'"])
    assert result.exit_code == 7
    assert "case.nope" in result.stderr
    assert "trace id" in result.stderr


def test_malformed_fql_exits_2_naming_the_option() -> None:
    result = invoke(["--emulator", "cases", "list", "--filter", "case.status:'open"])
    assert result.exit_code == 2
    assert "--filter" in result.stderr


def test_bad_sort_exits_2() -> None:
    result = invoke(["--emulator", "cases", "list", "--sort", "title"])
    assert result.exit_code == 2
    assert "--sort" in result.stderr


def test_wrong_credentials_exit_3(served: str, emu: Emulator) -> None:
    emu.settings.credentials = ("the-real-id", "the-real-secret")
    result = invoke(["--base-url", served, "cases", "list"])
    assert result.exit_code == 3
    assert "authentication failed" in result.stderr
    assert "FALCON_CLIENT_SECRET" in result.stderr  # the hint names the variable, not the value


def test_forbidden_exits_4(served: str, emu: Emulator) -> None:
    emu.faults.add(operation="QueryCasesIdsByFilter", kind="status", status=403)
    result = invoke(["--base-url", served, "cases", "list"])
    assert result.exit_code == 4
    assert "permission denied" in result.stderr


def test_missing_attachment_exits_5(served: str) -> None:
    result = invoke(["--base-url", served, "attachments", "download", "no-such-attachment"])
    assert result.exit_code == 5
    assert "not found" in result.stderr


def test_server_error_on_a_write_exits_1_with_trace_id(served: str, emu: Emulator) -> None:
    emu.faults.add(operation="CaseAddActivity", kind="status", status=500)
    result = invoke(["--base-url", served, "cases", "comment", a_case(emu), "hi",
                     "--user-uuid", a_user(emu)])
    assert result.exit_code == 1
    assert "trace id" in result.stderr


def test_missing_credentials_exit_2_with_a_hint() -> None:
    result = invoke(["cases", "list"])
    assert result.exit_code == 2
    assert "FALCON_CLIENT_ID" in result.stderr
    assert "--emulator" in result.stderr


def test_missing_secret_only() -> None:
    result = invoke(["--client-id", "someone", "cases", "list"])
    assert result.exit_code == 2
    first_line = result.stderr.splitlines()[0]
    assert "FALCON_CLIENT_SECRET not set" in first_line
    assert "FALCON_CLIENT_ID" not in first_line


def test_plain_http_off_loopback_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FALCON_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("FALCON_CLIENT_SECRET", SECRET)
    result = invoke(["--base-url", "http://example.com", "cases", "list"])
    assert result.exit_code == 2
    assert "--base-url" in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "url"),
    [
        (["--cloud", "US2"], {}, "https://api.us-2.crowdstrike.com"),
        (["cases", "list", "--cloud", "usgov1"], {}, "https://api.laggar.gcw.crowdstrike.com"),
        ([], {"FALCON_CLOUD": "eu1"}, "https://api.eu-1.crowdstrike.com"),
        ([], {}, "https://api.crowdstrike.com"),
    ],
)
def test_cloud_names_are_read_as_the_library_reads_them(
    monkeypatch: pytest.MonkeyPatch, args: list[str], env: dict[str, str], url: str
) -> None:
    """``--cloud`` and ``FALCON_CLOUD`` take FalconPy's spellings (``us2``, ``usgov1``) too."""
    monkeypatch.setenv("FALCON_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("FALCON_CLIENT_SECRET", SECRET)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    seen: list[str] = []

    def fake_open(**kwargs: Any) -> Any:
        seen.append(resolve_base_url(kwargs["base_url"])[0])
        raise MissingCredentialsError("stop here")

    monkeypatch.setattr(core, "AsyncMessageCenter", fake_open)
    command = args if "cases" in args else [*args, "cases", "list"]
    assert invoke(command).exit_code == 2
    assert seen == [url]


def test_an_unknown_cloud_is_a_usage_error() -> None:
    result = invoke(["--cloud", "mars-1", "cases", "list"])
    assert result.exit_code == 2
    assert "us-1, us-2, eu-1, us-gov-1, auto" in result.stderr


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (MissingCredentialsError("no API credentials"), 2),
        (InvalidArgumentError("limit", "must be between 1 and 500"), 2),
        (OAuthError("token refused", status_code=403), 3),
        (AuthenticationError("401", status_code=401), 3),
        (PermissionDeniedError("403", status_code=403), 4),
        (NotFoundError("404", status_code=404), 5),
        (RateLimitError("429", status_code=429, retry_after=2.0), 6),
        # the token endpoint busy or failing is no reason to doubt the credentials
        (OAuthError("busy", status_code=429), 6),
        (OAuthError("down", status_code=503), 1),
        (BadRequestError("400", status_code=400), 7),
        (ConflictError("409", status_code=409, trace_id="t-1"), 1),
        (InternalServerError("503", status_code=503, trace_id="t-2"), 1),
        (APIConnectionError("reset"), 1),
        (ExceptionGroup("wrapped", [NotFoundError("404", status_code=404)]), 5),
        (KeyboardInterrupt(), 130),
    ],
)
def test_exit_codes(exc: BaseException, code: int) -> None:
    assert describe_error(exc)[0] == code


def test_error_messages_keep_trace_ids() -> None:
    _, headline, _ = describe_error(InternalServerError("boom", status_code=503, trace_id="t-9"))
    assert "t-9" in headline
    _, headline, _ = describe_error(InvalidArgumentError("limit", "must be between 1 and 500"))
    assert headline.startswith("invalid --limit")
    _, headline, _ = describe_error(RateLimitError("slow down", status_code=429, retry_after=3))
    assert "retry in 3 s" in headline


def test_unexpected_errors_are_not_swallowed() -> None:
    with pytest.raises(ZeroDivisionError):
        describe_error(ZeroDivisionError())


# -- the emulator command ---------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "shown"), [
    ("0.0.0.0", "http://127.0.0.1:8123"), ("::", "http://[::1]:8123"),  # noqa: S104
    ("::1", "http://[::1]:8123"), ("localhost", "http://localhost:8123"),
])
def test_the_emulator_suggests_a_base_url_the_client_takes(
    monkeypatch: pytest.MonkeyPatch, host: str, shown: str
) -> None:
    # http://0.0.0.0:8123 is refused (plain http off loopback), http://::1:8123 is not a URL
    monkeypatch.setattr(Emulator, "run", lambda self, host, port: None)
    result = ok(["emulator", "--host", host, "--port", "8123", "--cases", "1"])
    assert f"--base-url {shown} " in result.stderr


def test_emulator_command(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Emulator, str, int]] = []

    def fake_run(self: Emulator, host: str = "127.0.0.1", port: int = 8080) -> None:
        calls.append((self, host, port))

    monkeypatch.setattr(Emulator, "run", fake_run)
    result = ok(["emulator", "--port", "8123", "--cases", "12", "--seed", "2",
                 "--latency", "0.01", "--rate-limit", "600"])
    [(served_emu, host, port)] = calls
    assert (host, port) == ("127.0.0.1", 8123)
    assert len(served_emu.cases) == 12
    assert served_emu.settings.latency == 0.01
    assert served_emu.settings.rate_limit_per_minute == 600
    assert "FALCON_CLIENT_ID" in result.stderr
    assert "http://127.0.0.1:8123" in result.stderr
