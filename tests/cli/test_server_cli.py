"""The Label Studio server's command line (`emotions annotate server`, emotions_cli.server.server_app)."""

from __future__ import annotations

import re

from emotions_cli.server import server_app


def test_the_command_line_takes_no_secrets():
    from typer.testing import CliRunner

    for command in ("start", "stop", "status"):
        text = CliRunner().invoke(server_app, [command, "--help"], terminal_width=200).output
        assert "--data-dir" in text
        assert not re.search(r"--(token|password|username|user-token)\b", text)
