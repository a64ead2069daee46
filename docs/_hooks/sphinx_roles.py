"""mkdocs hook: render the Sphinx roles of the docstrings (``:func:`x```) as plain code.

The package's docstrings are written for Sphinx (``:class:``, ``:meth:``, ``Example::``);
mkdocstrings shows them as Markdown, where the roles would appear literally.
"""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:py:)?(?:func|meth|class|data|mod|attr|exc|obj):<code>~?([^<]*)</code>")
_LITERAL_BLOCK = re.compile(r"::</p>")


def on_page_content(html: str, **kwargs: Any) -> str:
    """Strip role prefixes and the second colon of ``Example::``."""
    html = _ROLE.sub(lambda m: f"<code>{m.group(1)}</code>", html)
    return _LITERAL_BLOCK.sub(":</p>", html)
