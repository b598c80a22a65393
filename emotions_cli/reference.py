"""The `emotions` application as a click command: what the documentation's command reference is generated from
(mkdocs-click reads `click_app`, docs/reference/cli.md). Apart from `emotions_cli.main`, so that no command pays
for building it when it starts."""

from __future__ import annotations

import typer

from emotions_cli.main import app

click_app = typer.main.get_command(app)
