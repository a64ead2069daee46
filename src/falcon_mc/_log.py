"""The ``falcon_mc`` logger, with a filter that redacts credentials from every record."""

from __future__ import annotations

import base64
import binascii
import logging
import re

__all__ = ["RedactingFilter", "logger"]

# a credential named by its key: ``key: value``, ``key=value``, ``"key": "value"`` or a
# ``('key', 'value')`` pair; a quoted value (``b'...'`` too) is redacted whole, up to its quote
_KEYED = re.compile(
    r"""(?ix)
    (?P<key>(?:authorization|client_secret|access_token|token)(?:["']?\s*[:=]|["'],)\s*)
    (?:
        (?P<open>(?-i:b)?(?P<quote>["']))(?:\\.|(?!(?P=quote))[^\\])*(?P=quote)
      | (?:(?-i:b)?["'])?(?:(?:bearer|basic)\s+)?[^\s&,"'})\]]+
    )
    """
)
_BEARER = re.compile(r"(?i)(bearer\s+)[^\s,\"'}]+")
_BASIC = re.compile(r"(?i)(\bbasic\s+)([A-Za-z0-9+/]+={0,2})")


def _keyed(match: re.Match[str]) -> str:
    if match["open"] is not None:
        return f"{match['key']}{match['open']}<redacted>{match['quote']}"
    return f"{match['key']}<redacted>"


def _basic(match: re.Match[str]) -> str:
    """``Basic <base64 of id:secret>`` redacted; ``basic`` followed by any other word kept."""
    try:
        credentials = base64.b64decode(match[2], validate=True)
    except (binascii.Error, ValueError):
        return match[0]
    return f"{match[1]}<redacted>" if b":" in credentials else match[0]


def redact(text: str) -> str:
    """Replace credentials in ``text`` with ``<redacted>``."""
    text = _KEYED.sub(_keyed, text)
    text = _BEARER.sub(lambda m: f"{m[1]}<redacted>", text)
    return _BASIC.sub(_basic, text)


class RedactingFilter(logging.Filter):
    """Rewrites a record's message so that no Authorization header or secret survives."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


logger = logging.getLogger("falcon_mc")
logger.addFilter(RedactingFilter())
