"""AV-CANet: the eMotions audio-visual baseline (visual and audio branches, Local-Global Fusion, split heads).

Follows the reference notes (``shared/reference/emotions-paper.md``, "The baseline: AV-CANet"). Device-agnostic:
nothing here names a device; masks are built on the device of their input. Weights are never downloaded: the
visual backbone starts random unless :func:`baselines.weights.load_visual_weights` is given a local state-dict
file.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import resnet34
from torchvision.models.video.swin_transformer import SwinTransformer3d

SWIN_DIM = 768  # Video Swin-T output width (8 * C, C = 96)
RESNET_DIM = 512  # ResNet-34 output width


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
    fusion_dropout: float = 0.1
    dropout: float = 0.5
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

    @classmethod
    def paper(cls, **overrides: object) -> ModelConfig:
        """The published configuration (unpublished fusion sizes at the notes' suggested values)."""
        return replace(cls(), **overrides)

    @classmethod
    def tiny(cls, **overrides: object) -> ModelConfig:
        """Small backbones and fusion for CPU runs and tests; same input layout as the paper."""
        base = cls(
            embed=64,
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


class TinyVideoBackbone(nn.Module):
    """A small 3-D conv stack standing in for Video Swin-T: (N, 3, T, H, W) -> (N, T', H', W', C), channels last."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.out_dim = width
        self.net = nn.Sequential(
            nn.Conv3d(3, width // 2, kernel_size=(3, 7, 7), stride=(1, 4, 4), padding=(1, 3, 3), bias=False),
            nn.BatchNorm3d(width // 2),
            nn.ReLU(inplace=True),
            nn.Conv3d(width // 2, width, kernel_size=3, stride=2, padding=1, bias=False),
            nn.BatchNorm3d(width),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).permute(0, 2, 3, 4, 1)


def build_swin3d_t(drop_path: float) -> SwinTransformer3d:
    """Video Swin-T without its head: patch (2,4,4), C=96, depths [2,2,6,2], heads [3,6,12,24], window (8,7,7).

    These equal torchvision's ``swin3d_t`` (whose builder hard-codes stochastic depth 0.1, so the class is built
    directly to make ``drop_path`` a setting). Random init; nothing is downloaded.
    """
    model = SwinTransformer3d(
        patch_size=[2, 4, 4],
        embed_dim=96,
        depths=[2, 2, 6, 2],
        num_heads=[3, 6, 12, 24],
        window_size=[8, 7, 7],
        stochastic_depth_prob=drop_path,
    )
    model.head = nn.Identity()
    return model


class VisualBranch(nn.Module):
    """Snippets (B, S, 3, T, H, W) -> per-snippet backbone features -> (B, S, embed)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.visual_backbone == "swin3d_t":
            self.backbone: nn.Module = build_swin3d_t(cfg.drop_path)
            feat = SWIN_DIM
        elif cfg.visual_backbone == "tiny":
            self.backbone = TinyVideoBackbone(cfg.tiny_visual_width)
            feat = cfg.tiny_visual_width
        else:
            raise ValueError(f"unknown visual_backbone {cfg.visual_backbone!r}")
        self.feat_dim = feat
        self.dropout = nn.Dropout(cfg.dropout)
        self.proj = nn.Linear(feat, cfg.embed)

    def features(self, x: Tensor) -> Tensor:
        """(N, 3, T, H, W) -> (N, T', H', W', C): the backbone up to its final norm, before pooling."""
        if isinstance(self.backbone, SwinTransformer3d):
            b = self.backbone
            return b.norm(b.features(b.pos_drop(b.patch_embed(x))))
        return self.backbone(x)

    def forward(self, video: Tensor) -> Tensor:
        if video.dim() != 6 or video.shape[2] != 3:
            raise ValueError(f"video must be (B, S, 3, T, H, W), got {tuple(video.shape)}")
        b, s = video.shape[:2]
        f = self.features(video.flatten(0, 1))  # (B*S, T', H', W', C)
        f = self.dropout(f.mean(dim=(2, 3)))  # spatial average pool, then dropout: (B*S, T', C)
        f = f.mean(dim=1)  # mean over time: (B*S, C)
        return self.proj(f.view(b, s, -1))


class TinyAudioBackbone(nn.Module):
    """A small 2-D conv stack standing in for ResNet-34: (N, 1, frames, mfcc) -> (N, C)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.out_dim = width
        self.net = nn.Sequential(
            nn.Conv2d(1, width // 2, kernel_size=(7, 1), stride=(2, 1), padding=(3, 0), bias=False),
            nn.BatchNorm2d(width // 2),
            nn.ReLU(inplace=True),
            nn.Conv2d(width // 2, width, kernel_size=3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def build_audio_resnet34() -> nn.Module:
    """torchvision ResNet-34 (random init), 1-channel conv1 with kernel (7,1), stride (2,1), no fc: -> (N, 512)."""
    model = resnet34()
    model.conv1 = nn.Conv2d(1, 64, kernel_size=(7, 1), stride=(2, 1), padding=(3, 0), bias=False)
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    model.fc = nn.Identity()
    return model


class AudioBranch(nn.Module):
    """MFCC chunks (B, S, frames, mfcc) -> per-chunk CNN -> Linear + BatchNorm1d + Tanh -> (B, S, embed)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.audio_backbone == "resnet34":
            self.backbone: nn.Module = build_audio_resnet34()
            feat = RESNET_DIM
        elif cfg.audio_backbone == "tiny":
            self.backbone = TinyAudioBackbone(cfg.tiny_audio_width)
            feat = cfg.tiny_audio_width
        else:
            raise ValueError(f"unknown audio_backbone {cfg.audio_backbone!r}")
        self.feat_dim = feat
        self.proj = nn.Linear(feat, cfg.embed)
        self.norm = nn.BatchNorm1d(cfg.embed)

    def forward(self, audio: Tensor) -> Tensor:
        if audio.dim() != 4:
            raise ValueError(f"audio must be (B, S, frames, mfcc), got {tuple(audio.shape)}")
        b, s = audio.shape[:2]
        f = self.backbone(audio.flatten(0, 1).unsqueeze(1))  # (B*S, feat)
        return torch.tanh(self.norm(self.proj(f))).view(b, s, -1)


def banded_mask(steps: int, band: int, device: torch.device | None = None) -> Tensor:
    """Boolean attention mask (True = blocked) letting step i attend only to steps j with |i - j| <= band."""
    idx = torch.arange(steps, device=device)
    return (idx[:, None] - idx[None, :]).abs() > band


class TemporalConvBlock(nn.Module):
    """Dilated temporal conv block on (B, S, E): Conv1d (dilation d) -> GELU -> dropout -> Conv1d 1x1, residual."""

    def __init__(self, dim: int, kernel: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2)
        self.mix = nn.Conv1d(dim, dim, 1)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        h = self.mix(self.dropout(F.gelu(self.conv(x.transpose(1, 2)))))
        return self.norm(x + h.transpose(1, 2))


class PyramidLevel(nn.Module):
    """One level of the multimodal pyramid attention: banded self- and shared cross-attention, gates, dilated TCN."""

    def __init__(self, cfg: ModelConfig, level: int) -> None:
        super().__init__()
        e, h, p = cfg.embed, cfg.local_heads, cfg.fusion_dropout
        self.band = cfg.band(level)
        self.self_a = nn.MultiheadAttention(e, h, dropout=p, batch_first=True)
        self.self_v = nn.MultiheadAttention(e, h, dropout=p, batch_first=True)
        self.cross = nn.MultiheadAttention(e, h, dropout=p, batch_first=True)  # shared: a<-v and v<-a
        self.gate_a = nn.Linear(3 * e, 2 * e)
        self.gate_v = nn.Linear(3 * e, 2 * e)
        self.norm_a = nn.LayerNorm(e)
        self.norm_v = nn.LayerNorm(e)
        self.tcn_a = TemporalConvBlock(e, cfg.tcn_kernel, 2**level, p)
        self.tcn_v = TemporalConvBlock(e, cfg.tcn_kernel, 2**level, p)

    @staticmethod
    def _gated(x: Tensor, s: Tensor, c: Tensor, gate: nn.Linear, norm: nn.LayerNorm) -> Tensor:
        g_s, g_c = torch.sigmoid(gate(torch.cat([x, s, c], dim=-1))).chunk(2, dim=-1)
        return norm(x + g_s * s + g_c * c)

    def forward(self, a: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        mask = banded_mask(a.shape[1], self.band, device=a.device)
        s_a = self.self_a(a, a, a, attn_mask=mask, need_weights=False)[0]
        s_v = self.self_v(v, v, v, attn_mask=mask, need_weights=False)[0]
        c_a = self.cross(a, v, v, attn_mask=mask, need_weights=False)[0]  # audio attends to video
        c_v = self.cross(v, a, a, attn_mask=mask, need_weights=False)[0]  # video attends to audio
        a = self._gated(a, s_a, c_a, self.gate_a, self.norm_a)
        v = self._gated(v, s_v, c_v, self.gate_v, self.norm_v)
        return self.tcn_a(a), self.tcn_v(v)


class GlobalCrossAttention(nn.Module):
    """Bidirectional cross-attention (a<-v, v<-a) with residual + LayerNorm, then an FFN with residual + LayerNorm."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        e, h, p = cfg.embed, cfg.global_heads, cfg.fusion_dropout
        self.a_from_v = nn.MultiheadAttention(e, h, dropout=p, batch_first=True)
        self.v_from_a = nn.MultiheadAttention(e, h, dropout=p, batch_first=True)
        self.norm_a1, self.norm_v1 = nn.LayerNorm(e), nn.LayerNorm(e)
        self.norm_a2, self.norm_v2 = nn.LayerNorm(e), nn.LayerNorm(e)
        self.ffn_a = nn.Sequential(nn.Linear(e, cfg.ffn), nn.GELU(), nn.Dropout(p), nn.Linear(cfg.ffn, e))
        self.ffn_v = nn.Sequential(nn.Linear(e, cfg.ffn), nn.GELU(), nn.Dropout(p), nn.Linear(cfg.ffn, e))

    def forward(self, a: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        a2 = self.norm_a1(a + self.a_from_v(a, v, v, need_weights=False)[0])
        v2 = self.norm_v1(v + self.v_from_a(v, a, a, need_weights=False)[0])
        return self.norm_a2(a2 + self.ffn_a(a2)), self.norm_v2(v2 + self.ffn_v(v2))


class LocalGlobalFusion(nn.Module):
    """Local stage (pyramid levels, cross-modal level weights) then global stage; (B, S, E) x2 -> (B, E) x2."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.levels = nn.ModuleList(PyramidLevel(cfg, level) for level in range(cfg.pyramid_levels))
        # one score per level from the pooled audio and video features together; softmax over levels, shared by both
        self.level_score = nn.Sequential(nn.Linear(2 * cfg.embed, cfg.embed), nn.Tanh(), nn.Linear(cfg.embed, 1))
        self.global_stage = GlobalCrossAttention(cfg)

    def local(self, a: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The local stage: (a, v) each (B, S, E) and the level weights (B, levels)."""
        outs_a, outs_v = [], []
        for level in self.levels:
            a, v = level(a, v)
            outs_a.append(a)
            outs_v.append(v)
        stack_a, stack_v = torch.stack(outs_a, 1), torch.stack(outs_v, 1)  # (B, L, S, E)
        pooled = torch.cat([stack_a.mean(2), stack_v.mean(2)], dim=-1)  # (B, L, 2E)
        weights = self.level_score(pooled).squeeze(-1).softmax(dim=1)  # (B, L)
        w = weights[:, :, None, None]
        return (w * stack_a).sum(1), (w * stack_v).sum(1), weights

    def forward(self, a: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        a, v, _ = self.local(a, v)
        a, v = self.global_stage(a, v)
        return a.mean(1), v.mean(1)


class AVCANet(nn.Module):
    """The full model: forward(video, audio) -> {"logits", "audio_logits", "visual_logits"}, each (B, n_classes).

    The audio and visual heads reuse the two halves of the fused head's weight matrix with half its bias each, so
    ``logits == audio_logits + visual_logits``.
    """

    def __init__(self, cfg: ModelConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or ModelConfig.paper()
        self.visual = VisualBranch(cfg)
        self.audio = AudioBranch(cfg)
        self.fusion = LocalGlobalFusion(cfg)
        self.head = nn.Linear(2 * cfg.embed, cfg.n_classes)

    def forward(self, video: Tensor, audio: Tensor) -> dict[str, Tensor]:
        v = self.visual(video)
        a = self.audio(audio)
        if a.shape[:2] != v.shape[:2]:
            raise ValueError(f"audio {tuple(a.shape[:2])} and video {tuple(v.shape[:2])} disagree on (B, S)")
        a, v = self.fusion(a, v)
        e = self.cfg.embed
        w, b = self.head.weight, self.head.bias
        return {
            "logits": self.head(torch.cat([a, v], dim=-1)),
            "audio_logits": F.linear(a, w[:, :e], b / 2),
            "visual_logits": F.linear(v, w[:, e:], b / 2),
        }
