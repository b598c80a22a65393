"""Training and evaluation loops of the baseline, device-agnostic.

The recipe (paper configuration): AdamW lr 1.5e-4, betas (0.9, 0.999), weight decay 0.02, batch 8
with gradient accumulation 4, 30 epochs, seed 1, EP-CE with lambdas 0.5, and the learning-rate schedule the paper
intends: the authors' YOLOX warm-cos rule per epoch (quadratic warm-up from 0.1 x lr over 1.5 epochs, cosine to
1 % of lr, the floor held for the last 1.5 epochs; `baselines.schedules`). Their released script froze the rate at
the floor instead; `lr_schedule="released"` reproduces that. The best checkpoint is chosen on the validation split
only; the test split is never seen during training. Checkpoints hold model, optimiser, scheduler and RNG states,
so a resumed run continues exactly where the interrupted one stopped.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from baselines.checkpoint import RESTART_HINT, read_checkpoint, save_checkpoint
from baselines.distributed import EpochShuffle, World, all_reduce_sum, synchronise_batch_norm
from baselines.loss import total_loss
from baselines.metrics import classification_metrics
from baselines.sampling import normalise_on_device
from baselines.schedules import ScheduleShape, schedule
from emotions_data.child_processes import loader_worker_start
from emotions_data.storage import TMP_MARK


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Rates are per optimiser step; spans in epochs. `lr_schedule` names one of
    `baselines.schedules.SCHEDULES`; `plain_ce` trains on plain cross-entropy instead of EP-CE (`lambdas` unused);
    `bf16` autocasts to bfloat16 on CUDA only (fp32 elsewhere, and everywhere when False)."""

    lr: float = 1.5e-4
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.02
    batch_size: int = 8
    accumulation: int = 4
    epochs: int = 30
    warmup_epochs: float = 1.5
    final_lr_fraction: float = 0.01
    seed: int = 1
    lambdas: tuple[float, float, float] = (0.5, 0.5, 0.5)
    plain_ce: bool = False
    num_workers: int = 0
    bf16: bool = True  # autocast on CUDA only
    lr_schedule: str = "paper"
    hold_epochs: float = 1.5  # at the floor at the end of the run (epoch schedules)

    def __post_init__(self) -> None:
        """Refuse impossible settings now, not as an empty run, a NaN or a division by zero later (`ValueError`
        naming the setting)."""
        at_least = {"epochs": 1, "batch_size": 1, "accumulation": 1, "num_workers": 0}
        for name, low in at_least.items():
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be >= {low} (got {getattr(self, name)})")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"lr must be a finite number > 0 (got {self.lr})")
        for name in ("weight_decay", "warmup_epochs", "hold_epochs"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0 (got {value})")
        if not 0 <= self.final_lr_fraction <= 1:
            raise ValueError(f"final_lr_fraction must be in [0, 1] (got {self.final_lr_fraction})")
        if len(self.lambdas) != 3 or not all(math.isfinite(x) and x >= 0 for x in self.lambdas):
            raise ValueError(f"lambdas must be three finite numbers >= 0, one per polarity (got {self.lambdas})")
        schedule(self.lr_schedule)  # ValueError naming the choices

    @classmethod
    def paper(cls) -> TrainConfig:
        return cls()

    @classmethod
    def tiny(cls) -> TrainConfig:
        """A quick CPU recipe for small models: it warms up within the first epoch (per-step schedule), where
        the paper's epoch schedule would spend a whole epoch of a 15-epoch run at a tenth of the rate."""
        return cls(lr=1e-3, batch_size=4, accumulation=1, epochs=15, warmup_epochs=1.0, weight_decay=0.01,
                   lr_schedule="per-step", hold_epochs=1.0)  # fmt: skip


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


#: What every checkpoint of `train` holds, and what resuming needs.
RESUME_KEYS = ("model", "optimizer", "scheduler", "rng", "epoch", "best", "history", "train_config")


@dataclass
class EpochResult:
    epoch: int
    train_loss: float
    train_accuracy: float
    val: dict[str, object]


def predict(model: torch.nn.Module, loader: Iterable, device: torch.device) -> dict[str, np.ndarray]:
    """Labels and class probabilities of every head over a loader."""
    model.eval()
    out: dict[str, list] = {"label": [], "probs": [], "audio_probs": [], "visual_probs": []}
    with torch.no_grad():
        for video, audio, label in loader:
            outputs = model(normalise_on_device(video, device), audio.to(device))
            out["label"].append(label.numpy())
            for key, head in (("probs", "logits"), ("audio_probs", "audio_logits"), ("visual_probs", "visual_logits")):
                out[key].append(torch.softmax(outputs[head].float(), dim=1).cpu().numpy())
    return {k: np.concatenate(v) for k, v in out.items()}


def prediction_metrics(pred: dict[str, np.ndarray], classes: list[str], class_polarity: torch.Tensor) -> dict:
    """The headline metrics of the fused head, plus the audio-only and visual-only heads' accuracy."""
    metrics = classification_metrics(pred["label"], pred["probs"].argmax(1), classes, class_polarity.numpy())
    metrics["audio_accuracy"] = float(np.mean(pred["audio_probs"].argmax(1) == pred["label"]))
    metrics["visual_accuracy"] = float(np.mean(pred["visual_probs"].argmax(1) == pred["label"]))
    return metrics


def evaluate(model, loader, device, classes: list[str], class_polarity: torch.Tensor) -> dict[str, object]:
    return prediction_metrics(predict(model, loader, device), classes, class_polarity)


@dataclass
class StepInfo:
    """What a progress bar shows after each batch (this rank's view; throughput counts all ranks)."""

    epoch: int
    batch: int
    batches: int
    loss: float
    clips_per_s: float
    data_wait: float  # share of the step time spent waiting for the loader
    elapsed_s: float  # since the epoch started
    waited_s: float  # of which waiting for the loader
    epochs: int = 0  # in the whole run


def _loader(dataset: Dataset, batch_size: int, num_workers: int, device: torch.device, seed: int,
            **kwargs) -> DataLoader:  # fmt: skip
    """A loader; with workers, their seeds come from a generator of its own. DataLoader draws a seed from the global
    RNG each time an epoch's iterator is made, except when persistent workers are reused: a resumed run, whose
    workers start again, would then draw once more than the run it continues and shift every later dropout mask.
    Without workers the draw happens every epoch in both runs alike, so the global RNG keeps serving it."""
    return DataLoader(
        dataset, batch_size=batch_size, num_workers=num_workers, pin_memory=device.type == "cuda",
        persistent_workers=num_workers > 0, prefetch_factor=4 if num_workers > 0 else None,
        generator=torch.Generator().manual_seed(seed) if num_workers > 0 else None,
        worker_init_fn=functools.partial(loader_worker_start, os.getpid()) if num_workers > 0 else None, **kwargs,
    )  # fmt: skip


def train(
    model: torch.nn.Module,
    train_set: Dataset,
    val_set: Dataset,
    config: TrainConfig,
    out_dir: Path,
    *,
    classes: list[str],
    class_polarity: torch.Tensor,
    device: torch.device | str = "cpu",
    resume: bool = True,
    stop_after_epochs: int | None = None,
    on_epoch: Callable[[EpochResult], None] | None = None,
    on_step: Callable[[StepInfo], None] | None = None,
    metadata: dict | None = None,
    world: World | None = None,
) -> list[EpochResult]:
    """Train, checkpointing every epoch to `out_dir/last.pt` and the best on validation accuracy to
    `out_dir/best.pt` (with `metadata`, e.g. the model config and the release, stored alongside). With `resume`,
    an existing `last.pt` is continued. `stop_after_epochs` ends the run early (as an interruption would).

    Under `torchrun` (`world` from `distributed.init_world`) each rank takes 1/N of every global batch of
    `config.batch_size`; gradients and batch-norm statistics are reduced over the ranks, and rank 0 validates
    and writes the checkpoints.

    The run folder is locked while training (a second run on it is refused) and a killed run's temporaries are
    swept. Raises `ValueError` naming the file when `last.pt` cannot be resumed (truncated, damaged, not ours,
    other settings): nothing is changed then."""
    world = world or World()
    out_dir = Path(out_dir)
    if config.batch_size % world.size:
        raise ValueError(f"batch size {config.batch_size} is not divisible by {world.size} processes")
    out_dir.mkdir(parents=True, exist_ok=True)
    with _run_folder_lock(out_dir) if world.is_main else contextlib.nullcontext():
        return _train(model, train_set, val_set, config, out_dir, classes=classes, class_polarity=class_polarity,
                      device=torch.device(device), resume=resume, stop_after_epochs=stop_after_epochs,
                      on_epoch=on_epoch, on_step=on_step, metadata=metadata, world=world)  # fmt: skip


@contextlib.contextmanager
def _run_folder_lock(out_dir: Path) -> Iterator[None]:
    """Hold `out_dir/.lock` (refused at once when another run holds it) and sweep the folder's temporaries: with
    the lock held, none of them is being written."""
    with open(out_dir / ".lock", "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ValueError(f"{out_dir}: another `emotions train` is using this run folder") from None
        for tmp in out_dir.glob(f"{TMP_MARK}*"):
            tmp.unlink(missing_ok=True)
        yield  # closing the file releases the lock, also when the process is killed


def _resume(last: Path, device: torch.device, config: TrainConfig) -> dict:
    """The state of `last.pt`, refused (`ValueError`, nothing changed) when unreadable or made with other settings."""
    try:
        state = read_checkpoint(last, RESUME_KEYS, device)
    except ValueError as exc:
        raise ValueError(f"{exc}; cannot resume from it, {RESTART_HINT}") from None
    changed = _changed_settings(state.get("train_config", {}), asdict(config))
    if changed:
        raise ValueError(f"{last}: made with other settings ({', '.join(changed)}); "
                         "resume with the same settings, or restart the run")  # fmt: skip
    return state


def _train(
    model: torch.nn.Module, train_set: Dataset, val_set: Dataset, config: TrainConfig, out_dir: Path, *,
    classes: list[str], class_polarity: torch.Tensor, device: torch.device, resume: bool,
    stop_after_epochs: int | None, on_epoch: Callable[[EpochResult], None] | None,
    on_step: Callable[[StepInfo], None] | None, metadata: dict | None, world: World,
) -> list[EpochResult]:  # fmt: skip
    seed_everything(config.seed)
    model.to(device)
    run = _set_up(model, train_set, val_set, config, device, world)
    last = out_dir / "last.pt"
    if resume and last.exists():
        _restore(run, last)
    if world.distributed:
        run.net = synchronise_batch_norm(model, device)
        run.net = DistributedDataParallel(run.net, device_ids=[device.index] if device.type == "cuda" else None)
    for epoch in range(run.start_epoch, config.epochs):
        if stop_after_epochs is not None and epoch >= stop_after_epochs:
            break
        if hasattr(train_set, "set_epoch"):
            train_set.set_epoch(epoch)
        run.sampler.set_epoch(epoch)
        totals = _train_epoch(run, epoch, class_polarity, on_step)
        if world.is_main:
            _end_epoch(run, epoch, totals, out_dir, classes, class_polarity, metadata, on_epoch)
        if world.distributed:
            dist.barrier()  # the next epoch (or a resume) starts after rank 0 has committed the checkpoint
    return run.history


@dataclass
class _Run:
    """What one training process carries from epoch to epoch."""

    model: torch.nn.Module
    net: torch.nn.Module  # the model, or its DDP wrapper
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    sampler: EpochShuffle
    loader: DataLoader
    val_loader: DataLoader | None  # rank 0 only
    config: TrainConfig
    device: torch.device
    world: World
    history: list[EpochResult] = field(default_factory=list)
    start_epoch: int = 0
    best: float = -1.0


def _set_up(
    model: torch.nn.Module, train_set: Dataset, val_set: Dataset, config: TrainConfig, device: torch.device,
    world: World,
) -> _Run:  # fmt: skip
    """Optimiser, loaders and the learning-rate schedule of a fresh run."""
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
    )
    sampler = EpochShuffle(len(train_set), config.seed, world.rank, world.size)
    loader = _loader(train_set, config.batch_size // world.size, config.num_workers, device, config.seed,
                     sampler=sampler, drop_last=False)  # fmt: skip
    val_loader = _loader(val_set, config.batch_size, config.num_workers, device, config.seed) if world.is_main else None
    # Every epoch steps once per `accumulation` batches, its trailing partial group included.
    shape = ScheduleShape(config.epochs, math.ceil(len(loader) / config.accumulation), config.warmup_epochs,
                          config.hold_epochs, config.final_lr_fraction, config.lr)  # fmt: skip
    rule = schedule(config.lr_schedule)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: rule.at_step(step, shape))
    return _Run(model, model, optimizer, scheduler, sampler, loader, val_loader, config, device, world)


