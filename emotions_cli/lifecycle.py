"""How every command ends when it is stopped: SIGINT (Ctrl-C) and SIGTERM (a service manager, `kill`) end it with one
line on stderr saying what was kept and how to resume, exit 130 or 143 (128 + the signal, as shells report it).

SIGTERM becomes `Terminated`, a KeyboardInterrupt, so the code that already cleans up after Ctrl-C does so after
SIGTERM too: executors end their workers (`emotions_data.executor`), locks are let go, the temporaries of an
unfinished write are removed. Every write is atomic and every group of files is committed together, so what a
stopped command leaves is what it had committed, whole. A second command on a dataset another one is writing is
refused here too, in one line (`emotions_data.dataset_lock`).
"""

from __future__ import annotations

import shlex
import signal
import sys
import threading
from typing import Any

import typer
from typer.core import TyperGroup

from emotions_cli.console import error_line


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: the command unwinds as after Ctrl-C."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated(signum)


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """128 + the signal that stopped the command: 143 after SIGTERM, 130 after SIGINT."""
    return 128 + (signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT)


def stopped_by(interrupt: KeyboardInterrupt) -> str:
    """The signal's name, for the line a stopped command prints."""
    return "SIGTERM" if isinstance(interrupt, Terminated) else "SIGINT"


def resume_hint() -> str:
    """The command line to run again, as the user typed it (the program named `emotions`)."""
    return shlex.join(["emotions", *sys.argv[1:]])


class CommandGroup(TyperGroup):
    """The root command group: SIGTERM handled like Ctrl-C, and every stopped or refused command ends in one line."""

    def invoke(self, ctx: Any) -> Any:
        from emotions_data.dataset_lock import DatasetBusy

        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _terminate)
        try:
            return super().invoke(ctx)
        except DatasetBusy as exc:
            error_line(str(exc))
            raise typer.Exit(1) from None
        except KeyboardInterrupt as exc:
            error_line(
                f"stopped by {stopped_by(exc)}: what was committed before is kept, whole, and nothing half-written is "
                f"left in place; to resume, run the same command again: {resume_hint()}"
            )
            raise typer.Exit(exit_code(exc)) from None
