"""Upload name rules, content types, and sanitising server-supplied attachment names."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from falcon_mc import InvalidArgumentError
from falcon_mc._filenames import (
    UPLOAD_CONTENT_TYPES,
    UPLOAD_MAX_BYTES,
    check_upload_size,
    guess_upload_content_type,
    parse_content_disposition_filename,
    safe_join,
    sanitize_filename,
    validate_upload_filename,
)

# --------------------------------------------------------------------------- upload names


@pytest.mark.parametrize(
    "name",
    [
        "report.pdf",
        "Report 2024 final.PDF",
        "_x.png",
        "-x.jpeg",
        "9.txt",
        "a.b.c.csv",
        "x.tar.docx",
        "UPPER.XLSX",
        "a" * 251 + ".txt",
        "name with  two spaces.doc",
    ],
)
def test_valid_upload_names(name: str) -> None:
    validate_upload_filename(name)


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("", "empty"),
        ("a" * 252 + ".txt", "255"),
        (".hidden.txt", "must start"),
        (" lead.txt", "must start"),
        ("résumé.pdf", "'é'"),
        ("tab\tname.txt", "'\\t'"),
        ("new\nline.txt", "'\\n'"),
        ("a/b.txt", "'/'"),
        ("a\\b.txt", "'\\\\'"),
        ("a:b.txt", "':'"),
        ("evil.exe", "'.exe'"),
        ("archive.zip", "'.zip'"),
        ("noext", "no extension"),
        ("trailingdot.", "no extension"),
        ("pdf", "no extension"),
        ("slides.ppt", "'.ppt'"),
    ],
)
def test_invalid_upload_names(name: str, fragment: str) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        validate_upload_filename(name)
    assert info.value.argument == "filename"
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_upload_name_non_string() -> None:
    with pytest.raises(InvalidArgumentError):
        validate_upload_filename(b"x.txt")  # type: ignore[arg-type]


@given(st.text(alphabet=st.characters(codec="ascii"), max_size=300))
def test_upload_validation_matches_the_spec_rules(name: str) -> None:
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_. ")
    stem, dot, ext = name.rpartition(".")
    ok = (
        0 < len(name) <= 255
        and (name[0].isascii() and (name[0].isalnum() or name[0] in "_-"))
        and set(name) <= allowed
        and bool(dot and stem)
        and ext.lower() in UPLOAD_CONTENT_TYPES
    )
    if ok:
        validate_upload_filename(name)
    else:
        with pytest.raises(InvalidArgumentError):
            validate_upload_filename(name)


# --------------------------------------------------------------------------- sizes


def test_upload_size() -> None:
    assert UPLOAD_MAX_BYTES == 15 * 1024 * 1024
    check_upload_size(0)
    check_upload_size(UPLOAD_MAX_BYTES)
    with pytest.raises(InvalidArgumentError) as info:
        check_upload_size(UPLOAD_MAX_BYTES + 1)
    assert info.value.argument == "file"
    assert "15 MB" in str(info.value)
    check_upload_size(10, limit=10)
    with pytest.raises(InvalidArgumentError):
        check_upload_size(11, limit=10)
    with pytest.raises(InvalidArgumentError):
        check_upload_size(-1)


# --------------------------------------------------------------------------- content types


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.png", "image/png"),
        ("a.bmp", "image/bmp"),
        ("a.jpg", "image/jpeg"),
        ("a.JPEG", "image/jpeg"),
        ("a.gif", "image/gif"),
        ("a.pdf", "application/pdf"),
        ("a.doc", "application/msword"),
        ("a.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"),
        ("a.xls", "application/vnd.ms-excel"),
        ("a.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
        ("a.pptx", "application/vnd.openxmlformats-officedocument.presentationml.presentation"),
        ("a.txt", "text/plain"),
        ("a.Csv", "text/csv"),
        ("a.zip", "application/octet-stream"),
        ("noext", "application/octet-stream"),
        (".png", "application/octet-stream"),
        ("", "application/octet-stream"),
    ],
)
def test_guess_upload_content_type(name: str, expected: str) -> None:
    assert guess_upload_content_type(name) == expected


def test_thirteen_upload_types() -> None:
    assert set(UPLOAD_CONTENT_TYPES) == {
        "png", "bmp", "jpg", "jpeg", "gif", "pdf", "doc", "docx", "xls", "xlsx", "pptx", "txt",
        "csv",
    }  # fmt: skip


# --------------------------------------------------------------------------- sanitising


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("report.pdf", "report.pdf"),
        ("Report 2024.PDF", "Report 2024.PDF"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\system32\\cmd.exe", "cmd.exe"),
        ("/abs/path/x.txt", "x.txt"),
        ("C:\\Users\\me\\x.txt", "x.txt"),
        ("dir/", "fb"),
        ("..", "fb"),
        (".", "fb"),
        ("...", "fb"),
        ("", "fb"),
        (None, "fb"),
        (".bashrc", "bashrc"),
        ("  . x.txt", "x.txt"),
        ("x.txt. . ", "x.txt"),
        ("a\x00b.txt", "ab.txt"),
        ("a\x1b[31mb.txt", "a_31mb.txt"),
        ("\u202egnp.exe", "gnp.exe"),
        ("in\u200bvisible.txt", "invisible.txt"),
        ("\ufeffbom.txt", "bom.txt"),
        ("..\uff0f..\uff0fetc\uff0fpasswd", "passwd"),
        ("a\uff3cb.txt", "b.txt"),
        ("a\u2215b.txt", "a_b.txt"),
        ("\uff41\uff42\uff43.txt", "abc.txt"),
        ("résumé.pdf", "r_sum_.pdf"),
        ("tab\tname.txt", "tabname.txt"),  # control characters are dropped
        ("a:b*c?d<e>f|g\".txt", "a_b_c_d_e_f_g_.txt"),
        ("CON", "_CON"),
        ("con.txt", "_con.txt"),
        ("Nul.tar.gz", "_Nul.tar.gz"),
        ("COM1", "_COM1"),
        ("lpt9.log", "_lpt9.log"),
        ("CON .txt", "_CON .txt"),
        ("COM10", "COM10"),
        ("CONSOLE.txt", "CONSOLE.txt"),
        ("aux.", "_aux"),
    ],
)
def test_sanitize_table(name: str | None, expected: str) -> None:
    assert sanitize_filename(name, fallback="fb") == expected


def test_sanitize_non_latin_is_replaced() -> None:
    assert sanitize_filename("отчёт.pdf", fallback="fb") == "_____.pdf"


def test_sanitize_truncates_keeping_the_extension() -> None:
    out = sanitize_filename("a" * 400 + ".pdf", fallback="fb")
    assert len(out.encode()) == 255
    assert out.endswith(".pdf")
    out = sanitize_filename("b" * 400, fallback="fb")
    assert out == "b" * 255
    # an over-long "extension" is not kept specially
    out = sanitize_filename("c." + "d" * 400, fallback="fb")
    assert len(out) == 255
    assert out.startswith("c.ddd")


def test_sanitize_reserved_after_truncation() -> None:
    out = sanitize_filename("NUL" + " " * 300 + "x", fallback="fb")
    assert out == "_NUL"


def test_sanitize_fallback_is_cleaned_too() -> None:
    assert sanitize_filename(None, fallback="attachment-1.pdf") == "attachment-1.pdf"
    assert sanitize_filename("..", fallback="../evil") == "evil"
    assert sanitize_filename("..", fallback="..") == "file"


# --------------------------------------------------------------------------- content-disposition


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("attachment", None),
        ("inline", None),
        ('attachment; filename="report.pdf"', "report.pdf"),
        ("attachment; filename=report.pdf", "report.pdf"),
        ("attachment;filename=report.pdf ", "report.pdf"),
        ('attachment; filename="with space.pdf"; size=10', "with space.pdf"),
        ('attachment; filename="a\\"b.pdf"', 'a"b.pdf'),
        ('attachment; filename="semi;colon.pdf"', "semi;colon.pdf"),
        ("attachment; FILENAME=upper.pdf", "upper.pdf"),
        ("attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf", "résumé.pdf"),
        ("attachment; filename*=utf-8'en'a%20b.txt", "a b.txt"),
        ("attachment; filename*=ISO-8859-1''caf%E9.txt", "café.txt"),
        (
            "attachment; filename=\"plain.pdf\"; filename*=UTF-8''fancy%E2%82%AC.pdf",
            "fancy€.pdf",
        ),
        (
            "attachment; filename*=UTF-8''fancy.pdf; filename=\"plain.pdf\"",
            "fancy.pdf",
        ),
        ("attachment; filename*=UTF-8''bad%FF.pdf; filename=plain.pdf", "plain.pdf"),
        ("attachment; filename*=KOI8-R''x.pdf; filename=plain.pdf", "plain.pdf"),
        ("attachment; filename*=garbage", None),
        ('attachment; filename=""', None),
        ('attachment; filename="../../etc/passwd"', "../../etc/passwd"),
        ("attachment; filename", None),
    ],
)
def test_parse_content_disposition(header: str | None, expected: str | None) -> None:
    assert parse_content_disposition_filename(header) == expected


@given(st.text())
def test_parse_content_disposition_never_raises(header: str) -> None:
    result = parse_content_disposition_filename(header)
    assert result is None or isinstance(result, str)


# --------------------------------------------------------------------------- safe_join


def test_safe_join(tmp_path: Path) -> None:
    assert safe_join(tmp_path, "../../x.txt") == tmp_path.resolve() / "x.txt"
    assert safe_join(tmp_path, "") == tmp_path.resolve() / "file"
    assert safe_join(tmp_path, "..", fallback="dl.bin") == tmp_path.resolve() / "dl.bin"


def test_safe_join_resolves_a_symlinked_directory(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real, target_is_directory=True)
    assert safe_join(link, "a.txt") == real.resolve() / "a.txt"


@pytest.mark.skipif(os.name == "nt", reason="symlinks need privileges on Windows")
def test_safe_join_refuses_a_planted_symlink(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target_dir = tmp_path / "downloads"
    target_dir.mkdir()
    (target_dir / "a.txt").symlink_to(outside / "stolen.txt")
    with pytest.raises(InvalidArgumentError):
        safe_join(target_dir, "a.txt")


# --------------------------------------------------------------------------- properties

_TRICKY = st.sampled_from(
    [
        "/", "\\", "..", ".", "\x00", "\uff0f", "\uff3c", "\u2215", "\u202e", "\u200b", "\ufeff",
        "\u2024", "\uff0e", "CON", "nul", " ", "\t", "\n", "~", ":", "C:", "\u0301", "\u00e9",
    ]
)  # fmt: skip
names = st.one_of(
    st.text(),
    st.lists(st.one_of(_TRICKY, st.text(max_size=3)), max_size=12).map("".join),
)


def _assert_safe(out: str) -> None:
    assert out
    assert "/" not in out
    assert "\\" not in out
    assert "\x00" not in out
    assert out not in (".", "..")
    assert not out.startswith((".", " "))
    assert not out.endswith((".", " "))
    assert len(out.encode("utf-8")) <= 255
    assert out.isascii()
    assert all(unicodedata.category(ch) not in ("Cc", "Cf") for ch in out)
    assert out.split(".", 1)[0].rstrip(" ").upper() not in {"CON", "PRN", "AUX", "NUL"}


@given(names)
@example("../" * 100 + "x")
@example("\uff0e\uff0e\uff0f\uff0e\uff0e\uff0fetc")
@example("\u202e" * 3)
@example("a" * 1000)
def test_sanitize_is_always_safe(name: str) -> None:
    _assert_safe(sanitize_filename(name, fallback="fallback.bin"))


@given(names)
def test_sanitize_is_idempotent(name: str) -> None:
    once = sanitize_filename(name, fallback="fallback.bin")
    assert sanitize_filename(once, fallback="other") == once


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(names)
@example("../../../../etc/passwd")
@example("/etc/passwd")
@example("\x00")
@example("..\uff0f..")
def test_safe_join_stays_inside(tmp_path: Path, name: str) -> None:
    path = safe_join(tmp_path, name)
    assert path.parent == tmp_path.resolve()
    _assert_safe(path.name)