#: Settings of runs written before they existed, as those runs trained.
_SETTINGS_BEFORE_THEY_WERE_SAVED = {"lr_schedule": "per-step"}


def _restore(run: _Run, last: Path) -> None:
    """Continue `last.pt`: model, optimiser, schedule, RNG, history. `ValueError` (nothing changed) when it
    cannot be read, was made with other settings or does not fit the model."""
    state = _resume(last, run.device, run.config)
    saved = state.get("train_config", {})
    for key, before in _SETTINGS_BEFORE_THEY_WERE_SAVED.items():
        if key not in saved and getattr(run.config, key) != before:
            raise ValueError(f"{last}: made with other settings ({key}: {before} -> {getattr(run.config, key)}); "
                             "resume with the same settings, or restart the run")  # fmt: skip
    try:
        run.model.load_state_dict(state["model"])
        run.optimizer.load_state_dict(state["optimizer"])
        run.scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        run.start_epoch, run.best = int(state["epoch"]) + 1, float(state["best"])
        run.history = [EpochResult(**h) for h in state["history"]]
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        detail = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"{last}: does not fit this run ({detail}); {RESTART_HINT}") from None


def _train_epoch(
    run: _Run, epoch: int, class_polarity: torch.Tensor, on_step: Callable[[StepInfo], None] | None
) -> list[float]:
    """One pass over this rank's share of the training set; [loss sum, correct, seen] over all ranks."""
    config, device, world = run.config, run.device, run.world
    run.net.train()
    loss_sum, correct, seen = 0.0, 0, 0
    run.optimizer.zero_grad(set_to_none=True)
    waited, started = 0.0, time.perf_counter()
    tick = started
    batches = len(run.loader)
    for i, (video, audio, label) in enumerate(run.loader):
        video = normalise_on_device(video, device)
        audio, label = audio.to(device, non_blocking=True), label.to(device, non_blocking=True)
        waited += time.perf_counter() - tick
        stepping = (i + 1) % config.accumulation == 0 or i + 1 == batches
        loss, logits = _forward_backward(run, video, audio, label, class_polarity, sync=stepping)
        if stepping:
            run.optimizer.step()
            run.scheduler.step()
            run.optimizer.zero_grad(set_to_none=True)
        loss_sum += loss * len(label)
        correct += int((logits.argmax(1) == label).sum())
        seen += len(label)
        tick = time.perf_counter()
        if on_step:
            elapsed = tick - started
            on_step(StepInfo(epoch, i + 1, batches, loss, seen * world.size / elapsed, waited / elapsed, elapsed,
                             waited, config.epochs))  # fmt: skip
    return all_reduce_sum([loss_sum, correct, seen], device, world)


