"""AV-CANet: the eMotions audio-visual baseline (visual and audio branches, Local-Global Fusion, split heads).

Follows the paper (AV-CANet, arXiv 2508.06902) and the authors' released code (XuecWu/eMotions, AV-CANet/); the
fusion is in :mod:`baselines.fusion` (the authors') and :mod:`baselines.fusion_softmax` (a variant). Device-agnostic:
nothing here names a device; masks are built on the device of their input. Weights are never downloaded: the
backbones start random unless :mod:`baselines.weights` loads a local state-dict file into them.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import resnet34
from torchvision.models.video.swin_transformer import SwinTransformer3d

from baselines.config import ModelConfig
from baselines.fusion import LocalGlobalFusion, PyramidLevel, banded_mask

__all__ = ["AVCANet", "AudioBranch", "LocalGlobalFusion", "ModelConfig", "PyramidLevel", "VisualBranch", "banded_mask"]

SWIN_DIM = 768  # Video Swin-T output width (8 * C, C = 96)
RESNET_DIM = 512  # ResNet-34 output width


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


class AVCANet(nn.Module):
    """The full model: forward(video, audio) -> {"logits", "audio_logits", "visual_logits"}, each (B, n_classes).

    The audio and visual heads reuse the two halves of the fused head's weight matrix with half its bias each, so
    ``logits == audio_logits + visual_logits``. ``fusion`` builds the fusion stage from the configuration
    (default: the authors', :class:`baselines.fusion.LocalGlobalFusion`); it maps (a, v) (B, S, E) to (B, E) each.
    """

    def __init__(
        self, cfg: ModelConfig | None = None, fusion: Callable[[ModelConfig], nn.Module] = LocalGlobalFusion
    ) -> None:
        super().__init__()
        self.cfg = cfg = cfg or ModelConfig.paper()
        self.visual = VisualBranch(cfg)
        self.audio = AudioBranch(cfg)
        self.fusion = fusion(cfg)
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
