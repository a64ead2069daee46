"""The ``falcon-mc`` command line (also ``python -m falcon_mc``).

Start with ``falcon-mc demo`` (no credentials needed), then try any command against the embedded
emulator with ``--emulator``, or against your tenant with ``FALCON_CLIENT_ID`` /
``FALCON_CLIENT_SECRET`` set. See ``docs/cli.md`` for every command and the exit codes.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ._cli import _commands as commands
from ._cli._core import GLOBAL_PANEL, parse_cloud, state
from ._cli._demo import demo
from ._cloud import Cloud
from ._version import __version__

__all__ = ["app", "main"]

app = typer.Typer(
    name="falcon-mc",
    help="CrowdStrike Falcon Message Center from the shell. Start with: falcon-mc demo",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
cases_app = typer.Typer(help="List, show, create, update and comment on cases.",
                        no_args_is_help=True)
activities_app = typer.Typer(help="Read a case's activities.", no_args_is_help=True)
attachments_app = typer.Typer(help="Upload and download case attachments.", no_args_is_help=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"falcon-mc {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    cloud: Annotated[
        Cloud | None,
        typer.Option(envvar="FALCON_CLOUD", parser=parse_cloud, show_default=False,
                     help="CrowdStrike cloud: us-1 (default), us-2, eu-1, us-gov-1 or auto.",
                     rich_help_panel=GLOBAL_PANEL),
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(envvar="FALCON_BASE_URL", show_default=False,
                     help="API base URL (overrides --cloud), e.g. a served emulator.",
                     rich_help_panel=GLOBAL_PANEL),
    ] = None,
    member_cid: Annotated[
        str | None,
        typer.Option(envvar="FALCON_MEMBER_CID", show_default=False,
                     help="Child CID (Flight Control).", rich_help_panel=GLOBAL_PANEL),
    ] = None,
    client_id: Annotated[
        str | None,
        typer.Option(envvar="FALCON_CLIENT_ID", show_default=False,
                     help="API client id. The secret comes from $FALCON_CLIENT_SECRET "
                     "(or a prompt), never from the command line.",
                     rich_help_panel=GLOBAL_PANEL),
    ] = None,
    json: Annotated[
        bool, typer.Option("--json", help="Machine-readable output: JSON (lines) on stdout.",
                           rich_help_panel=GLOBAL_PANEL)
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Debug logging of the falcon_mc logger on "
                           "stderr (secrets redacted).", rich_help_panel=GLOBAL_PANEL)
    ] = False,
    emulator: Annotated[
        bool, typer.Option("--emulator", help="Run against a fresh seeded embedded emulator "
                           "instead of a tenant.", rich_help_panel=GLOBAL_PANEL)
    ] = False,
    version: Annotated[
        bool | None,
        typer.Option("--version", callback=_version, is_eager=True,
                     help="Print the version and exit."),
    ] = None,
) -> None:
    """CrowdStrike Falcon Message Center from the shell. Start with: falcon-mc demo"""
    state(ctx).merge({
        "cloud": cloud, "base_url": base_url, "member_cid": member_cid, "client_id": client_id,
        "json": json, "verbose": verbose, "emulator": emulator,
    })


app.command("demo")(demo)
cases_app.command("list")(commands.cases_list)
cases_app.command("get")(commands.cases_get)
cases_app.command("create")(commands.cases_create)
cases_app.command("update")(commands.cases_update)
cases_app.command("comment")(commands.cases_comment)
activities_app.command("list")(commands.activities_list)
attachments_app.command("upload")(commands.attachments_upload)
attachments_app.command("download")(commands.attachments_download)
app.add_typer(cases_app, name="cases")
app.add_typer(activities_app, name="activities")
app.add_typer(attachments_app, name="attachments")
app.command("aggregate")(commands.aggregate)
app.command("export")(commands.export)
app.command("emulator")(commands.emulator)


def main() -> None:
    """Run the ``falcon-mc`` command line (the console script's entry point)."""
    app(prog_name="falcon-mc")
