"""Every numeric option of every command is checked when read (emotions_cli.params): a value that is not a number,
not finite or out of range is one error line naming the option, exit 1, before the command runs. The walk over the
application keeps a new option from slipping past."""

from __future__ import annotations

import types
import typing

import pytest
import typer
from typer.testing import CliRunner

from annotation.agreement import MAX_BOOTSTRAP
from emotions_cli.labels import BOOTSTRAP
from emotions_cli.main import app
from emotions_cli.params import Bounds


def _commands(group, path=()):
    for name, command in getattr(group, "commands", {}).items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*path, name))
        else:
            yield " ".join((*path, name)), command


def _numeric(annotation) -> type | None:
    args = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    found = [a for a in args if a in (int, float)]
    return found[0] if found else None


def test_every_numeric_option_is_declared_with_bounds():
    root = typer.main.get_command(app)
    seen, unchecked = 0, []
    for name, command in _commands(root):
        for param in command.params:
            kind = _numeric(param.type_descriptor.annotation)
            if kind is None:
                continue
            seen += 1
            bounds = getattr(param.type_descriptor.parameter_info.callback, "__self__", None)
            if not isinstance(bounds, Bounds) or bounds.kind is not kind:
                unchecked.append(f"{name} {param.opts}")
                continue
            # an int needs both ends (Python ints have no overflow to stop a typo); a float a lower one at least
            if not bounds.setting and (bounds.low is None and bounds.above is None):
                unchecked.append(f"{name} {param.opts}: no lower limit")
            if kind is int and not bounds.setting and bounds.high is None:
                unchecked.append(f"{name} {param.opts}: no upper limit")
    assert seen >= 30, seen
    assert not unchecked, "numeric options declared without emotions_cli.params.number: " + ", ".join(unchecked)


def test_the_bootstrap_cap_is_the_library_s():
    assert BOOTSTRAP.high == MAX_BOOTSTRAP


runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["annotate", "push", "ds", "--stage", "label", "--votes-per-item", "0"],
         "--votes-per-item must be >= 1 (got 0)"),
        (["annotate", "push", "ds", "--stage", "label", "--votes-per-item", "1e9"],
         "--votes-per-item must be an integer"),
        (["annotate", "push", "ds", "--stage", "expert", "--min-agreement", "7"],
         "--min-agreement must be a finite number in [0, 1] (got 7.0)"),
        (["annotate", "push", "ds", "--stage", "expert", "--min-agreement", "nan"], "--min-agreement must be a finite"),
        (["annotate", "simulate", "ds", "--stage", "label", "--seed", "-1"], "--seed must be >= 0 (got -1)"),
        (["annotate", "simulate", "ds", "--stage", "label", "--seed", str(2**40)], "numpy's seed range"),
        (["annotate", "allocate", "ds", "--roster", "r.csv", "--groups", "0"], "--groups must be >= 1"),
        (["annotate", "consistency", "ds", "--threshold", "nan"],
         "--threshold must be a finite number in [0, 1] (got nan)"),
        (["annotate", "consistency", "ds", "--threshold", "-inf"], "--threshold must be a finite number"),
        (["annotate", "consistency", "ds", "--threshold", "1.01"], "--threshold"),
        (["annotate", "consistency", "ds", "--round", "3"], "--round must be <= 2 (got 3)"),
        (["annotate", "server", "start", "--timeout", "inf"], "--timeout must be a finite number in (0, 86400]"),
        (["annotate", "server", "start", "--timeout", "0"], "--timeout"),
        (["annotate", "server", "start", "--port", "70000"], "--port must be <= 65535"),
        (["agreement", "v.csv", "--bootstrap", "200000000"],
         "--bootstrap must be <= 100000 (got 200000000): more resamples do not narrow the interval"),
        (["agreement", "v.csv", "--confidence", "nan"], "--confidence must be a finite number in (0, 1)"),
        (["agreement", "v.csv", "--top", "99999999999999999999"], "--top must be <= 2147483647"),
        (["agreement", "v.csv", "--seed", "١"], "--seed must be an integer"),  # an Arabic-Indic digit
        (["split", "ds", "--seed", "1_000"], "--seed must be an integer"),
        (["split", "ds", "--balanced-per-class", "abc"], "--balanced-per-class must be an integer"),
        (["ingest", "u.txt", "--out", "ds", "--workers", "two"], "--workers must be an integer (got 'two')"),
        (["ingest", "u.txt", "--out", "ds", "--min-duration", "nan"], "--min-duration must be a finite number"),
        (["ingest", "u.txt", "--out", "ds", "--max-requests-per-minute", "inf"], "--max-requests-per-minute"),
        (["ingest", "u.txt", "--out", "ds", "--near-dup-threshold", "nan"], "--near-dup-threshold"),
        (["ingest", "u.txt", "--out", "ds", "--limit-rate", "1.5"], "--limit-rate must be an integer"),
        (["import-official", "p", "--out", "ds", "--fold", "0"], "--fold must be >= 1"),
        (["import-official", "p", "--out", "ds", "--workers", "inf"], "--workers must be an integer"),
        (["demo", "--workers", "0"], "--workers must be >= 1"),
        (["train", "r", "--epochs", "1000000"], "--epochs must be <= 100000"),
        (["train", "r", "--batch-size", "0"], "--batch-size must be >= 1 (got 0)"),
        (["train", "r", "--loader-workers", "100000"], "--loader-workers must be <= 256"),
        (["train", "r", "--lr", "inf"], "--lr must be a finite number > 0 (got inf)"),
        (["train", "r", "--weight-decay", "nan"], "--weight-decay must be a finite number >= 0 (got nan)"),
        (["train", "r", "--workers", "5000"], "--workers must be <= 4096"),
        (["evaluate", "c.pt", "r", "--batch-size", "-1"], "--batch-size must be >= 1"),
        (["cache", "r", "--workers", "0"], "--workers must be >= 1"),
    ],
)  # fmt: skip
def test_an_option_out_of_range_is_one_line_naming_it(tmp_path, monkeypatch, args, expected):
    monkeypatch.chdir(tmp_path)  # nothing of these paths exists: the option is refused before any is read
    result = runner.invoke(app, args)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert expected in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_an_environment_variable_out_of_range_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["train", "r"], env={"EMOTIONS_PROGRESS_INTERVAL": "inf"})
    assert result.exit_code == 1
    assert "EMOTIONS_PROGRESS_INTERVAL (for --progress-interval) must be a finite number >= 0" in result.stderr