def _forward_backward(
    run: _Run, video: torch.Tensor, audio: torch.Tensor, label: torch.Tensor, class_polarity: torch.Tensor, *,
    sync: bool,
) -> tuple[float, torch.Tensor]:  # fmt: skip
    """Accumulate one batch's gradient (reduced over the ranks only when `sync`); its loss and fused logits."""
    config = run.config
    use_bf16 = config.bf16 and run.device.type == "cuda"
    no_sync = run.world.distributed and not sync
    with run.net.no_sync() if no_sync else contextlib.nullcontext():  # type: ignore[operator]
        with torch.autocast(run.device.type, dtype=torch.bfloat16, enabled=use_bf16):
            outputs = run.net(video, audio)
            loss = total_loss(outputs, label, class_polarity, config.lambdas, config.plain_ce)
        (loss / config.accumulation).backward()
    return loss.item(), outputs["logits"]


def _end_epoch(
    run: _Run, epoch: int, totals: list[float], out_dir: Path, classes: list[str], class_polarity: torch.Tensor,
    metadata: dict | None, on_epoch: Callable[[EpochResult], None] | None,
) -> None:  # fmt: skip
    """Rank 0: validate, record the epoch, write `best.pt` (when better on val) and `last.pt`."""
    assert run.val_loader is not None
    loss_sum, correct, seen = totals
    val = evaluate(run.model, run.val_loader, run.device, classes, class_polarity)
    result = EpochResult(epoch, loss_sum / max(seen, 1), correct / max(seen, 1), val)
    run.history.append(result)
    state = {
        "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(), "rng": _rng_state(), "epoch": epoch,
        "best": max(run.best, float(val["accuracy"])), "history": [asdict(h) for h in run.history],
        "train_config": asdict(run.config), "classes": classes, **(metadata or {}),
    }  # fmt: skip
    # best.pt before last.pt: a run killed between the two resumes from the previous last.pt and writes
    # this best.pt again, whereas the other order would resume past an epoch whose best.pt was never saved.
    if float(val["accuracy"]) > run.best:  # chosen on validation only
        run.best = float(val["accuracy"])
        save_checkpoint(state, out_dir / "best.pt")
    save_checkpoint(state, out_dir / "last.pt")
    if on_epoch:
        on_epoch(result)


def _changed_settings(saved: dict, current: dict) -> list[str]:
    """Settings that differ between a checkpoint and this run (loader workers may change freely)."""
    return [
        f"{k}: {saved.get(k)} -> {v}"
        for k, v in current.items()
        if k != "num_workers" and k in saved and list(np.atleast_1d(saved[k])) != list(np.atleast_1d(v))
    ]
