"""`emotions cache | train | evaluate`: thin commands over `baselines.recipes` (mounted on the main CLI).

torch is imported inside the commands, so the rest of the CLI works without the `baseline` extra.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from emotions_cli.console import ProgressBar, console, fail, local_folder, progress_bars, say, stdout

baseline_app = typer.Typer()

EXECUTOR_HELP = "where the cache is built: local, serial or ray"


def _need_torch() -> None:
    try:
        import torch  # noqa: F401
        import torchvision  # noqa: F401
    except ImportError:
        raise fail("the baseline needs the baseline extra: pip install 'emotions[baseline]'") from None


def _at_least(**options: tuple[int | None, int]) -> None:
    """Refuse an impossible count before anything runs: one line naming the option (`batch_size` -> --batch-size)."""
    for name, (value, low) in options.items():
        if value is not None and value < low:
            raise fail(f"--{name.replace('_', '-')} must be >= {low} (got {value})")


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
    names = {"accuracy": "accuracy (WAR)", "uar": "UAR", "weighted_f1": "weighted F1",
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
    variant: Annotated[str | None, typer.Option(help="only this variant [default: all]")] = None,
    split: Annotated[list[str] | None, typer.Option(help="only these splits (repeat the option)")] = None,
    executor: Annotated[str, typer.Option(help=EXECUTOR_HELP)] = "local",
    workers: Annotated[int, typer.Option(help="parallel workers")] = 2,
    ray_address: Annotated[str | None, typer.Option(envvar="RAY_ADDRESS", help="Ray cluster address")] = None,
) -> None:
    """Decode every video of a release once into the baseline's preprocessing cache (resumable; damaged files are
    rebuilt)."""
    _at_least(workers=(workers, 1))
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
        raise fail(str(exc)) from None
    for result in report.damaged:
        _warn(damaged_line(result.damaged, result.status))
    if placement:
        console.print(placement, highlight=False)
    console.print(f"cache: {report.cache_dir}  built {report.built}, current {report.current}, "
                  f"failed {len(report.failed)}", highlight=False)  # fmt: skip
    for failure in report.failed:
        console.print(f"failed: {failure.video_id}: {failure.error}", highlight=False, soft_wrap=True)
    if report.failed:
        raise typer.Exit(1)


@baseline_app.command()
def train(
    release_dir: Annotated[Path, typer.Argument(help="release folder (DATASET/releases/X.Y.Z)", callback=local_folder)],
    variant: Annotated[str, typer.Option(help="full, balanced, test_oriented (or official)")] = "full",
    config: Annotated[str, typer.Option(help="tiny (CPU, minutes) or paper (the published recipe)")] = "tiny",
    device: Annotated[str | None, typer.Option(help="cpu, cuda or cuda:N [default: cuda when available]")] = None,
    epochs: Annotated[int | None, typer.Option(help="override the configuration's epochs")] = None,
    batch_size: Annotated[int | None, typer.Option(help="global batch (split over torchrun processes)")] = None,
    loader_workers: Annotated[
        int | None, typer.Option(help="DataLoader worker processes per training process [default: the CPUs, <= 16]")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="run folder [default: DATASET/runs/VERSION/V-C]")] = (
        None
    ),
    weights: Annotated[Path | None, typer.Option(help="local visual backbone weights (Swin-T .pth)")] = None,
    audio_weights: Annotated[Path | None, typer.Option(help="local audio backbone weights (ResNet-34 .pth)")] = None,
    random_init: Annotated[bool, typer.Option(help="let --config paper start from random weights")] = False,
    model: Annotated[str, typer.Option(help="a registered model: avcanet or avcanet-softmax-levels")] = "avcanet",
    use_cache: Annotated[bool, typer.Option("--cache/--no-cache", help="decode once into the cache")] = True,
    resume: Annotated[bool, typer.Option("--resume/--restart", help="continue the run folder's last.pt")] = True,
    executor: Annotated[str, typer.Option(help=EXECUTOR_HELP)] = "local",
    workers: Annotated[int, typer.Option(help="parallel workers for the cache")] = 2,
    ray_address: Annotated[str | None, typer.Option(envvar="RAY_ADDRESS", help="Ray cluster address")] = None,
) -> None:
    """Train the AV-CANet baseline on a release's train split; the best epoch is chosen on val (test is never
    read). Multi-GPU: `torchrun --nproc-per-node N $(which emotions) train ...`."""
    _at_least(epochs=(epochs, 1), batch_size=(batch_size, 1), loader_workers=(loader_workers, 0), workers=(workers, 1))
    _need_torch()
    from baselines.distributed import init_world, shutdown_world
    from baselines.recipes import TrainRequest, train_release
    from emotions_data.executor import ExecutorError, make_executor

    device = _device(device)
    import torch

    world = init_world(torch.device(device))
    request = TrainRequest(release_dir, variant, config, out, device, epochs, batch_size, loader_workers, use_cache,
                           weights, resume, audio_weights, random_init, model)  # fmt: skip
    columns = [TextColumn("{task.description:>10}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TimeRemainingColumn(), TextColumn("{task.fields[status]}")]  # fmt: skip
    interactive = console.is_terminal or sys.stderr.isatty()
    try:
        with Progress(*columns, console=console, disable=not (world.is_main and interactive)) as progress:
            tasks: dict[int, int] = {}

            def on_step(step) -> None:
                if step.epoch not in tasks:
                    tasks[step.epoch] = progress.add_task(f"epoch {step.epoch + 1}", total=step.batches, status="")
                status = f"loss {step.loss:.3f}  {step.clips_per_s:.1f} clips/s  data wait {step.data_wait:.0%}"
                progress.update(tasks[step.epoch], completed=step.batch, status=status)

            def on_epoch(result) -> None:
                val = result.val
                progress.console.print(
                    f"epoch {result.epoch + 1}: train loss {result.train_loss:.3f} acc {result.train_accuracy:.3f}  "
                    f"val acc {val['accuracy']:.3f} UAR {val['uar']:.3f}", highlight=False)  # fmt: skip

            with make_executor(executor, workers, ray_address) as pool:
                run_dir, history = train_release(
                    request, executor=pool, world=world, on_step=on_step, on_epoch=on_epoch,
                    on_cache_progress=ProgressBar(progress, status=""),
                    on_warning=lambda message: progress.console.print(f"warning: {message}", highlight=False,
                                                                      soft_wrap=True),
                    on_info=lambda line: stdout.print(line, highlight=False, soft_wrap=True),
                )  # fmt: skip
    except (ValueError, OSError, ExecutorError) as exc:
        raise fail(str(exc)) from None
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
    variant: Annotated[str | None, typer.Option(help="[default: the variant the checkpoint was trained on]")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="[default: RUN/eval-VARIANT-SPLIT]")] = None,
    device: Annotated[str | None, typer.Option(help="cpu, cuda or cuda:N [default: cuda when available]")] = None,
    use_cache: Annotated[bool, typer.Option("--cache/--no-cache", help="decode once into the cache")] = True,
    batch_size: Annotated[int, typer.Option(help="clips per batch")] = 8,
    loader_workers: Annotated[
        int | None, typer.Option(help="DataLoader worker processes [default: the CPUs, <= 16]")
    ] = None,
) -> None:
    """Evaluate a checkpoint on a release split: metrics.json, confusion matrix (CSV, PNG), per-video predictions
    with class probabilities (CSV), in the run's folder. The release is only read; `emotions release
    record-baseline` records a test result in a new release version."""
    _at_least(batch_size=(batch_size, 1), loader_workers=(loader_workers, 0))
    _need_torch()
    from baselines.recipes import evaluate_release

    try:
        with progress_bars() as progress:
            result = evaluate_release(checkpoint, release_dir, split, variant=variant, out_dir=out,
                                      device=_device(device), use_cache=use_cache, batch_size=batch_size,
                                      num_workers=loader_workers, on_cache_progress=ProgressBar(progress),
                                      on_warning=_warn)  # fmt: skip
    except (ValueError, OSError) as exc:
        raise fail(str(exc)) from None
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
