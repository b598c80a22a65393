"""Out-of-fold predictions of the baseline over a dataset's labelled items: k models, each trained on k-1 folds.

The folds are the dataset's (`emotions_data.suspects.group_folds`: stratified, whole leakage groups per fold). Fold
i's model trains on the other folds and predicts fold i once, with its final weights: it never trains on the items
it scores, and no checkpoint is chosen on them (their accuracy per epoch is only printed). The folds are written as
the variants `fold-<i>` of a working release-shaped folder, `DATASET/.work/validate/` (train = the other folds, val =
fold i), so the training loop and the data pipeline are the ones `emotions train` uses, on the dataset's media and
preprocessing cache.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from baselines.cache import CacheSettings, build_release_cache
from baselines.checkpoint import model_record
from baselines.data import ReleaseDataset, default_loader_workers
from baselines.loss import polarity_index
from baselines.recipes import TrainRequest, check_initialisation, configs_of, load_pretrained, train_config_of
from baselines.registry import build_model
from baselines.train import EpochResult, predict, train
from emotions_data.executor import Executor, SerialExecutor
from emotions_data.layout import DatasetLayout, ReleaseLayout
from emotions_data.suspects import group_folds
from emotions_data.taxonomy import Taxonomy


@dataclass
class CrossValidation:
    """What `cross_validate` returns: `items` (video_id, label, label_index, fold) in the order of `probs` (n, K),
    the out-of-fold class probabilities; `fold_accuracy`: fold -> accuracy of its model on its own fold; `trained_on`:
    fold -> the video ids its model trained on (as its data loader read them). A fold the assignment left empty (a
    dataset with fewer items of each class than folds) has no model and no entry."""

    items: pd.DataFrame
    probs: np.ndarray
    classes: list[str]
    fold_accuracy: dict[int, float] = field(default_factory=dict)
    trained_on: dict[int, list[str]] = field(default_factory=dict)


def validation_folder(layout: DatasetLayout) -> Path:
    """`DATASET/.work/validate/`: the folds as a release-shaped working folder (remade by every run)."""
    return layout.work / "validate"


def _write_folds(layout: DatasetLayout, items: pd.DataFrame, k: int) -> ReleaseLayout:
    folder = ReleaseLayout(validation_folder(layout))
    shutil.rmtree(folder.root, ignore_errors=True)
    for i in range(k):
        for split, part in (("train", items[items["fold"] != i]), ("val", items[items["fold"] == i])):
            path = folder.data_file(f"fold-{i}", split)
            path.parent.mkdir(parents=True, exist_ok=True)
            part.sort_values("video_id").to_parquet(path, index=False)
    return folder


def fold_items(layout: DatasetLayout, taxonomy: Taxonomy, k: int, seed: int) -> pd.DataFrame:
    """The labelled items with their fold, class index and media checksum. Raises ValueError naming the labels
    file for a label outside `taxonomy`, or as `group_folds` does."""
    items = group_folds(layout, k, seed)
    unknown = sorted({lab for lab in items["label"] if taxonomy.lookup(lab) is None})
    if unknown:
        raise ValueError(f"{layout.labels}: label(s) outside the {taxonomy.name} taxonomy: {', '.join(unknown)}")
    videos = pd.read_parquet(layout.videos_manifest, columns=["video_id", "media_sha256"])
    items = items.merge(videos, on="video_id", how="left")
    return items.assign(label_index=items["label"].map(taxonomy.index).astype(int))


def cross_validate(
    dataset: Path,
    request: TrainRequest,
    taxonomy: Taxonomy,
    *,
    k: int = 5,
    seed: int = 0,
    executor: Executor | None = None,
    on_fold: Callable[[int, float], None] | None = None,
    on_epoch: Callable[[EpochResult], None] | None = None,
) -> CrossValidation:
    """Train `request`'s configuration (its `release_dir` is ignored) k times over the group-aware folds of the
    dataset and collect out-of-fold probabilities (see the module docstring). `on_fold(i, accuracy)` hears of each
    finished fold. Raises ValueError: fewer labelled items than folds, an impossible training request, a `paper`
    run without weights, a video that cannot be cached."""
    check_initialisation(request)
    layout = DatasetLayout(dataset)
    items = fold_items(layout, taxonomy, k, seed)
    classes = list(taxonomy.classes)
    folder = _write_folds(layout, items, k)
    model_config, train_config = configs_of(request.config, len(classes))
    workers = default_loader_workers() if request.num_workers is None else request.num_workers
    train_config = train_config_of(replace(request, num_workers=workers), train_config)
    cache_dir = layout.baseline_cache / CacheSettings().recipe if request.use_cache else None
    if cache_dir is not None:
        # The folds' folder is this run's own working copy, not a published release: it has no SHA256SUMS to check.
        report = build_release_cache(folder.root, CacheSettings(), executor or SerialExecutor(), variant="fold-0",
                                     cache_dir=cache_dir, media_dir=layout.media, check_files=False)  # fmt: skip
        if report.failed:
            raise ValueError(f"{len(report.failed)} video(s) could not be cached, e.g. {report.failed[0].video_id}: "
                             f"{report.failed[0].error}")  # fmt: skip
    result = CrossValidation(items.drop(columns=["media_sha256", "group"]), np.zeros((len(items), len(classes))),
                             classes)  # fmt: skip
    polarity = polarity_index(classes, dict(taxonomy.polarity))
    for i in range(k):
        if not (items["fold"] == i).any():  # fewer items of every class than folds: this fold holds none
            continue
        train_set, held = (
            ReleaseDataset.for_model(folder.root, f"fold-{i}", split, model_config, train=split == "train",
                                     media_dir=layout.media, cache_dir=cache_dir, seed=train_config.seed)
            for split in ("train", "val")
        )  # fmt: skip
        torch.manual_seed(train_config.seed + i)
        model = build_model(request.model, model_config)
        load_pretrained(model, request)
        run_dir = folder.root / "runs" / f"fold-{i}"
        train(model, train_set, held, train_config, run_dir, classes=classes, class_polarity=polarity,
              device=request.device, resume=False, on_epoch=on_epoch,
              metadata=model_record(request.model, model_config, classes))  # fmt: skip
        shutil.rmtree(run_dir, ignore_errors=True)  # only the predictions are kept
        loader = DataLoader(held, batch_size=train_config.batch_size, num_workers=0)
        pred = predict(model, loader, torch.device(request.device))
        rows = result.items.index[result.items["video_id"].isin(held.rows["video_id"])]
        order = pd.Series(range(len(held)), index=held.rows["video_id"].astype(str).tolist())
        result.probs[rows] = pred["probs"][order[result.items.loc[rows, "video_id"]].to_numpy()]
        result.trained_on[i] = list(train_set.rows["video_id"].astype(str))
        result.fold_accuracy[i] = float(np.mean(pred["probs"].argmax(1) == pred["label"]))
        if on_fold:
            on_fold(i, result.fold_accuracy[i])
    return result
