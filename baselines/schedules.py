"""Learning-rate schedules of the baseline: pure functions of the epoch or of the optimiser step.

Each returns the multiplier of the base rate (`TrainConfig.lr`). `SCHEDULES` names them for `--lr-schedule`:

  paper     the authors' intended YOLOX "warm-cos" rate, one value per epoch (`warm_cos`): quadratic warm-up from
            0.1 x lr over `warmup_epochs`, cosine down to `final_fraction` x lr, the floor held for the last
            `hold_epochs`. With the paper's 30 epochs both spans are 1.5 epochs (5 % of the run, as the authors'
            `get_lr_scheduler` derives them).
  released  what the authors' released script does: it asks the same schedule for the rate of the *total*
            epoch count on every epoch (`set_optimizer_lr(..., opt.n_epochs)`), which is the floor, so the rate is
            frozen at 1 % of lr (1.5e-6) for the whole run.
  per-step  this project's earlier schedule: linear warm-up over `warmup_epochs`' worth of optimiser steps, then
            cosine to `final_fraction` at the last step, without a hold. Runs started with it resume with it.

Epoch schedules take the 0-based epoch, so the first epoch trains at the warm-up's start rate.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

#: Where the warm-up of `warm_cos` starts, as a fraction of the base rate, and its floor in absolute terms
#: (the authors' `warmup_lr_start = max(0.1 * lr, 1e-6)`).
WARMUP_START_FRACTION = 0.1
WARMUP_START_MIN_LR = 1e-6


@dataclass(frozen=True)
class ScheduleShape:
    """What a schedule needs to know of a run. Spans in epochs; `steps_per_epoch` optimiser steps per epoch."""

    epochs: int
    steps_per_epoch: int
    warmup_epochs: float
    hold_epochs: float
    final_fraction: float
    lr: float  # the base rate: only the warm-up's absolute floor depends on it


def warm_cos(epoch: float, shape: ScheduleShape) -> float:
    """Multiplier of the base rate at `epoch` (0-based) under the YOLOX warm-cos rule of the authors'
    `core/utils.py` (`yolox_warm_cos_lr`, with their 0.1 warm-up start and 1 % floor):

        epoch <= W:          s + (1 - s) * (epoch / W)^2,            s = max(0.1, 1e-6 / lr)
        epoch >= E - H:      f
        otherwise:           f + (1 - f) * (1 + cos(pi * (epoch - W) / (E - W - H))) / 2

    with W = `warmup_epochs`, H = `hold_epochs`, E = `epochs`, f = `final_fraction`. A zero W skips the warm-up;
    when W + H >= E the cosine never runs (the last branch needs W < epoch < E - H)."""
    start = max(WARMUP_START_FRACTION, WARMUP_START_MIN_LR / shape.lr)
    final = shape.final_fraction
    if shape.warmup_epochs > 0 and epoch <= shape.warmup_epochs:
        return start + (1 - start) * (epoch / shape.warmup_epochs) ** 2
    if epoch >= shape.epochs - shape.hold_epochs:
        return final
    span = shape.epochs - shape.warmup_epochs - shape.hold_epochs
    return final + (1 - final) * 0.5 * (1 + math.cos(math.pi * (epoch - shape.warmup_epochs) / span))


def released(epoch: float, shape: ScheduleShape) -> float:
    """The authors' released behaviour: `warm_cos` asked for the total epoch count whatever the epoch, i.e.
    `final_fraction` (1.5e-6 with the paper's lr 1.5e-4) on every epoch."""
    return warm_cos(shape.epochs, shape)


def lr_factor(step: int, total_steps: int, warmup_steps: int, final_fraction: float) -> float:
    """Multiplier of the base rate at optimiser step `step` (0-based): linear warm-up, then cosine to the floor."""
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return final_fraction + (1 - final_fraction) * 0.5 * (1 + math.cos(math.pi * progress))


def per_step(step: float, shape: ScheduleShape) -> float:
    """`lr_factor` over the whole run: warm-up over `round(warmup_epochs * steps_per_epoch)` steps."""
    total = shape.steps_per_epoch * shape.epochs
    return lr_factor(int(step), total, round(shape.warmup_epochs * shape.steps_per_epoch), shape.final_fraction)


@dataclass(frozen=True)
class Schedule:
    """A named schedule: `factor(t, shape)` with t the 0-based epoch (`per` "epoch") or optimiser step ("step")."""

    per: str
    factor: Callable[[float, ScheduleShape], float]
    description: str

    def at_step(self, step: int, shape: ScheduleShape) -> float:
        """The multiplier for optimiser step `step` (0-based) of the run: an epoch schedule holds its epoch's
        value for all of that epoch's steps."""
        if self.per == "epoch":
            return self.factor(step // max(1, shape.steps_per_epoch), shape)
        return self.factor(step, shape)


SCHEDULES: dict[str, Schedule] = {
    "paper": Schedule("epoch", warm_cos, "the paper's warm-cos per epoch (quadratic warm-up, cosine, floor held)"),
    "released": Schedule("epoch", released, "as the authors' released code ran: frozen at 1 % of lr"),
    "per-step": Schedule("step", per_step, "linear warm-up then cosine per optimiser step, no hold"),
}


def schedule(name: str) -> Schedule:
    """The schedule called `name`; `ValueError` naming the choices otherwise."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {name!r} (choose: {', '.join(SCHEDULES)})")
    return SCHEDULES[name]
