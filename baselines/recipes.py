"""Recipes: train the baseline on a release, evaluate a checkpoint on a release split. The CLI commands are thin
wrappers around these two functions.

Training opens only the `train` and `val` splits of the chosen variant (model selection on val), so a release's
test split is never read before `evaluate_release`. Checkpoints carry everything needed to rebuild the model and
its preprocessing: the model and training configurations, the taxonomy, the release and the cache recipe.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from baselines.cache import CacheSettings, build_release_cache, cache_folder
from baselines.checkpoint import check_resumable, load_model, model_record
from baselines.config import ModelConfig
from baselines.data import ReleaseDataset, default_loader_workers
from baselines.distributed import World
from baselines.loss import polarity_index
from baselines.media import check_release_files
from baselines.registry import DEFAULT_MODEL, build_model
from baselines.train import EpochResult, StepInfo, TrainConfig, predict, prediction_metrics, train
from baselines.weights import WeightReport, load_audio_weights, load_visual_weights
from emotions_data.card.plots import confusion_png
from emotions_data.executor import Executor, SerialExecutor
from emotions_data.layout import DatasetLayout
from emotions_data.release_info import ReleaseInfo
from emotions_data.storage import write_bytes_atomic

CONFIGS: dict[str, tuple[Callable[..., ModelConfig], Callable[[], TrainConfig]]] = {
    "tiny": (ModelConfig.tiny, TrainConfig.tiny),
    "paper": (ModelConfig.paper, TrainConfig.paper),
}


@dataclass(frozen=True)
class BaselineRelease:
    """What training and evaluation need of a release (read from its `release.json` by `read_release`)."""

    folder: Path
    name: str
    version: str
    classes: list[str]
    polarity: dict[str, str]
    variants: dict[str, dict[str, int]]  # variant -> split -> rows

    def check(self, variant: str, split: str | None = None) -> None:
        if variant not in self.variants:
            raise ValueError(f"{self.folder}: variant {variant!r} is not in this release (has: "
                             f"{', '.join(self.variants)})")  # fmt: skip
        if split is not None and split not in self.variants[variant]:
            raise ValueError(f"{self.folder}: variant {variant!r} has no split {split!r}")

    @property
    def class_polarity(self) -> torch.Tensor:
        return polarity_index(self.classes, self.polarity)


def read_release(folder: Path) -> BaselineRelease:
    """The release in `folder`. Raises ValueError naming release.json: not a release folder, unreadable."""
    info = ReleaseInfo.from_directory(folder)
    return BaselineRelease(Path(folder).resolve(), info.name, info.version, list(info.taxonomy["classes"]),
                       dict(info.taxonomy["polarity"]), dict(info.variants))  # fmt: skip


def outside_release(folder: Path, release: BaselineRelease, option: str) -> Path:
    """`folder`, refused (`ValueError` naming it and `option`) when it lies inside the release folder: a release is
    never written to, so neither its files nor the temporaries of a killed write ever end up there."""
    resolved = Path(folder).resolve()
    if resolved == release.folder or release.folder in resolved.parents:
        raise ValueError(f"{folder}: inside the release {release.folder}, which is never written to; choose "
                         f"another {option}")  # fmt: skip
    return Path(folder)


def default_run_dir(release: BaselineRelease, variant: str, config: str) -> Path:
    """`DATASET/runs/<version>/<variant>-<config>/`: beside the release, never inside it."""
    return DatasetLayout.of_release(release.folder).runs / release.version / f"{variant}-{config}"


@dataclass(frozen=True)
class TrainRequest:
    release_dir: Path
    variant: str = "full"
    config: str = "tiny"
    out_dir: Path | None = None
    device: str = "cpu"
    epochs: int | None = None
    batch_size: int | None = None
    num_workers: int | None = None
    use_cache: bool = True
    weights: Path | None = None  # visual backbone weights (local file; never downloaded)
    resume: bool = True
    audio_weights: Path | None = None  # audio ResNet-34 weights (local file; never downloaded)
    random_init: bool = False  # let `paper` start a backbone from random weights
    model: str = DEFAULT_MODEL  # a name of `baselines.registry.MODELS`

    # Training settings; None keeps the configuration's (`TrainConfig`).
    lr: float | None = None
    weight_decay: float | None = None
    lr_schedule: str | None = None  # a name of `baselines.schedules.SCHEDULES`
    warmup_epochs: float | None = None  # the schedule's warm-up span, in epochs
    hold_epochs: float | None = None  # the span at the floor at the end of the run (epoch schedules), in epochs
    loss: str | None = None  # one of LOSSES
    lambdas: tuple[float, float, float] | None = None  # EP-CE's, per polarity (positive, neutral, negative)
    precision: str | None = None  # one of PRECISIONS


#: `TrainRequest.loss` -> `TrainConfig.plain_ce`; `TrainRequest.precision` -> `TrainConfig.bf16`.
LOSSES = {"ep-ce": False, "ce": True}
PRECISIONS = {"bf16": True, "fp32": False}


def train_config_of(request: TrainRequest, base: TrainConfig) -> TrainConfig:
    """`base` with the request's settings. Raises `ValueError` naming a setting out of range or unknown, e.g. a
    warm-up and hold given that add up to more than the run's epochs (the warm-up would run into the hold)."""
    for name, value, choices in (("loss", request.loss, LOSSES), ("precision", request.precision, PRECISIONS)):
        if value is not None and value not in choices:
            raise ValueError(f"unknown {name} {value!r} (choose: {', '.join(choices)})")
    overrides = {
        "epochs": request.epochs, "batch_size": request.batch_size, "num_workers": request.num_workers,
        "lr": request.lr, "weight_decay": request.weight_decay, "lr_schedule": request.lr_schedule,
        "warmup_epochs": request.warmup_epochs, "hold_epochs": request.hold_epochs,
        "lambdas": tuple(request.lambdas) if request.lambdas is not None else None,
        "plain_ce": LOSSES[request.loss] if request.loss is not None else None,
        "bf16": PRECISIONS[request.precision] if request.precision is not None else None,
    }  # fmt: skip
    config = replace(base, **{k: v for k, v in overrides.items() if v is not None})
    spans = config.warmup_epochs + config.hold_epochs
    if (request.warmup_epochs is not None or request.hold_epochs is not None) and spans > config.epochs:
        raise ValueError(f"--warmup-epochs {config.warmup_epochs:g} and --hold-epochs {config.hold_epochs:g} add up "
                         f"to more than the run's {config.epochs} epochs")  # fmt: skip
    return config


