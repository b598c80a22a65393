"""The baseline models, registered in one place, and the contract they keep.

A model is built from a :class:`~baselines.config.ModelConfig` by ``build(cfg)``; it is an ``nn.Module`` with
``cfg`` (its configuration), ``visual.backbone`` and ``audio.backbone`` (where pretrained weights go) and
``forward(video (B, S, 3, T, H, W), audio (B, S, frames, mfcc)) -> {"logits", "audio_logits", "visual_logits"}``,
each (B, n_classes). A checkpoint records the model's registered name, its configuration, the classes and the
preprocessing (:func:`preprocessing`), so reading it back needs nothing else (:func:`baselines.checkpoint.load_model`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Protocol

from torch import Tensor, nn

from baselines.audio import AudioConfig
from baselines.config import ModelConfig
from baselines.fusion_softmax import SoftmaxLevelsFusion
from baselines.model import AVCANet

DEFAULT_MODEL = "avcanet"
#: The model of checkpoints written before checkpoints named their model (they all used this fusion).
UNNAMED_CHECKPOINT_MODEL = "avcanet-softmax-levels"


class BaselineModel(Protocol):
    """What every registered model offers (see the module docstring)."""

    cfg: ModelConfig
    visual: nn.Module
    audio: nn.Module

    def __call__(self, video: Tensor, audio: Tensor) -> dict[str, Tensor]: ...


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its name, one line saying what it is, and how it is built from a configuration."""

    name: str
    description: str
    build: Callable[[ModelConfig], nn.Module]


MODELS: dict[str, ModelSpec] = {}


def register_model(name: str, description: str, build: Callable[[ModelConfig], nn.Module]) -> ModelSpec:
    """Add a model under ``name``. Raises ``ValueError`` when the name is taken."""
    if name in MODELS:
        raise ValueError(f"model {name!r} is already registered")
    MODELS[name] = spec = ModelSpec(name, description, build)
    return spec


def model_spec(name: str) -> ModelSpec:
    """The registered model ``name``. Raises ``ValueError`` naming the choices when there is none."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r} (choose: {', '.join(MODELS)})")
    return MODELS[name]


def build_model(name: str, cfg: ModelConfig) -> nn.Module:
    """A freshly initialised model ``name`` of configuration ``cfg`` (``ValueError`` for an unknown name)."""
    return model_spec(name).build(cfg)


def preprocessing(cfg: ModelConfig) -> dict:
    """What the data pipeline must do for a model of configuration ``cfg``, as recorded in its checkpoints: snippet
    layout, crop, pixel scale (``x/255 − 100/255``, the authors' ``NORM_VALUE`` and ``MEAN``), MFCC settings and
    length, and the evaluation sampling."""
    return {
        "segments": cfg.segments,
        "frames_per_segment": cfg.frames_per_segment,
        "crop": cfg.crop,
        "pixels": "rgb / 255 - 100 / 255",
        "audio": asdict(AudioConfig()),
        "audio_frames": cfg.audio_frames,
        "evaluation_sampling": "centre crop of the largest square, centred snippets",
    }


register_model(
    "avcanet",
    "AV-CANet with the authors' Local-Global Fusion (per-step, per-modality level weights; one shared global "
    "attention with Linear + residual)",
    AVCANet,
)
register_model(
    "avcanet-softmax-levels",
    "AV-CANet with a softmax over pyramid levels per clip shared by both modalities, bare local attention, two "
    "global attention modules with LayerNorm and FFN (the project's first reading of the paper)",
    lambda cfg: AVCANet(cfg, fusion=SoftmaxLevelsFusion),
)
