"""Numeric command-line options, checked when read: every int and float option of every command is declared with
`number` and one of the bounds below, so a value that is not a number, not finite (nan, inf) or out of its range
ends the command in one line naming the option (or the environment variable it came from), exit 1, before anything
runs. `tests/cli/test_option_bounds.py` walks the application and fails on a numeric option declared otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import typer

from emotions_cli.console import fail

#: The largest count an option takes unless it says otherwise: a C `int` (numpy and torch refuse larger sizes).
MAX_COUNT = 2**31 - 1
#: Seeds are numpy's legacy seed range, so a seed means the same to every generator the toolkit uses.
MAX_SEED = 2**32 - 1
#: Worker processes of a run (a Ray cluster's included: 64 machines of 64 cores); more is a typo, not a cluster.
MAX_WORKERS = 4096


@dataclass(frozen=True)
class Bounds:
    """The range of one numeric option: `kind` (int or float), `low`/`high` inclusive limits (None: none on that
    side; a float option is always finite), `above`/`below` exclusive ones, and `why` the reason given for `high`
    when a value exceeds it. An option that sets a setting (`setting`, dotted) is only checked to be a (finite)
    number here: the setting's own check names its range, the same from the option or the config file."""

    kind: type
    low: float | None = None
    high: float | None = None
    above: float | None = None
    below: float | None = None
    why: str = ""
    setting: str = ""  # the setting the option sets, whose own check gives the range (`load_settings`)

    def parse(self, value: Any) -> Any:
        """The option's raw text, kept as it is: `check` converts it, so a value that is not a number is named too."""
        return value

    def range_text(self, side: str = "both") -> str:
        """The range in words, `>= 1`, `<= 1024` or `in [0, 1]` (`side`: "low", "high" or "both"), after "a finite
        number" for a float."""
        # (inclusive limit, exclusive limit) per side: the comparison and the interval's bracket for each
        sides = {
            "low": (self.low, self.above, ">=", ">", "[", "("),
            "high": (self.high, self.below, "<=", "<", "]", ")"),
        }
        words, brackets = {}, {}
        for name, (inclusive, exclusive, op_in, op_ex, br_in, br_ex) in sides.items():
            limit, op, bracket = (inclusive, op_in, br_in) if inclusive is not None else (exclusive, op_ex, br_ex)
            words[name] = f"{op} {_num(limit)}" if limit is not None else ""
            brackets[name] = (bracket, _num(limit))
        low, high = words["low"], words["high"]
        if side == "both" and low and high:
            text = f"in {brackets['low'][0]}{brackets['low'][1]}, {brackets['high'][1]}{brackets['high'][0]}"
        else:
            text = high if side == "high" or not low else low
        if self.kind is float:
            return f"a finite number {text}".rstrip()
        return text or "an integer"

    def problem(self, value: Any) -> tuple[Any, str | None]:
        """(the converted value, None), or (None, why it is refused: `must be >= 1 (got 0)`)."""
        try:
            number = self._convert(value)
        except (TypeError, ValueError, OverflowError):
            text = self.range_text()
            noun = "an integer " if self.kind is int and text != "an integer" else ""
            return None, f"must be {noun}{text} (got {value!r})"
        too_low = (self.low is not None and number < self.low) or (self.above is not None and number <= self.above)
        too_high = (self.high is not None and number > self.high) or (self.below is not None and number >= self.below)
        if isinstance(number, float) and not math.isfinite(number):
            return None, f"must be {self.range_text()} (got {number})"
        if (too_low or too_high) and not self.setting:
            side = "high" if too_high and self.kind is int else "low" if self.kind is int else "both"
            why = f": {self.why}" if self.why and too_high else ""
            return None, f"must be {self.range_text(side)} (got {number}){why}"
        return number, None

    def _convert(self, value: Any) -> int | float:
        if isinstance(value, bool):
            raise TypeError("a flag is not a number")
        if self.kind is int:
            if isinstance(value, int):
                return value
            text = str(value).strip()
            if not text.lstrip("+-").isascii() or not text.lstrip("+-").isdigit():
                raise ValueError(text)  # int() would take "1_000" and non-ASCII digits
            return int(text)
        return float(value)

    def check(self, ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
        """Typer's callback: the value converted, or one error line naming the option and exit 1."""
        if value is None:
            return None
        number, problem = self.problem(value)
        if problem is None:
            return number
        source = ctx.get_parameter_source(param.name or "")
        name = max(param.opts, key=len) if param.opts else str(param.name)
        if source is not None and source.name == "ENVIRONMENT" and param.envvar:
            name = f"{param.envvar if isinstance(param.envvar, str) else '/'.join(param.envvar)} (for {name})"
        raise fail(f"{name} {problem}")


def _num(value: float | None) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def integers(low: int = 0, high: int = MAX_COUNT, why: str = "") -> Bounds:
    """An integer in [low, high]."""
    return Bounds(int, low=low, high=high, why=why)


def reals(
    low: float | None = None,
    high: float | None = None,
    *,
    above: float | None = None,
    below: float | None = None,
    why: str = "",
) -> Bounds:
    """A finite float within the given limits (`low`/`high` inclusive, `above`/`below` exclusive)."""
    if low is None and above is None:
        raise ValueError("a float option needs a lower limit")
    return Bounds(float, low=low, high=high, above=above, below=below, why=why)


def setting(kind: type, name: str) -> Bounds:
    """An option that sets the dotted setting `name`, whose range `load_settings` checks and names."""
    return Bounds(kind, setting=name)


SEED = integers(0, MAX_SEED, "numpy's seed range")
WORKERS = integers(1, MAX_WORKERS, "worker processes of one run, a Ray cluster's included")


def number(*decls: str, bounds: Bounds, **kwargs: Any) -> Any:
    """`typer.Option(*decls, **kwargs)` for a numeric option checked against `bounds` when read; its help ends with
    the range (`[range: >= 1]`, `[range: [0, 1]]`) unless a setting's own check gives it."""
    if not bounds.setting:
        side = "low" if bounds.high == MAX_COUNT else "both"  # the C int's limit says nothing to a reader
        text = bounds.range_text(side).removeprefix("a finite number ").removeprefix("in ")
        kwargs["help"] = f"{kwargs.get('help') or ''} \\[range: {text}]".lstrip()
    return typer.Option(*decls, parser=bounds.parse, callback=bounds.check, **kwargs)
