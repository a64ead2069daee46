"""File names: the spec's upload rules, and safe names for downloaded attachments.

Uploads (``CaseAddAttachment``): the spec allows at most 15 MB, names of at most 255 characters
that start with ``[A-Za-z0-9_-]`` and contain only ``[A-Za-z0-9-_.\\s]``, with one of 13
extensions. We accept only the plain space for ``\\s``: a tab or newline in a file name is
almost certainly a mistake, and FalconPy documents no whitespace at all.

Downloads: the attachment name comes from the server (``Content-Disposition`` or metadata) and
must never choose where a file lands, so :func:`sanitize_filename` reduces it to one safe path
component and :func:`safe_join` checks the joined path stays in the target directory.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from urllib.parse import unquote

from ._exceptions import InvalidArgumentError

__all__ = [
    "UPLOAD_CONTENT_TYPES",
    "UPLOAD_MAX_BYTES",
    "UPLOAD_MAX_NAME_LENGTH",
    "check_upload_size",
    "guess_upload_content_type",
    "parse_content_disposition_filename",
    "safe_join",
    "sanitize_filename",
    "validate_upload_filename",
]

#: The spec's upload limit: 15 MB.
UPLOAD_MAX_BYTES = 15 * 1024 * 1024

#: The spec's limit on an upload's name, in characters.
UPLOAD_MAX_NAME_LENGTH = 255

#: The upload extensions the spec accepts, with their media types.
UPLOAD_CONTENT_TYPES: dict[str, str] = {
    "png": "image/png",
    "bmp": "image/bmp",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "gif": "image/gif",
    "pdf": "application/pdf",
    "doc": "application/msword",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "xls": "application/vnd.ms-excel",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "txt": "text/plain",
    "csv": "text/csv",
}

_DEFAULT_CONTENT_TYPE = "application/octet-stream"
_UPLOAD_FIRST = re.compile(r"[A-Za-z0-9_-]")
_UPLOAD_BAD_CHAR = re.compile(r"[^A-Za-z0-9_. -]")
_SAFE_CHAR = re.compile(r"[^A-Za-z0-9._ -]")
_MAX_NAME_BYTES = 255
_MAX_KEPT_EXTENSION = 16
_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL"}
    | {f"COM{i}" for i in range(10)}
    | {f"LPT{i}" for i in range(10)}
)


def _extension(name: str) -> str:
    stem, dot, ext = name.rpartition(".")
    return ext.lower() if dot and stem else ""


def validate_upload_filename(name: str) -> None:
    """Raise :class:`InvalidArgumentError` (``"filename"``) unless ``name`` meets the spec's rules.

    Rules: not empty; at most 255 characters; first character in ``[A-Za-z0-9_-]``; only
    ``[A-Za-z0-9-_.]`` and the plain space; extension (any case) one of png, bmp, jpg, jpeg,
    gif, pdf, doc, docx, xls, xlsx, pptx, txt, csv.

    Example::

        validate_upload_filename("report 2024.pdf")   # fine
        validate_upload_filename(".hidden.txt")       # raises: must start with ...
    """
    if not isinstance(name, str):
        raise InvalidArgumentError("filename", f"expected a string, got {type(name).__name__}")
    if not name:
        raise InvalidArgumentError("filename", "the upload's file name must not be empty")
    if len(name) > UPLOAD_MAX_NAME_LENGTH:
        raise InvalidArgumentError(
            "filename",
            f"the file name is {len(name)} characters long; the limit is "
            f"{UPLOAD_MAX_NAME_LENGTH}",
        )
    if not _UPLOAD_FIRST.fullmatch(name[0]):
        raise InvalidArgumentError(
            "filename",
            f"{name!r} must start with a letter, digit, '_' or '-' (got {name[0]!r})",
        )
    bad = sorted(set(_UPLOAD_BAD_CHAR.findall(name)))
    if bad:
        shown = ", ".join(repr(ch) for ch in bad)
        raise InvalidArgumentError(
            "filename",
            f"{name!r} may contain only ASCII letters, digits, '-', '_', '.' and spaces "
            f"(found {shown})",
        )
    ext = _extension(name)
    if ext not in UPLOAD_CONTENT_TYPES:
        allowed = ", ".join(UPLOAD_CONTENT_TYPES)
        found = f"'.{ext}'" if ext else "no extension"
        raise InvalidArgumentError(
            "filename", f"{name!r} has {found}; the accepted file types are {allowed}"
        )


def check_upload_size(size: int, limit: int = UPLOAD_MAX_BYTES) -> None:
    """Raise :class:`InvalidArgumentError` (``"file"``) if ``size`` bytes exceeds ``limit``.

    Example::

        check_upload_size(1024)                 # fine
        check_upload_size(16 * 1024 * 1024)     # raises: the limit is 15 MB
    """
    if size < 0:
        raise InvalidArgumentError("file", f"invalid file size {size}")
    if size > limit:
        raise InvalidArgumentError(
            "file",
            f"the file is {size} bytes; the upload limit is {limit} bytes "
            f"({limit / (1024 * 1024):g} MB)",
        )


def guess_upload_content_type(name: str) -> str:
    """The media type for an upload's name, by extension; ``application/octet-stream`` if unknown.

    Example::

        guess_upload_content_type("Scan.JPG")   # "image/jpeg"
    """
    return UPLOAD_CONTENT_TYPES.get(_extension(name), _DEFAULT_CONTENT_TYPE)


def _truncate(name: str) -> str:
    """At most 255 UTF-8 bytes, keeping a short extension."""
    if len(name.encode("utf-8")) <= _MAX_NAME_BYTES:
        return name
    stem, dot, ext = name.rpartition(".")
    suffix = dot + ext if dot and stem and len(ext) <= _MAX_KEPT_EXTENSION else ""
    base = name[: len(name) - len(suffix)] if suffix else name
    budget = _MAX_NAME_BYTES - len(suffix.encode("utf-8"))
    cut = base.encode("utf-8")[:budget].decode("utf-8", errors="ignore")
    return cut + suffix


def _is_reserved(name: str) -> bool:
    stem = name.split(".", 1)[0].rstrip(" ")
    return stem.upper() in _WINDOWS_RESERVED


def _clean(name: str) -> str:
    name = unicodedata.normalize("NFKC", name)
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch) not in ("Cc", "Cf", "Cs"))
    name = _SAFE_CHAR.sub("_", name)
    name = name.strip(" .")
    name = _truncate(name).rstrip(" .")
    if name and _is_reserved(name):
        name = _truncate("_" + name).rstrip(" .")
    return name


def sanitize_filename(name: str | None, *, fallback: str) -> str:
    """Make a server-supplied attachment name a safe, single path component.

    Keeps only the last component after any ``/`` or ``\\``, NFKC-normalises (so a fullwidth
    solidus counts as a slash), drops control, surrogate and format characters (NUL, bidi
    overrides, zero-width characters), replaces anything but ``[A-Za-z0-9._ -]`` with ``_``,
    strips leading and trailing dots and spaces (no hidden files, no ``..``; Windows drops
    trailing ones anyway), cuts to 255 UTF-8 bytes keeping the extension, and prefixes ``_`` to
    Windows device names (``CON``, ``NUL.txt``, ``COM1``...). Returns ``fallback`` (cleaned the
    same way; ``"file"`` if that is empty too) when nothing is left.

    Example::

        sanitize_filename("../../etc/passwd", fallback="file")     # "passwd"
        sanitize_filename("\u202egnp.exe", fallback="file")        # "gnp.exe"
        sanitize_filename(None, fallback="attachment-1.pdf")       # "attachment-1.pdf"
    """
    cleaned = _clean(name) if isinstance(name, str) else ""
    if cleaned:
        return cleaned
    return _clean(fallback) or "file"


_PARAM = re.compile(
    r"""
    ;\s*
    (?P<key>[^\s=;]+)\s*
    (?:=\s*
        (?:
            "(?P<quoted>(?:[^"\\]|\\.)*)"
          | (?P<token>[^;]*)
        )
    )?
    """,
    re.VERBOSE | re.DOTALL,
)


def _decode_ext_value(value: str) -> str | None:
    """An RFC 5987 ``charset'lang'pct-encoded`` value, decoded; None if unusable."""
    parts = value.split("'", 2)
    if len(parts) != 3:
        return None
    charset = parts[0].strip().lower()
    if charset not in ("utf-8", "iso-8859-1", "us-ascii"):
        return None
    encoding = "latin-1" if charset == "iso-8859-1" else charset
    try:
        return unquote(parts[2], encoding=encoding, errors="strict")
    except (UnicodeDecodeError, LookupError):
        return None


def parse_content_disposition_filename(header: str | None) -> str | None:
    """The file name in a ``Content-Disposition`` header, not yet sanitised; None if absent.

    Understands ``filename="x"`` (with backslash escapes), ``filename=x`` and RFC 5987
    ``filename*=UTF-8''x%20y`` (preferred when both are present, as RFC 6266 says).

    Example::

        parse_content_disposition_filename("attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf")
        # "résumé.pdf"
    """
    if not header or not isinstance(header, str):
        return None
    plain: str | None = None
    extended: str | None = None
    for match in _PARAM.finditer("; " + header):
        key = match.group("key").lower()
        quoted = match.group("quoted")
        if quoted is not None:
            value: str | None = re.sub(r"\\(.)", r"\1", quoted, flags=re.DOTALL)
        else:
            token = match.group("token")
            value = token.strip() if token is not None else None
        if value is None:
            continue
        if key == "filename*" and extended is None:
            extended = _decode_ext_value(value)
        elif key == "filename" and plain is None:
            plain = value
    result = extended if extended else plain
    return result or None


def safe_join(directory: Path, name: str, *, fallback: str = "file") -> Path:
    """``directory / sanitize_filename(name)``, checked to land directly inside ``directory``.

    The directory is resolved (symlinks followed); the result is rejected with
    :class:`InvalidArgumentError` if the resolved target's parent is not that directory (for
    instance an existing symlink with that name pointing elsewhere).

    Example::

        safe_join(Path("downloads"), "../../.bashrc")   # Path("/abs/downloads/bashrc")
    """
    base = Path(directory).resolve()
    target = base / sanitize_filename(name, fallback=fallback)
    if target.resolve().parent != base:
        raise InvalidArgumentError(
            "filename", f"{name!r} would be saved outside {str(base)!r}; refusing"
        )
    return target
