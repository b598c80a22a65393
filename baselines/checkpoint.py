"""Checkpoints of the baseline: checked before they are trusted, written atomically, and self-describing.

A checkpoint written by :func:`baselines.train.train` is a torch archive of a dict: the weights (``"model"``), the
optimiser, scheduler and RNG states, the epoch history, and what :func:`model_record` gives (the registered model
name, its configuration, the classes and the preprocessing). :func:`load_model` rebuilds the model from the file
alone, like torchvision's weights objects carry their transforms.
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path

import torch
from torch import nn

from baselines.config import ModelConfig
from baselines.registry import UNNAMED_CHECKPOINT_MODEL, model_spec, preprocessing
from emotions_data.storage import atomic_path

RESTART_HINT = "nothing was changed: add --restart to the command to start the run over"
_ZIP_MAGIC = b"PK\x03\x04"  # torch.save writes a zip archive


def archive_problem(path: Path, *, verify: bool = True) -> tuple[str, str] | None:
    """What is wrong with `path` as a torch archive (the zip file `torch.save` writes), as (what, detail): what is
    "truncated", "damaged" or "foreign" (not a zip archive at all). None when it is whole. Cheap: its first bytes
    and its zip end record; with `verify`, every member against its CRC-32 too (one read of the file; torch itself
    reads a damaged tensor without noticing). Raises `OSError` when it cannot be read."""
    with open(path, "rb") as handle:
        magic = handle.read(len(_ZIP_MAGIC))
    if magic != _ZIP_MAGIC:
        if _ZIP_MAGIC.startswith(magic):  # empty, or cut within the first bytes
            return "truncated", f"{len(magic)} bytes"
        return "foreign", "not a torch archive"
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip() if verify else None
    except zipfile.BadZipFile:
        return "truncated", "its archive has no end record"
    except (EOFError, zipfile.LargeZipFile, RuntimeError, ValueError) as exc:  # zlib and zipfile on broken members
        return "damaged", str(exc)
    return ("damaged", f"{bad} fails its CRC check") if bad is not None else None


def check_checkpoint(path: Path, *, verify: bool = True) -> None:
    """Check that `path` is a whole torch archive (`archive_problem`).

    Raises `ValueError` naming `path` when it is missing, truncated, damaged or not a torch archive, `OSError` when
    it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such checkpoint")
    problem = archive_problem(path, verify=verify)
    if problem is None:
        return
    what, detail = problem
    if what == "foreign":
        raise ValueError(f"{path}: not a checkpoint of `emotions train` ({detail})")
    raise ValueError(f"{path}: {what} checkpoint ({detail})")


def read_checkpoint(path: Path, required: Sequence[str] = (), map_location: str | torch.device = "cpu") -> dict:
    """A checkpoint written by `train`, checked before it is trusted (`check_checkpoint`), holding a dict with the
    `required` keys.

    Raises `ValueError` naming `path` when it is missing, truncated, damaged or not such a checkpoint, `OSError`
    when it cannot be read."""
    check_checkpoint(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # an unpickler fails in many ways on archives that are not ours
        detail = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"{path}: not a checkpoint of `emotions train` ({detail})") from None
    missing = [key for key in required if not isinstance(state, dict) or key not in state]
    if missing:
        raise ValueError(f"{path}: not a checkpoint of `emotions train` (no {', '.join(missing)})")
    return state


def check_resumable(out_dir: Path) -> None:
    """Refuse, before any costly set-up, a run folder whose `last.pt` is cut or not a checkpoint (the cheap checks
    of `check_checkpoint`; `train` reads it in full). Raises `ValueError` naming the file and how to restart."""
    last = Path(out_dir) / "last.pt"
    if last.exists():
        try:
            check_checkpoint(last, verify=False)
        except ValueError as exc:
            raise ValueError(f"{exc}; cannot resume from it, {RESTART_HINT}") from None


def save_checkpoint(state: dict, path: Path) -> None:
    """Write a checkpoint atomically (the old file or the new one, never a torn one)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        # a handle, not a path: torch would name the archive inside after the temp file, a random name
        torch.save(state, handle)


def model_record(name: str, cfg: ModelConfig, classes: list[str]) -> dict:
    """What a checkpoint records about its model: ``model_name`` (registered, :mod:`baselines.registry`),
    ``model_config``, ``classes`` and ``preprocessing``. Raises ``ValueError`` for an unregistered name."""
    model_spec(name)
    return {"model_name": name, "model_config": asdict(cfg), "classes": list(classes),
            "preprocessing": preprocessing(cfg)}  # fmt: skip


#: What loading a model reads from a checkpoint, besides what `model_record` adds (older files may lack those).
MODEL_KEYS = ("model_config", "model", "classes")


def load_model(path: Path, device: str | torch.device = "cpu", required: Sequence[str] = ()) -> tuple[nn.Module, dict]:
    """The model of a checkpoint (built from its recorded name and configuration, weights loaded, on ``device``) and
    the checkpoint's other entries, with ``model_name`` and ``preprocessing`` filled in for files written before
    checkpoints recorded them (their model is ``avcanet-softmax-levels``, the only fusion there was).

    Raises ``ValueError`` naming ``path`` when it is missing, truncated, damaged, not such a checkpoint, lacks one
    of ``required``, names an unknown model, or its weights do not fit its model; ``OSError`` when unreadable."""
    state = read_checkpoint(path, (*MODEL_KEYS, *required), device)
    name = state.setdefault("model_name", UNNAMED_CHECKPOINT_MODEL)
    try:
        spec = model_spec(name)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    try:
        known = {f.name for f in fields(ModelConfig)}
        cfg = ModelConfig(**{k: v for k, v in state["model_config"].items() if k in known})
        model = spec.build(cfg)
        model.load_state_dict(state.pop("model"))
    except (RuntimeError, TypeError, ValueError) as exc:
        detail = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"{path}: not a checkpoint of `emotions train` (its weights do not fit: {detail})") from None
    state.setdefault("preprocessing", preprocessing(cfg))
    return model.to(device), state
