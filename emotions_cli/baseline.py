"""`emotions cache | train | evaluate`: thin commands over `baselines.recipes` (mounted on the main CLI).

torch is imported inside the commands, so the rest of the CLI works without the `baseline` extra.
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from baselines.schedules import SCHEDULES
from emotions_cli.console import ProgressBar, console, fail, failure, local_folder, progress_bars, say, stdout
from emotions_cli.params import WORKERS, integers, number, reals

if TYPE_CHECKING:
    from baselines.train import EpochResult, StepInfo

baseline_app = typer.Typer()

EXECUTOR_HELP = "where the cache is built: local, serial or ray"
LR_SCHEDULE_HELP = (
    f"{', '.join(SCHEDULES)}: paper = warm-cos per epoch as the paper intends, released = frozen at 1 % of lr as "
    "the authors' code ran, per-step = linear warm-up then cosine per optimiser step \\[default: paper; per-step "
    "with --config tiny]"
)
WARMUP_HELP = "epochs of warm-up (fractions allowed; the paper and per-step schedules) \\[default: paper 1.5, tiny 1]"
HOLD_HELP = "epochs held at the floor at the end of the run (the paper schedule) \\[default: paper 1.5, tiny 1]"
PROGRESS_HELP = "seconds between progress lines on stdout when it is not a terminal (0: every step)"
LOSSES = ("ep-ce", "ce")
EPOCHS = integers(1, 100_000, "a typo, not a training run")
EPOCH_SPAN = reals(0.0, 100_000.0)
BATCH = integers(1, 65_536, "clips in one batch")
LOADER_WORKERS = integers(0, 256, "DataLoader processes per training process")
TrainLoaderWorkersOpt = Annotated[
    int | None,
    number(bounds=LOADER_WORKERS, help="DataLoader worker processes per training process \\[default: the CPUs, <= 16]"),
]
LrOpt = Annotated[
    float | None, number(bounds=reals(above=0.0), help="peak learning rate \\[default: paper 1.5e-4, tiny 1e-3]")
]
WeightDecayOpt = Annotated[float | None, number(bounds=reals(0.0), help="AdamW's \\[default: paper 0.02, tiny 0.01]")]
ProgressIntervalOpt = Annotated[
    float, number(bounds=reals(0.0), envvar="EMOTIONS_PROGRESS_INTERVAL", help=PROGRESS_HELP)
]
PRECISIONS = ("bf16", "fp32")


def _need_torch() -> None:
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    except ImportError:
        raise fail("the baseline needs the baseline extra: pip install 'emotions[baseline]'") from None


def _choice(name: str, value: str | None, choices: Iterable[str]) -> None:
    choices = list(choices)
    if value is not None and value not in choices:
        raise fail(f"--{name.replace('_', '-')} must be one of {', '.join(choices)} (got {value!r})")


def training_settings(
    lr: float | None, weight_decay: float | None, lr_schedule: str | None, loss: str, lambdas: str, precision: str,
    warmup_epochs: float | None = None, hold_epochs: float | None = None,
) -> dict[str, object]:  # fmt: skip
    """The training options of `emotions train`, checked before anything runs, as `TrainRequest` fields; a bad one
    is one line naming it (`typer.Exit`). `lambdas` is "POSITIVE,NEUTRAL,NEGATIVE", each finite and >= 0. Numbers
    are range-checked when read (`emotions_cli.params`); that the schedule's spans fit the run's epochs is checked
    once the epochs are known."""
    _choice("lr_schedule", lr_schedule, SCHEDULES)
    _choice("loss", loss, LOSSES)
    _choice("precision", precision, PRECISIONS)
    try:
        values = tuple(float(x) for x in lambdas.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or not all(math.isfinite(x) and x >= 0 for x in values):
        raise fail(f"--ep-ce-lambdas must be three finite numbers >= 0 separated by commas (got {lambdas!r})")
    return {"lr": lr, "weight_decay": weight_decay, "lr_schedule": lr_schedule, "loss": loss, "lambdas": values,
            "precision": precision, "warmup_epochs": warmup_epochs, "hold_epochs": hold_epochs}  # fmt: skip


def _duration(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class TrainProgress:
    """What `emotions train` shows while training. On a terminal, a rich bar per epoch (`progress`). Otherwise
    (`plain`: a batch job, a pipe) one flushed line on stdout at most every `interval` seconds and at the end of
    each epoch: epoch, step, loss, clips/s, time left in the epoch and in the run (training steps only, validation
    not counted). Epoch summaries go to stderr in both cases."""

    def __init__(self, progress: Progress, *, plain: bool, interval: float) -> None:
        self.progress, self.plain, self.interval = progress, plain, interval
        self.tasks: dict[int, int] = {}
        self.last_line = -math.inf

    def step(self, step: StepInfo) -> None:
        if self.plain:
            now = time.monotonic()
            if now - self.last_line >= self.interval or step.batch == step.batches:
                self.last_line = now
                print(self.line(step), flush=True)
            return
        if step.epoch not in self.tasks:
            self.tasks[step.epoch] = self.progress.add_task(f"epoch {step.epoch + 1}", total=step.batches, status="")
        status = f"loss {step.loss:.3f}  {step.clips_per_s:.1f} clips/s  data wait {step.data_wait:.0%}"
        self.progress.update(self.tasks[step.epoch], completed=step.batch, status=status)

    @staticmethod
    def line(step: StepInfo) -> str:
        """`epoch E/N step B/M loss L C clips/s data wait W% ETA epoch H:MM:SS run H:MM:SS`."""
        per_batch = step.elapsed_s / max(step.batch, 1)
        epoch_left = per_batch * (step.batches - step.batch)
        run_left = epoch_left + per_batch * step.batches * max(step.epochs - step.epoch - 1, 0)
        return (f"epoch {step.epoch + 1}/{step.epochs} step {step.batch}/{step.batches} loss {step.loss:.3f} "
                f"{step.clips_per_s:.1f} clips/s data wait {step.data_wait:.0%} "
                f"ETA epoch {_duration(epoch_left)} run {_duration(run_left)}")  # fmt: skip

    def epoch(self, result: EpochResult) -> None:
        val = result.val
        self.progress.console.print(
            f"epoch {result.epoch + 1}: train loss {result.train_loss:.3f} acc {result.train_accuracy:.3f}  "
            f"val acc {val['accuracy']:.3f} UAR {val['uar']:.3f}", highlight=False)  # fmt: skip


def _warn(message: str) -> None:
    say(f"warning: {message}")


def _device(name: str | None) -> str:
    import torch

    if name in (None, "auto"):
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise fail(f"--device {name}: no CUDA device is available (use --device cpu)")
    if name == "cuda" and "LOCAL_RANK" in os.environ:  # one GPU per process under torchrun
        name = f"cuda:{os.environ['LOCAL_RANK']}"
    if name.startswith("cuda"):
        torch.cuda.set_device(torch.device(name))
    return name


def print_metrics(metrics: dict) -> None:
    """The headline metrics of an evaluation, then per-class accuracy."""
    from rich.table import Table

    run = metrics.get("run", {})
    title = f"{run.get('release', '')} {run.get('variant', '')}/{run.get('split', '')}: {metrics['n']} videos"
    table = Table(title=title)
    names = {"accuracy": "accuracy (WAR)", "uar": "UAR", "uar_present": "UAR (present)", "weighted_f1": "weighted F1",
             "polarity_accuracy": "polarity accuracy", "audio_accuracy": "audio head",
             "visual_accuracy": "visual head"}  # fmt: skip
    for key in names:
        table.add_column(names[key], justify="right")
    table.add_row(*(f"{metrics[k]:.3f}" for k in names))
    stdout.print(table)
    per_class = ", ".join(f"{c} {v:.3f}" for c, v in metrics.get("per_class_accuracy", {}).items())
    stdout.print(f"per-class accuracy: {per_class}", highlight=False, soft_wrap=True)


@baseline_app.command()
def cache(
    release_dir: Annotated[Path, typer.Argument(help="release folder (DATASET/releases/X.Y.Z)", callback=local_folder)],
    variant: Annotated[str | None, typer.Option(help="only this variant \\[default: all]")] = None,
    split: Annotated[list[str] | None, typer.Option(help="only these splits (repeat the option)")] = None,
    executor: Annotated[str, typer.Option(help=EXECUTOR_HELP)] = "local",
    workers: Annotated[int, number(bounds=WORKERS, help="parallel workers")] = 2,
    ray_address: Annotated[str | None, typer.Option(envvar="RAY_ADDRESS", help="Ray cluster address")] = None,
) -> None:
    """Decode every video of a release once into the baseline's preprocessing cache (resumable; damaged files are
    rebuilt)."""
    _need_torch()
    from baselines.cache import CacheSettings, build_release_cache
    from baselines.recipes import damaged_line
    from emotions_data.executor import ExecutorError, make_executor, placement_line

    try:
        with progress_bars() as progress, make_executor(executor, workers, ray_address) as pool:
            report = build_release_cache(release_dir, CacheSettings(), pool, variant=variant, splits=split,
                                         progress=ProgressBar(progress))  # fmt: skip
            placement = placement_line(pool)
    except (ValueError, OSError, ExecutorError) as exc:
        raise failure(exc, release_dir) from None
    for result in report.damaged:
        _warn(damaged_line(result.damaged, result.status))
    if placement:
        console.print(placement, highlight=False)
    console.print(f"cache: {report.cache_dir}  built {report.built}, current {report.current}, "
                  f"failed {len(report.failed)}", highlight=False)  # fmt: skip
    for failed in report.failed:
        console.print(f"failed: {failed.video_id}: {failed.error}", highlight=False, soft_wrap=True)
    if report.failed:
        raise typer.Exit(1)


@baseline_app.command()
def train(
    release_dir: Annotated[Path, typer.Argument(help="release folder (DATASET/releases/X.Y.Z)", callback=local_folder)],
    variant: Annotated[str, typer.Option(help="full, balanced, test_oriented (or official)")] = "full",
    config: Annotated[str, typer.Option(help="tiny (CPU, minutes) or paper (the published recipe)")] = "tiny",
    device: Annotated[str | None, typer.Option(help="cpu, cuda or cuda:N \\[default: cuda when available]")] = None,
    epochs: Annotated[int | None, number(bounds=EPOCHS, help="override the configuration's epochs")] = None,
    batch_size: Annotated[int | None, number(bounds=BATCH, help="global batch (split over torchrun processes)")] = None,
    loader_workers: TrainLoaderWorkersOpt = None,
    lr: LrOpt = None,
    weight_decay: WeightDecayOpt = None,
    lr_schedule: Annotated[str | None, typer.Option(help=LR_SCHEDULE_HELP)] = None,
    warmup_epochs: Annotated[float | None, number(bounds=EPOCH_SPAN, help=WARMUP_HELP)] = None,
    hold_epochs: Annotated[float | None, number(bounds=EPOCH_SPAN, help=HOLD_HELP)] = None,
    loss: Annotated[str, typer.Option(help="ep-ce (polarity-weighted, the paper's) or ce (plain cross-entropy)")] = (
        "ep-ce"
    ),
    ep_ce_lambdas: Annotated[str, typer.Option(help="EP-CE's weights for positive, neutral, negative classes")] = (
        "0.5,0.5,0.5"
    ),
    precision: Annotated[str, typer.Option(help="bf16 (autocast, on CUDA only) or fp32")] = "bf16",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="run folder \\[default: DATASET/runs/VERSION/V-C]")
    ] = (None),
    weights: Annotated[Path | None, typer.Option(help="local visual backbone weights (Swin-T .pth)")] = None,
    audio_weights: Annotated[Path | None, typer.Option(help="local audio backbone weights (ResNet-34 .pth)")] = None,
    random_init: Annotated[bool, typer.Option(help="let --config paper start from random weights")] = False,
    model: Annotated[str, typer.Option(help="a registered model: avcanet or avcanet-softmax-levels")] = "avcanet",
    use_cache: Annotated[bool, typer.Option("--cache/--no-cache", help="decode once into the cache")] = True,
    resume: Annotated[bool, typer.Option("--resume/--restart", help="continue the run folder's last.pt")] = True,
    executor: Annotated[str, typer.Option(help=EXECUTOR_HELP)] = "local",
    workers: Annotated[int, number(bounds=WORKERS, help="parallel workers for the cache")] = 2,
    ray_address: Annotated[str | None, typer.Option(envvar="RAY_ADDRESS", help="Ray cluster address")] = None,
    progress_interval: ProgressIntervalOpt = 10.0,
) -> None:
    """Train the AV-CANet baseline on a release's train split; the best epoch is chosen on val (test is never
    read). Multi-GPU: `torchrun --nproc-per-node N $(which emotions) train ...`."""
    settings = training_settings(lr, weight_decay, lr_schedule, loss, ep_ce_lambdas, precision, warmup_epochs,
                                 hold_epochs)  # fmt: skip
    _need_torch()
    from baselines.distributed import init_world, shutdown_world
    from baselines.recipes import TrainRequest, train_release
    from emotions_data.executor import ExecutorError, make_executor

    device = _device(device)
    import torch

    world = init_world(torch.device(device))
    request = TrainRequest(release_dir, variant, config, out, device, epochs, batch_size, loader_workers, use_cache,
                           weights, resume, audio_weights, random_init, model, **settings)  # fmt: skip
    columns = [TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn(), TextColumn("{task.fields[status]}")]  # fmt: skip
    interactive = console.is_terminal or sys.stderr.isatty()
    try:
        with Progress(*columns, console=console, disable=not (world.is_main and interactive)) as progress:
            report = TrainProgress(progress, plain=world.is_main and not interactive, interval=progress_interval)
            with make_executor(executor, workers, ray_address) as pool:
                run_dir, history = train_release(
                    request, executor=pool, world=world, on_step=report.step, on_epoch=report.epoch,
                    on_cache_progress=ProgressBar(progress, status=""),
                    on_warning=lambda message: progress.console.print(f"warning: {message}", highlight=False,
                                                                      soft_wrap=True),
                    on_info=lambda line: stdout.print(line, highlight=False, soft_wrap=True),
                )  # fmt: skip
    except (ValueError, OSError, ExecutorError) as exc:
        raise failure(exc, release_dir) from None
    except KeyboardInterrupt:
        raise fail("interrupted: the last finished epoch is kept; the same command resumes") from None
    finally:
        shutdown_world(world)
    if world.is_main:
        if history:
            best = max(history, key=lambda h: h.val["accuracy"])
            console.print(f"best epoch {best.epoch + 1} on val: accuracy {best.val['accuracy']:.3f}", highlight=False)
        console.print(f"run: {run_dir}  (best.pt, last.pt)", highlight=False)


@baseline_app.command()
def evaluate(
    checkpoint: Annotated[Path, typer.Argument(help="best.pt (or last.pt) of an `emotions train` run")],
    release_dir: Annotated[Path, typer.Argument(help="release folder (DATASET/releases/X.Y.Z)", callback=local_folder)],
    split: Annotated[str, typer.Option(help="train, val or test")] = "test",
    variant: Annotated[str | None, typer.Option(help="\\[default: the variant the checkpoint was trained on]")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="\\[default: RUN/eval-VARIANT-SPLIT]")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda or cuda:N \\[default: cuda when available]")] = None,
    use_cache: Annotated[bool, typer.Option("--cache/--no-cache", help="decode once into the cache")] = True,
    batch_size: Annotated[int, number(bounds=BATCH, help="clips per batch")] = 8,
    loader_workers: Annotated[
        int | None, number(bounds=LOADER_WORKERS, help="DataLoader worker processes \\[default: the CPUs, <= 16]")
    ] = None,
) -> None:
    """Evaluate a checkpoint on a release split: metrics.json, confusion matrix (CSV, PNG), per-video predictions
    with class probabilities (CSV), in the run's folder. The release is only read; `emotions release
    record-baseline` records a test result in a new release version."""
    _need_torch()
    from baselines.recipes import evaluate_release

    try:
        with progress_bars() as progress:
            result = evaluate_release(checkpoint, release_dir, split, variant=variant, out_dir=out,
                                      device=_device(device), use_cache=use_cache, batch_size=batch_size,
                                      num_workers=loader_workers, on_cache_progress=ProgressBar(progress),
                                      on_warning=_warn)  # fmt: skip
    except (ValueError, OSError) as exc:
        raise failure(exc, release_dir) from None
    print_metrics(result.metrics)
    console.print(f"evaluation: {result.out_dir}  ({', '.join(result.files)})", highlight=False)
    if split == "test":
        console.print(f"to record it in the release card (as a new release version): emotions release "
                      f"record-baseline {release_dir} {result.out_dir}", highlight=False, soft_wrap=True)  # fmt: skip


@baseline_app.command("convert-weights")
def convert_weights(
    src: Annotated[Path, typer.Argument(help="weights file (torchvision, Video Swin or 2-D Swin-T layout)")],
    dst: Annotated[Path, typer.Argument(help="where to write the torchvision swin3d_t state dict")],
) -> None:
    """Convert a Swin-T weights file to torchvision's swin3d_t layout once (what --weights loads); prints what the
    written file loads into Video Swin-T. Never downloads."""
    _need_torch()
    from baselines.weights import convert_checkpoint

    try:
        conversion = convert_checkpoint(src, dst)
    except (OSError, ValueError) as exc:
        raise fail(str(exc), code=2) from None
    stdout.print(str(conversion), highlight=False, soft_wrap=True, markup=False)