#: Configurations that start from pretrained backbones, as the paper does.
PRETRAINED_CONFIGS = ("paper",)
VISUAL_WEIGHTS_HINT = (
    "--weights FILE: a local Swin3D-T state dict, e.g. torchvision's Kinetics-400 file swin3d_t-7615ae03.pth or the "
    "authors' ImageNet-22K Swin-T file swin_tiny_patch4_window7_224_22k.pth (Microsoft's Swin-Transformer releases)"
)
AUDIO_WEIGHTS_HINT = "--audio-weights FILE: torchvision's ImageNet ResNet-34 state dict, resnet34-b627a593.pth"


def check_initialisation(request: TrainRequest) -> None:
    """Refuse a `paper` run that would start a backbone from random weights, unless `random_init` says so.

    Raises `ValueError` in one line naming the files needed and where they come from (the toolkit never
    downloads)."""
    if request.config not in PRETRAINED_CONFIGS or request.random_init:
        return
    needed = [hint for given, hint in ((request.weights, VISUAL_WEIGHTS_HINT),
                                       (request.audio_weights, AUDIO_WEIGHTS_HINT)) if given is None]  # fmt: skip
    if needed:
        raise ValueError(f"--config {request.config} starts from pretrained backbones as the paper does; give "
                         f"{'; and '.join(needed)}. This toolkit never downloads: fetch the files yourself, or add "
                         "--random-init to train from random weights")  # fmt: skip


def load_pretrained(model: torch.nn.Module, request: TrainRequest) -> list[WeightReport]:
    """Load the request's visual and audio weights files into `model`; what was loaded, one report per file.
    Raises `ValueError` naming a file that cannot be read or does not fit."""
    reports = []
    if request.weights:
        reports.append(load_visual_weights(model, request.weights))
    if request.audio_weights:
        reports.append(load_audio_weights(model, request.audio_weights))
    return reports


def initialisation_lines(records: list[dict]) -> list[str]:
    """One line per weights file a run loaded (`WeightReport.record`), or one saying the run starts at random."""
    if not records:
        return ["weights: random initialisation (no pretrained weights loaded)"]
    return [
        f"weights: {r['part']} backbone from {r['file']} (sha256 {r['sha256']}): {r['loaded']} tensors loaded, "
        f"{r['skipped']} of the file's skipped, {r['kept_random']} of the backbone's left at random init"
        for r in records
    ]


def configs_of(name: str, n_classes: int) -> tuple[ModelConfig, TrainConfig]:
    """The model and training configurations named `name` (`CONFIGS`) for `n_classes` classes. Raises ValueError
    naming the choices for an unknown name."""
    if name not in CONFIGS:
        raise ValueError(f"unknown configuration {name!r} (choose: {', '.join(CONFIGS)})")
    model_config, train_config = CONFIGS[name]
    return model_config(n_classes=n_classes), train_config()


