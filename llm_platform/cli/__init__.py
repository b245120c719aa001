"""`llmp`: the operator's command line. Its surface is a contract: scripts and operators depend on it.

`server.py`: serve, worker, migrate. `admin.py`: the `admin` and `audit` groups. `support.py`: what they
share."""

from __future__ import annotations

import typer

from llm_platform.cli.admin import admin_app, audit_app
from llm_platform.cli.server import migrate, serve, worker
from llm_platform.core.settings import settings_help

app = typer.Typer(
    help="llm-platform: a multi-tenant API over local models.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals hold passwords and keys
)
app.command(epilog="Settings (environment variables):\n\n" + settings_help().replace("\n", "\n\n"))(serve)
app.command()(worker)
app.command()(migrate)
app.add_typer(admin_app, name="admin")
app.add_typer(audit_app, name="audit")


def main() -> None:
    app()
