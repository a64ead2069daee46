"""CrowdStrike clouds and base-URL checks."""

from __future__ import annotations

import ipaddress
from enum import StrEnum

import httpx

from ._exceptions import InvalidArgumentError

__all__ = ["Cloud", "cloud_named", "resolve_base_url"]


class Cloud(StrEnum):
    """The CrowdStrike cloud a tenant lives in.

    ``AUTO`` asks the us-1 token endpoint and follows its ``X-Cs-Region`` header.

    Example::

        AsyncMessageCenter(base_url=Cloud.EU1)
        AsyncMessageCenter(base_url="us-2")          # the region name works too ("us2", "US2")
    """

    US1 = "us-1"
    US2 = "us-2"
    EU1 = "eu-1"
    USGOV1 = "us-gov-1"
    AUTO = "auto"

    @property
    def base_url(self) -> str:
        """The API base URL of this cloud (``AUTO`` starts at us-1)."""
        return _CLOUD_URLS[self]


_CLOUD_URLS: dict[Cloud, str] = {
    Cloud.US1: "https://api.crowdstrike.com",
    Cloud.US2: "https://api.us-2.crowdstrike.com",
    Cloud.EU1: "https://api.eu-1.crowdstrike.com",
    Cloud.USGOV1: "https://api.laggar.gcw.crowdstrike.com",
    Cloud.AUTO: "https://api.crowdstrike.com",
}
_CLOUD_NAMES: dict[str, Cloud] = {cloud.value.replace("-", ""): cloud for cloud in Cloud}


def cloud_named(name: str) -> Cloud | None:
    """The cloud called ``name``, in any case, with or without dashes (``"us-2"``, ``"US2"``,
    FalconPy's ``"usgov1"``); ``None`` if no cloud is called that."""
    return _CLOUD_NAMES.get(name.strip().lower().replace("-", ""))


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_base_url(base_url: str | Cloud) -> tuple[str, bool]:
    """Turn a ``Cloud`` or URL into ``(url, autodiscover)``; refuse plain http off loopback."""
    if isinstance(base_url, Cloud):
        return base_url.base_url, base_url is Cloud.AUTO
    if not isinstance(base_url, str) or not base_url:
        raise InvalidArgumentError("base_url", "expected a Cloud or an https:// URL")
    if (cloud := cloud_named(base_url)) is not None:
        return cloud.base_url, cloud is Cloud.AUTO
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise InvalidArgumentError("base_url", f"not a URL: {base_url!r}") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise InvalidArgumentError(
            "base_url",
            f"{base_url!r} is neither a cloud ({', '.join(c.value for c in Cloud)}) "
            "nor an http(s) URL",
        )
    if url.userinfo or url.query or url.fragment:
        # credentials would replace the bearer token on every request (and show in repr); a
        # query or fragment would end up inside every route
        raise InvalidArgumentError(
            "base_url", "expected scheme://host[:port][/path], without user:password@, "
            "?query or #fragment"
        )
    if url.scheme == "http" and not _is_loopback(url.host):
        raise InvalidArgumentError(
            "base_url", "plain http:// is only allowed for loopback hosts; use https://"
        )
    return str(url).rstrip("/"), False