def prepare_cache(
    release_dir: Path, variant: str, splits: tuple[str, ...], executor: Executor | None = None, progress=None,
    on_warning: Callable[[str], None] | None = None,
) -> Path:  # fmt: skip
    """Build (or confirm) the preprocessing cache of some splits of a variant; returns its folder. Damaged files
    are rebuilt, each reported to `on_warning`. Raises `ValueError` when a video cannot be cached."""
    settings = CacheSettings()
    report = build_release_cache(release_dir, settings, executor or SerialExecutor(), variant=variant,
                                 splits=splits, progress=progress)  # fmt: skip
    if on_warning:
        for result in report.damaged:
            on_warning(damaged_line(result.damaged, result.status))
    if report.failed:
        first = report.failed[0]
        raise ValueError(f"{len(report.failed)} video(s) could not be cached, e.g. {first.video_id}: {first.error}")
    return report.cache_dir


def damaged_line(damaged: str, status: str) -> str:
    """What to tell a user about a damaged cache file (`CacheResult.damaged`) the build replaced, or tried to."""
    return f"{damaged}: rebuilt" if status == "built" else f"{damaged}: could not be rebuilt"


def train_release(
    request: TrainRequest,
    *,
    executor: Executor | None = None,
    world: World | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    on_epoch: Callable[[EpochResult], None] | None = None,
    on_cache_progress=None,
    on_warning: Callable[[str], None] | None = None,
    on_info: Callable[[str], None] | None = None,
) -> tuple[Path, list[EpochResult]]:
    """Train the baseline on `request.variant`'s train split, select on its val split. Returns the run folder
    (holding `best.pt` and `last.pt`) and the epoch history. `on_warning` hears of damaged cache files (rebuilt),
    `on_info` which weights initialised the model (:func:`initialisation_lines`, also recorded in the checkpoints).

    Raises `ValueError` for an impossible request (a missing variant, `epochs` < 1, `batch_size` < 1, ...), a
    `paper` run without pretrained weights (:func:`check_initialisation`), a release file read here that no longer
    matches the release's `SHA256SUMS`, an `out_dir` inside the release, a `last.pt` that cannot be resumed or a
    weights file that cannot be read (all before the cache is built), or a video that cannot be cached."""
    check_initialisation(request)
    world = world or World()
    release = read_release(request.release_dir)
    release.check(request.variant)
    check_release_files(release.folder, request.variant, ("train", "val"))
    model_config, train_config = configs_of(request.config, len(release.classes))
    workers = default_loader_workers() if request.num_workers is None else request.num_workers
    train_config = train_config_of(replace(request, num_workers=workers), train_config)
    out_dir = Path(request.out_dir) if request.out_dir else default_run_dir(release, request.variant, request.config)
    outside_release(out_dir, release, "--out")
    if request.resume:
        check_resumable(out_dir)  # a cut last.pt is refused now, not after the cache is built
    torch.manual_seed(train_config.seed)
    model = build_model(request.model, model_config)
    pretrained = [report.record() for report in load_pretrained(model, request)]  # before the cache: fails fast
    if on_info and world.is_main:
        for line in initialisation_lines(pretrained):
            on_info(line)
    cache_dir = None
    if request.use_cache:
        cache_dir = cache_folder(release.folder, CacheSettings())
        if world.is_main:
            prepare_cache(release.folder, request.variant, ("train", "val"), executor, on_cache_progress, on_warning)
        if world.distributed:
            torch.distributed.barrier()
    datasets = {
        split: ReleaseDataset.for_model(release.folder, request.variant, split, model_config, train=split == "train",
                                        cache_dir=cache_dir, seed=train_config.seed)
        for split in ("train", "val")
    }  # fmt: skip
    if len(datasets["train"]) == 0 or len(datasets["val"]) == 0:
        raise ValueError(f"{release.folder}: variant {request.variant!r} has an empty train or val split")
    metadata = {
        **model_record(request.model, model_config, release.classes),
        "config_name": request.config,
        "variant": request.variant,
        "release": {"name": release.name, "version": release.version, "folder": str(release.folder)},
        "cache_recipe": CacheSettings().recipe if request.use_cache else None,
        "weights": str(request.weights) if request.weights else None,
        "pretrained": pretrained,
    }
    history = train(model, datasets["train"], datasets["val"], train_config, out_dir, classes=release.classes,
                    class_polarity=release.class_polarity, device=request.device, resume=request.resume,
                    on_epoch=on_epoch, on_step=on_step, metadata=metadata, world=world)  # fmt: skip
    return out_dir, history


#: What an evaluation reads from a checkpoint, besides the model (`baselines.checkpoint.load_model`).
CHECKPOINT_KEYS = ("variant", "epoch", "train_config")


@dataclass
class Evaluation:
    metrics: dict
    out_dir: Path
    files: dict[str, Path]  # name -> where it was written


