"""The ``avcanet-softmax-levels`` fusion: the project's first reading of AV-CANet's Local-Global Fusion, kept so that
checkpoints trained with it still load and the two fusions can be compared.

It differs from the authors' released code (:mod:`baselines.fusion`) in four places: the local attention is a bare
multi-head attention (no pre-LN, no FFN) and each gate reads [x; self; cross] with out = LN(x + g1*self + g2*cross);
the TCN uses GELU, dropout and a LayerNorm; the pyramid levels get one softmax weight per clip from the time-pooled
[audio; video] features, shared by both modalities; the global stage has two attention modules, each followed by
residual + LayerNorm and an FFN with residual + LayerNorm. All dropout is ``fusion_dropout``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.config import ModelConfig
from baselines.fusion import banded_mask, pyramid


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


class SoftmaxPyramidLevel(nn.Module):
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


class TwoWayGlobalAttention(nn.Module):
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


class SoftmaxLevelsFusion(nn.Module):
    """Local stage (pyramid levels, cross-modal level weights) then global stage; (B, S, E) x2 -> (B, E) x2."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.levels = nn.ModuleList(SoftmaxPyramidLevel(cfg, level) for level in range(cfg.pyramid_levels))
        # one score per level from the pooled audio and video features together; softmax over levels, shared by both
        self.level_score = nn.Sequential(nn.Linear(2 * cfg.embed, cfg.embed), nn.Tanh(), nn.Linear(cfg.embed, 1))
        self.global_stage = TwoWayGlobalAttention(cfg)

    def local(self, a: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The local stage: (a, v) each (B, S, E) and the level weights (B, levels)."""
        stack_a, stack_v = pyramid(self.levels, a, v, dim=1)  # (B, L, S, E)
        pooled = torch.cat([stack_a.mean(2), stack_v.mean(2)], dim=-1)  # (B, L, 2E)
        weights = self.level_score(pooled).squeeze(-1).softmax(dim=1)  # (B, L)
        w = weights[:, :, None, None]
        return (w * stack_a).sum(1), (w * stack_v).sum(1), weights

    def forward(self, a: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        a, v, _ = self.local(a, v)
        a, v = self.global_stage(a, v)
        return a.mean(1), v.mean(1)
