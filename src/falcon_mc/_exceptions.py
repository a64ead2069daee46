"""The exceptions falcon-mc raises.

The tree::

    FalconError
    ├── InvalidArgumentError (also a ValueError)   bad input, raised before anything is sent
    ├── OAuthError                                  token endpoint refused the credentials
    └── APIError
        ├── APIConnectionError                      no usable reply (connect error, reset, ...)
        │   └── APITimeoutError                     a phase timed out
        ├── APIResponseValidationError              the reply was not the JSON the spec promises
        └── APIStatusError                          the server answered with an error status
            ├── BadRequestError            400
            ├── AuthenticationError        401
            ├── PermissionDeniedError      403
            ├── NotFoundError              404
            ├── ConflictError              409
            ├── UnprocessableEntityError   422
            ├── RateLimitError             429  (``retry_after`` seconds, if known)
            └── InternalServerError        5xx

Every :class:`APIError` carries ``trace_id`` (the ``X-CS-TRACEID`` header or ``meta.trace_id``)
to quote to CrowdStrike support. Errors raised by write operations carry ``may_have_been_applied``:
``False`` when the request provably never reached the server (so it is safe to send again),
``True`` when the server may have acted on it (check before you retry a create).

Secrets (client secret, tokens) never appear in any message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .models import ErrorDetail

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseValidationError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "FalconError",
    "InternalServerError",
    "InvalidArgumentError",
    "NotFoundError",
    "OAuthError",
    "PermissionDeniedError",
    "RateLimitError",
    "UnprocessableEntityError",
]


class FalconError(Exception):
    """Base class of every exception raised by falcon-mc.

    Example::

        try:
            await mc.get_cases(["c-1"])
        except falcon_mc.FalconError as exc:
            log.warning("message center: %s", exc)
    """

    def __reduce__(self) -> tuple[object, ...]:
        # copy and pickle rebuild the exception from its attributes, not by calling __init__
        # (whose keyword-only arguments ``BaseException.__reduce__`` would not pass)
        return _rebuild, (type(self), self.args, self.__dict__)


def _rebuild(
    cls: type[FalconError], args: tuple[object, ...], state: dict[str, object]
) -> FalconError:
    exc = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(state)
    return exc


class InvalidArgumentError(FalconError, ValueError):
    """An argument was rejected locally; nothing was sent.

    ``argument`` names the offending parameter, e.g. ``"limit"``.

    Example::

        with pytest.raises(ValueError):
            mc.query_cases(limit=0)
    """

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(f"{argument}: {message}")
        self.argument = argument


class OAuthError(FalconError):
    """The OAuth2 token endpoint refused the credentials (or could not be used).

    ``status_code`` is the HTTP status of the token reply, when there was one.

    Example::

        except falcon_mc.OAuthError as exc:
            print("check FALCON_CLIENT_ID / FALCON_CLIENT_SECRET:", exc.status_code)
    """

    def __init__(
        self, message: str, *, status_code: int | None = None, trace_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.trace_id = trace_id


class APIError(FalconError):
    """An API call failed. ``trace_id`` identifies the request for CrowdStrike support.

    ``may_have_been_applied`` tells, for a write, whether the server may have acted on it.

    Example::

        except falcon_mc.APIError as exc:
            print(exc.trace_id, exc.may_have_been_applied)
    """

    def __init__(
        self,
        message: str,
        *,
        trace_id: str | None = None,
        may_have_been_applied: bool = True,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.trace_id = trace_id
        self.may_have_been_applied = may_have_been_applied

    def __str__(self) -> str:
        suffix = f" (trace id {self.trace_id})" if self.trace_id else ""
        return f"{self.message}{suffix}"


class APIConnectionError(APIError):
    """No usable reply: the connection failed, was reset or closed mid-reply.

    Example::

        except falcon_mc.APIConnectionError as exc:
            if not exc.may_have_been_applied:
                ...  # safe to send the write again
    """


class APITimeoutError(APIConnectionError):
    """A connect, write, read or pool timeout expired.

    Example::

        except falcon_mc.APITimeoutError:
            ...
    """


class APIResponseValidationError(APIError):
    """The reply was not the JSON the spec promises (HTML page, truncated body, wrong type).

    Example::

        except falcon_mc.APIResponseValidationError as exc:
            print(exc.status_code, exc.trace_id)
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        trace_id: str | None = None,
        may_have_been_applied: bool = True,
    ) -> None:
        super().__init__(message, trace_id=trace_id, may_have_been_applied=may_have_been_applied)
        self.status_code = status_code


class APIStatusError(APIError):
    """The server answered with an error status; ``errors`` are the envelope's errors.

    Example::

        except falcon_mc.APIStatusError as exc:
            print(exc.status_code, [e.message for e in exc.errors])
    """

    #: Internal: whether the reply's body was an API envelope (a JSON object with ``meta``,
    #: ``errors`` or ``resources``), not a page of a proxy or of another server.
    _api_envelope: bool = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        errors: list[ErrorDetail] | None = None,
        trace_id: str | None = None,
        may_have_been_applied: bool = True,
    ) -> None:
        super().__init__(message, trace_id=trace_id, may_have_been_applied=may_have_been_applied)
        self.status_code = status_code
        self.errors: list[ErrorDetail] = list(errors or [])


class BadRequestError(APIStatusError):
    """400: the server rejected the request (bad FQL, unknown field, ...)."""


class AuthenticationError(APIStatusError):
    """401: the token was refused even after one refresh."""


class PermissionDeniedError(APIStatusError):
    """403: the API client lacks the ``message-center:read``/``write`` scope."""


class NotFoundError(APIStatusError):
    """404: no such attachment (or route)."""


class ConflictError(APIStatusError):
    """409: the request conflicts with the current state."""


class UnprocessableEntityError(APIStatusError):
    """422: the request was well formed but could not be processed."""


class RateLimitError(APIStatusError):
    """429: rate limited; ``retry_after`` is the wait in seconds, when the server gave one.

    Example::

        except falcon_mc.RateLimitError as exc:
            await anyio.sleep(exc.retry_after or 1)
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        errors: list[ErrorDetail] | None = None,
        trace_id: str | None = None,
        may_have_been_applied: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(
            message,
            status_code=status_code,
            errors=errors,
            trace_id=trace_id,
            may_have_been_applied=may_have_been_applied,
        )
        self.retry_after = retry_after


class InternalServerError(APIStatusError):
    """5xx: the server failed."""


_STATUS_MAP: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error_class(status_code: int) -> type[APIStatusError]:
    """The exception class for an HTTP error status."""
    if status_code >= 500:
        return InternalServerError
    return _STATUS_MAP.get(status_code, APIStatusError)
