"""A small multipart/form-data parser over one buffer (binary-safe, linear time)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import unquote

__all__ = ["Form", "MultipartError", "parse_multipart"]


class MultipartError(ValueError):
    """The body is not valid multipart/form-data."""


@dataclass
class Form:
    """Parsed form: text ``fields`` and ``files`` (part name -> (file name, bytes))."""

    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)


_PARAM = re.compile(r';\s*([A-Za-z0-9_*.-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def _params(value: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for match in _PARAM.finditer(value):
        key, raw = match.group(1).lower(), match.group(2).strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        out[key] = raw
    if "filename*" in out:
        encoded = out["filename*"]
        _, _, rest = encoded.partition("''")
        out["filename"] = unquote(rest or encoded)
    return out


def boundary_of(content_type: str) -> str:
    """The ``boundary`` parameter of a multipart content type."""
    boundary = _params(content_type).get("boundary", "")
    if not boundary:
        raise MultipartError("the Content-Type has no boundary")
    return boundary


def parse_multipart(body: bytes | bytearray, content_type: str) -> Form:
    """Split ``body`` into fields and files.

    Example::

        form = parse_multipart(raw, "multipart/form-data; boundary=xyz")
        form.fields["case_id"], form.files["file"]
    """
    delimiter = b"--" + boundary_of(content_type).encode("latin-1")
    view = memoryview(body)
    form = Form()
    pos = body.find(delimiter)
    if pos < 0:
        raise MultipartError("no boundary found in the body")
    pos += len(delimiter)
    separator = b"\r\n" + delimiter
    while True:
        if body[pos : pos + 2] == b"--":
            return form
        if body[pos : pos + 2] != b"\r\n":
            raise MultipartError("malformed boundary line")
        pos += 2
        head_end = body.find(b"\r\n\r\n", pos)
        if head_end < 0:
            raise MultipartError("unterminated part headers")
        headers: dict[str, str] = {}
        for line in bytes(view[pos:head_end]).decode("utf-8", "replace").split("\r\n"):
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep:
                raise MultipartError(f"malformed part header {line!r}")
            headers[name.strip().lower()] = value.strip()
        start = head_end + 4
        end = body.find(separator, start)
        if end < 0:
            raise MultipartError("missing closing boundary")
        disposition = headers.get("content-disposition", "")
        params = _params(disposition)
        part = params.get("name")
        if not disposition.lower().startswith("form-data") or part is None:
            raise MultipartError("each part needs Content-Disposition: form-data; name=...")
        if "filename" in params:
            form.files[part] = (params["filename"], bytes(view[start:end]))
        else:
            form.fields[part] = bytes(view[start:end]).decode("utf-8", "replace")
        pos = end + len(separator)
