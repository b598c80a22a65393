"""The sizes and settings of the AV-CANet baseline, shared by the model, its fusion variants and the data pipeline."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal


@dataclass(frozen=True)
class ModelConfig:
    """Every size and setting of AV-CANet. ``paper()`` is the published model, ``tiny()`` a CPU-sized one."""

    segments: int = 16
    frames_per_segment: int = 8
    crop: int = 112
    n_classes: int = 6
    embed: int = 512
    pyramid_levels: int = 3
    ffn: int = 512
    global_heads: int = 8
    local_heads: int = 8
    local_band: int = 1  # level l attends to steps within local_band * 2**l
    tcn_kernel: int = 3
    fusion_dropout: float = 0.1  # on attention probabilities (local stage, level-score interaction)
    local_dropout: float = 0.5  # local stage: each sub-layer's output and inside its FFN
    global_dropout: float = 0.0  # global stage: on attention probabilities
    dropout: float = 0.5  # visual features after spatial pooling
    drop_path: float = 0.1
    visual_backbone: Literal["swin3d_t", "tiny"] = "swin3d_t"
    audio_backbone: Literal["resnet34", "tiny"] = "resnet34"
    tiny_visual_width: int = 32
    tiny_audio_width: int = 32
    mfcc: int = 32
    audio_frames: int = 4096

    @property
    def chunk_frames(self) -> int:
        """MFCC frames per audio chunk (4096 / 16 = 256)."""
        return self.audio_frames // self.segments

    def band(self, level: int) -> int:
        """Half-width of the attention band at pyramid level ``level``."""
        return self.local_band * 2**level

    def __post_init__(self) -> None:
        if self.audio_frames % self.segments:
            raise ValueError(f"audio_frames={self.audio_frames} is not a multiple of segments={self.segments}")
        if self.embed % self.global_heads or self.embed % self.local_heads:
            raise ValueError(f"embed={self.embed} must be divisible by global_heads and local_heads")
        if self.pyramid_levels < 1:
            raise ValueError("pyramid_levels must be >= 1")
        if self.tcn_kernel % 2 == 0:
            raise ValueError(f"tcn_kernel={self.tcn_kernel} must be odd (the TCN keeps the sequence length)")

    @classmethod
    def paper(cls, **overrides: object) -> ModelConfig:
        """The published configuration. The released code does not show the pyramid depth or the FFN width (its
        ``MMP_Module`` constructor is missing): 3 levels and 512 here."""
        return replace(cls(), **overrides)

    @classmethod
    def tiny(cls, **overrides: object) -> ModelConfig:
        """Small backbones and fusion for CPU runs and tests; same input layout as the paper. The local stage's
        dropout is 0.1, not 0.5: on a 64-wide fusion and a few dozen clips, 0.5 keeps the tiny model from learning
        within its 15 epochs."""
        base = cls(
            embed=64,
            local_dropout=0.1,
            pyramid_levels=2,
            ffn=64,
            global_heads=2,
            local_heads=2,
            visual_backbone="tiny",
            audio_backbone="tiny",
            tiny_visual_width=32,
            tiny_audio_width=32,
        )
        return replace(base, **overrides)
