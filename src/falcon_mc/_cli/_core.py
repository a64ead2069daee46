"""The command line's plumbing: global options, targets, credentials, errors and exit codes.

Every command body is an ``async`` function of a :class:`Session`; :func:`execute` resolves the
target (a tenant, or a fresh embedded emulator with ``--emulator``), opens the client, runs the
body with ``anyio.run`` and turns the library's exceptions into a message and an exit code.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import logging
import os
import sys
import typing
from collections.abc import Awaitable, Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar, cast

import anyio
import typer
from rich.console import Console
from rich.markup import escape

from .._client import AsyncMessageCenter
from .._cloud import Cloud, cloud_named
from .._exceptions import (
    APIError,
    APIStatusError,
    AuthenticationError,
    BadRequestError,
    FalconError,
    InvalidArgumentError,
    NotFoundError,
    OAuthError,
    PermissionDeniedError,
    RateLimitError,
    UnprocessableEntityError,
)
from .._log import RedactingFilter
from .._tasks import first_error
from ..emulator import Emulator

__all__ = [
    "EMULATOR_CASES",
    "EMULATOR_CLIENT_ID",
    "EMULATOR_SECRET",
    "EMULATOR_SEED",
    "ExitCode",
    "GlobalOptions",
    "MissingCredentialsError",
    "Output",
    "Session",
    "console",
    "describe_error",
    "execute",
    "global_options",
    "guard",
    "parse_cloud",
    "state",
    "verbose_logging",
]

F = TypeVar("F", bound=Callable[..., Any])

GLOBAL_PANEL = "Global options"

#: What ``--emulator`` (and ``falcon-mc emulator``) seed: reproducible ids from one run to the next.
EMULATOR_CASES = 500
EMULATOR_SEED = 7
EMULATOR_CLIENT_ID = "falcon-mc-demo"
EMULATOR_SECRET = "falcon-mc-demo-secret"  # noqa: S105 - the embedded emulator accepts any pair
EMULATOR_URL = "https://emulator.falcon-mc.invalid"


class ExitCode:
    """The exit codes of ``falcon-mc`` (documented in ``docs/cli.md``)."""

    OK = 0
    ERROR = 1
    USAGE = 2
    AUTH = 3
    FORBIDDEN = 4
    NOT_FOUND = 5
    RATE_LIMITED = 6
    BAD_REQUEST = 7
    INTERRUPTED = 130
    BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a pipeline cut short


class MissingCredentialsError(Exception):
    """No client id or secret in the options, the environment or a prompt."""


# -- global options ---------------------------------------------------------------------------------


@dataclass
class GlobalOptions:
    """The options every command accepts, merged from the root and the command itself."""

    cloud: Cloud | None = None
    base_url: str | None = None
    member_cid: str | None = None
    client_id: str | None = None
    json: bool = False
    verbose: bool = False
    emulator: bool = False

    def merge(self, values: dict[str, Any]) -> None:
        """Let values given on a subcommand override those given before it."""
        for name, value in values.items():
            if value is not None and value is not False:
                setattr(self, name, value)


def state(ctx: typer.Context) -> GlobalOptions:
    """The :class:`GlobalOptions` of this invocation (created on first use)."""
    obj = ctx.obj
    if not isinstance(obj, GlobalOptions):
        obj = GlobalOptions()
        ctx.obj = obj
    return obj


def parse_cloud(value: str | Cloud) -> Cloud:
    """Read ``--cloud`` as the library reads a cloud name: any case, with or without dashes
    (``us-2``, ``US2``, FalconPy's ``usgov1``)."""
    if isinstance(value, Cloud):
        return value
    if (cloud := cloud_named(value)) is None:
        raise typer.BadParameter(
            f"{value!r} is not a cloud; use one of {', '.join(c.value for c in Cloud)}"
        )
    return cloud


def _opt(annotation: Any, *names: str, help: str, **extra: Any) -> Any:
    return Annotated[
        annotation,
        typer.Option(*names, help=help, rich_help_panel=GLOBAL_PANEL, show_default=False,
                     **extra),
    ]


_KW = inspect.Parameter.KEYWORD_ONLY

#: The global options, as extra keyword parameters appended to each command's signature.
_GLOBAL_PARAMS: dict[str, inspect.Parameter] = {
    "cloud": inspect.Parameter(
        "_g_cloud", _KW, default=None, annotation=_opt(
            Cloud | None, "--cloud", parser=parse_cloud,
            help="CrowdStrike cloud: us-1, us-2, eu-1, us-gov-1 or auto.",
        ),
    ),
    "base_url": inspect.Parameter(
        "_g_base_url", _KW, default=None, annotation=_opt(
            str | None, "--base-url", help="API base URL (overrides --cloud)."
        ),
    ),
    "member_cid": inspect.Parameter(
        "_g_member_cid", _KW, default=None, annotation=_opt(
            str | None, "--member-cid", help="Child CID (Flight Control)."
        ),
    ),
    "client_id": inspect.Parameter(
        "_g_client_id", _KW, default=None, annotation=_opt(
            str | None, "--client-id", help="API client id (default: $FALCON_CLIENT_ID)."
        ),
    ),
    "json": inspect.Parameter(
        "_g_json", _KW, default=False, annotation=_opt(
            bool, "--json", help="Machine-readable output: JSON (lines) on stdout."
        ),
    ),
    "verbose": inspect.Parameter(
        "_g_verbose", _KW, default=False, annotation=_opt(
            bool, "--verbose", "-v", help="Debug logging of the falcon_mc logger on stderr."
        ),
    ),
    "emulator": inspect.Parameter(
        "_g_emulator", _KW, default=False, annotation=_opt(
            bool, "--emulator",
            help="Run against a fresh seeded embedded emulator instead of a tenant.",
        ),
    ),
}


def global_options(*, skip: Collection[str] = ()) -> Callable[[F], F]:
    """Give a command the global options too (``falcon-mc cases list --json`` as well as
    ``falcon-mc --json cases list``). The command must take ``ctx: typer.Context``.

    ``skip`` names global options the command does not take (because it uses the name itself).
    """

    def decorate(func: F) -> F:
        signature = inspect.signature(func, eval_str=True)
        hints = typing.get_type_hints(func, include_extras=True)
        extra = {key: param for key, param in _GLOBAL_PARAMS.items() if key not in skip}

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            values = {key: kwargs.pop(param.name, None) for key, param in extra.items()}
            ctx = kwargs.get("ctx")  # typer passes its click context (not always a typer.Context)
            if ctx is not None and hasattr(ctx, "obj"):
                state(ctx).merge(values)
            return func(*args, **kwargs)

        params = [*signature.parameters.values(), *extra.values()]
        wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {**hints, **{p.name: p.annotation for p in extra.values()}}
        return cast(F, wrapper)

    return decorate


# -- output -----------------------------------------------------------------------------------------


#: Width of tables written to a pipe or file (a terminal's own width is used otherwise).
PIPE_WIDTH = 160


class _Console(Console):
    """rich's console, but a reader gone away (``| head``) is a ``BrokenPipeError`` for
    :func:`guard` to end quietly with, not rich's ``SystemExit(1)``."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


def console(*, stderr: bool) -> Console:
    """A rich console on stdout or stderr; wide when not a terminal (unless $COLUMNS is set)."""
    stream = sys.stderr if stderr else sys.stdout
    wide = not stream.isatty() and not os.environ.get("COLUMNS")
    return _Console(stderr=stderr, highlight=False, width=PIPE_WIDTH if wide else None)


class Output:
    """Where a command writes: rich on stdout, notes and errors on stderr, JSON lines raw."""

    def __init__(self, *, json_mode: bool) -> None:
        self.json_mode = json_mode
        self.out = console(stderr=False)
        self.err = console(stderr=True)

    def json(self, obj: object) -> None:
        """One JSON document on its own line on stdout."""
        sys.stdout.write(json.dumps(obj, ensure_ascii=False, default=str) + "\n")
        sys.stdout.flush()

    def note(self, text: str) -> None:
        """A message for the human (stderr, so that stdout stays clean)."""
        self.err.print(text)

    def error(self, headline: str, details: Collection[str] = ()) -> None:
        """An error message on stderr (plain text: never interpreted as markup)."""
        self.err.print(f"[bold red]error:[/] {escape(headline)}")
        for line in details:
            self.err.print(f"  {escape(line)}")


@dataclass
class Session:
    """What a command body gets: the open client, the output, the options, the emulator."""

    mc: AsyncMessageCenter
    out: Output
    options: GlobalOptions
    emulator: Emulator | None = None
    notes: list[str] = field(default_factory=list)


@contextmanager
def verbose_logging(enabled: bool) -> Iterator[None]:
    """With ``--verbose``: DEBUG records of the ``falcon_mc`` logger on stderr, redacted."""
    if not enabled:
        yield
        return
    logger = logging.getLogger("falcon_mc")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-5s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


# -- targets and credentials ------------------------------------------------------------------------


@dataclass
class Target:
    """How to build the client for this invocation."""

    kwargs: dict[str, Any]
    emulator: Emulator | None = None


def resolve_target(options: GlobalOptions, out: Output) -> Target:
    """A fresh seeded emulator (``--emulator``) or a tenant, with credentials checked."""
    if options.emulator:
        emu = Emulator.seeded(n_cases=EMULATOR_CASES, seed=EMULATOR_SEED)
        if options.base_url or options.cloud:
            out.note("[yellow]note:[/] --emulator given: --cloud/--base-url are ignored")
        return Target(
            kwargs={
                "client_id": EMULATOR_CLIENT_ID,
                "client_secret": EMULATOR_SECRET,
                "base_url": EMULATOR_URL,
                "transport": emu.transport(),
                "retry_base_delay": 0.0,
            },
            emulator=emu,
        )
    client_id = options.client_id or os.environ.get("FALCON_CLIENT_ID")
    secret = os.environ.get("FALCON_CLIENT_SECRET")
    if client_id and not secret and sys.stdin.isatty():
        try:
            secret = typer.prompt("Client secret (FALCON_CLIENT_SECRET)", hide_input=True,
                                  err=True)
        except typer.Abort:  # Ctrl-C (or end of input) at the prompt
            raise KeyboardInterrupt from None
    if not client_id or not secret:
        missing = " and ".join(
            name
            for name, value in (("FALCON_CLIENT_ID", client_id), ("FALCON_CLIENT_SECRET", secret))
            if not value
        )
        raise MissingCredentialsError(f"no API credentials: {missing} not set")
    base_url: str | Cloud = options.base_url or options.cloud or Cloud.US1
    return Target(
        kwargs={
            "client_id": client_id,
            "client_secret": secret,
            "base_url": base_url,
            "member_cid": options.member_cid,
        }
    )


# -- errors -----------------------------------------------------------------------------------------

#: The library's argument names, as the command line spells them.
_ARGUMENT_NAMES = {
    "filter": "--filter",
    "sort": "--sort",
    "limit": "--limit",
    "offset": "--offset",
    "user_uuid": "--user-uuid",
    "content": "--content",
    "title": "--title",
    "type": "--type",
    "queries": "--json / --field",
    "base_url": "--base-url",
    "client_id": "--client-id / FALCON_CLIENT_ID",
    "client_secret": "FALCON_CLIENT_SECRET",
    "ids": "ID",
    "id": "ID",
    "case_id": "CASE_ID",
    "path": "FILE",
    "file": "FILE",
    "filename": "FILE / --name",
}


def _status_details(exc: APIStatusError) -> list[str]:
    lines = []
    for detail in exc.errors:
        text = detail.message or ""
        if detail.code is not None:
            text = f"[{detail.code}] {text}"
        if detail.id:
            text += f" (id {detail.id})"
        if detail.message and detail.message in exc.message:
            continue
        if text:
            lines.append(text)
    return lines


def describe_error(raised: BaseException) -> tuple[int, str, list[str]]:
    """``(exit code, headline, detail lines)`` for an expected failure; never contains secrets."""
    exc = first_error(raised)
    if isinstance(exc, KeyboardInterrupt):
        return ExitCode.INTERRUPTED, "interrupted", []
    if isinstance(exc, MissingCredentialsError):
        return ExitCode.USAGE, str(exc), [
            "set FALCON_CLIENT_ID and FALCON_CLIENT_SECRET (an API client with the Message "
            "Center scope),",
            "or pass --client-id and type the secret at the prompt;",
            "to try things without a tenant: `falcon-mc demo` or any command with --emulator.",
        ]
    if isinstance(exc, InvalidArgumentError):
        argument = exc.argument
        head = argument.split(".", 1)[0]
        cli_name = _ARGUMENT_NAMES.get(argument) or _ARGUMENT_NAMES.get(head) or argument
        message = str(exc).removeprefix(f"{argument}: ")
        return ExitCode.USAGE, f"invalid {cli_name} ({argument}): {message}", []
    if isinstance(exc, OAuthError) and exc.status_code is not None and (
        exc.status_code == 429 or exc.status_code >= 500
    ):  # the token endpoint was busy or failing: nothing wrong with the credentials
        busy = exc.status_code == 429
        return (ExitCode.RATE_LIMITED if busy else ExitCode.ERROR,
                f"the token endpoint {'is rate limiting' if busy else 'failed'} "
                f"(HTTP {exc.status_code}): {exc}", [])
    if isinstance(exc, OAuthError):
        status = f" (HTTP {exc.status_code})" if exc.status_code else ""
        return ExitCode.AUTH, f"authentication failed{status}: {exc}", [
            "check FALCON_CLIENT_ID / FALCON_CLIENT_SECRET and the cloud (--cloud / --base-url)",
        ]
    if isinstance(exc, AuthenticationError):
        return ExitCode.AUTH, f"the API refused the token (401): {exc}", _status_details(exc)
    if isinstance(exc, PermissionDeniedError):
        return ExitCode.FORBIDDEN, f"permission denied (403): {exc}", [
            *_status_details(exc),
            "the API client needs the Message Center read (and, to write, write) scope",
        ]
    if isinstance(exc, NotFoundError):
        return ExitCode.NOT_FOUND, f"not found (404): {exc}", _status_details(exc)
    if isinstance(exc, RateLimitError):
        wait = f"; retry in {exc.retry_after:.0f} s" if exc.retry_after is not None else ""
        return ExitCode.RATE_LIMITED, f"rate limited (429){wait}: {exc}", _status_details(exc)
    if isinstance(exc, BadRequestError | UnprocessableEntityError):
        return ExitCode.BAD_REQUEST, f"request rejected ({exc.status_code}): {exc}", (
            _status_details(exc)
        )
    if isinstance(exc, APIStatusError):
        return ExitCode.ERROR, f"API error ({exc.status_code}): {exc}", _status_details(exc)
    if isinstance(exc, APIError):
        trace = "" if exc.trace_id else " (no trace id: no reply was received)"
        return ExitCode.ERROR, f"{type(exc).__name__}: {exc}{trace}", []
    if isinstance(exc, FalconError):
        return ExitCode.ERROR, str(exc), []
    if isinstance(exc, OSError):
        return ExitCode.ERROR, f"{exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), []
    raise raised


_EXPECTED = (FalconError, MissingCredentialsError, OSError, KeyboardInterrupt, BaseExceptionGroup)


def execute(ctx: typer.Context, work: Callable[[Session], Awaitable[int | None]]) -> None:
    """Run a command body against the target, with ``anyio.run``; map failures to exit codes."""
    options = state(ctx)
    out = Output(json_mode=options.json)

    async def run(target: Target) -> int | None:
        async with AsyncMessageCenter(**target.kwargs) as mc:
            return await work(Session(mc=mc, out=out, options=options, emulator=target.emulator))

    with verbose_logging(options.verbose), guard(out):
        code = anyio.run(run, resolve_target(options, out))
    if code:
        raise typer.Exit(code)


@contextmanager
def guard(out: Output) -> Iterator[None]:
    """Turn an expected failure into a message on stderr and ``typer.Exit(code)``."""
    try:
        yield
    except _EXPECTED as exc:
        if isinstance(first_error(exc), BrokenPipeError):  # ``falcon-mc ... | head``: stop quietly
            # stdout's reader is gone: point it at /dev/null so the final flush cannot fail too
            with contextlib.suppress(OSError, ValueError):  # no file descriptor (a test runner)
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(ExitCode.BROKEN_PIPE) from None
        exit_code, headline, details = describe_error(exc)
        out.error(headline, details)
        raise typer.Exit(exit_code) from None
