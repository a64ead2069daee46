"""The ``falcon_mc`` logger, with a filter that redacts credentials from every record."""

from __future__ import annotations

import logging
import re

__all__ = ["RedactingFilter", "logger"]

_SECRET_PATTERNS = (
    re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?)(bearer|basic)?\s*[^\s,\"'}]+"),
    re.compile(r"(?i)(bearer\s+)[^\s,\"'}]+"),
    re.compile(r"(?i)((?:client_secret|access_token|token)[\"']?\s*[:=]\s*[\"']?)[^\s&,\"'}]+"),
)


def redact(text: str) -> str:
    """Replace credentials in ``text`` with ``<redacted>``."""
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: f"{m.group(1)}<redacted>", text)
    return text


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