def evaluate_release(
    checkpoint: Path,
    release_dir: Path,
    split: str = "test",
    *,
    variant: str | None = None,
    out_dir: Path | None = None,
    device: str = "cpu",
    use_cache: bool = True,
    batch_size: int = 8,
    num_workers: int | None = None,
    executor: Executor | None = None,
    on_cache_progress=None,
    on_warning: Callable[[str], None] | None = None,
) -> Evaluation:
    """Evaluate `checkpoint` on one split of a release (centre sampling): `metrics.json`, `confusion.csv`,
    `confusion.png` and `predictions.csv` (one row per video, with class probabilities) in `out_dir` (default:
    `RUN/eval-<variant>-<split>/` beside the checkpoint). The release is only read: a test result enters a release
    card as a new release version (`emotions_data.release_baseline.record_baseline`). `on_warning` hears of
    damaged cache files (rebuilt).

    Raises `ValueError` for a checkpoint that cannot be used (missing, truncated, damaged, not ours, another
    taxonomy), a release without that variant or split, a release file read here that no longer matches the
    release's `SHA256SUMS` (`check_release_files`), an `out_dir` inside the release (`outside_release`), impossible
    `batch_size`/`num_workers`, or a video that cannot be cached; no evaluation file is written then.
    `num_workers` defaults to `default_loader_workers()`."""
    num_workers = default_loader_workers() if num_workers is None else num_workers
    if batch_size < 1 or num_workers < 0:
        raise ValueError(f"batch_size must be >= 1 and num_workers >= 0 (got {batch_size}, {num_workers})")
    model, state = load_model(checkpoint, device, CHECKPOINT_KEYS)
    release = read_release(release_dir)
    variant = variant or state["variant"]
    release.check(variant, split)
    check_release_files(release.folder, variant, (split,))
    out_dir = Path(out_dir) if out_dir else Path(checkpoint).resolve().parent / f"eval-{variant}-{split}"
    outside_release(out_dir, release, "--out (or keep the checkpoint outside the release)")
    if list(state["classes"]) != release.classes:
        raise ValueError(f"{checkpoint}: trained on classes {state['classes']}, the release has {release.classes}")
    cfg = model.cfg
    cache_dir = None
    if use_cache:
        cache_dir = prepare_cache(release.folder, variant, (split,), executor, on_cache_progress, on_warning)
    dataset = ReleaseDataset.for_model(release.folder, variant, split, cfg, cache_dir=cache_dir)
    if len(dataset) == 0:
        raise ValueError(f"{release.folder}: variant {variant!r} has no {split} rows")
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers, pin_memory=device.startswith("cuda"))
    pred = predict(model, loader, torch.device(device))
    classes = release.classes
    metrics = prediction_metrics(pred, classes, release.class_polarity)
    history = state.get("history") or []
    chosen = history[state["epoch"]] if len(history) > state["epoch"] else {}
    metrics["run"] = {
        "checkpoint": str(Path(checkpoint).resolve()), "config": state.get("config_name"),
        "release": f"{release.name} {release.version}", "variant": variant, "split": split,
        "epoch": int(state["epoch"]) + 1, "epochs": state["train_config"]["epochs"],
        "val_accuracy": chosen.get("val", {}).get("accuracy"), "train_accuracy": chosen.get("train_accuracy"),
        "classes": classes, "model": state["model_name"], "pretrained": state.get("pretrained"),
    }  # fmt: skip
    files = evaluation_files(metrics, list(dataset.rows["video_id"]), pred, classes)
    paths = {}
    for name, data in files.items():
        write_bytes_atomic(out_dir / name, data)
        paths[name] = out_dir / name
    return Evaluation(metrics, out_dir, paths)


def evaluation_files(
    metrics: dict, video_ids: list[str], pred: dict[str, np.ndarray], classes: list[str]
) -> dict[str, bytes]:
    """The evaluation's files, name -> bytes."""
    cm = np.asarray(metrics["confusion_matrix"])
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["true \\ predicted", *classes])
    writer.writerows([classes[i], *map(int, row)] for i, row in enumerate(cm))
    predictions = io.StringIO()
    writer = csv.writer(predictions, lineterminator="\n")
    writer.writerow(["video_id", "label", "predicted", "audio_predicted", "visual_predicted",
                     *(f"p_{c}" for c in classes)])  # fmt: skip
    for i, video_id in enumerate(video_ids):
        writer.writerow([video_id, classes[pred["label"][i]], classes[pred["probs"][i].argmax()],
                         classes[pred["audio_probs"][i].argmax()], classes[pred["visual_probs"][i].argmax()],
                         *(f"{p:.6f}" for p in pred["probs"][i])])  # fmt: skip
    return {
        "metrics.json": (json.dumps(metrics, indent=2) + "\n").encode(),
        "confusion.csv": table.getvalue().encode(),
        "confusion.png": confusion_png(cm, classes),
        "predictions.csv": predictions.getvalue().encode(),
    }
