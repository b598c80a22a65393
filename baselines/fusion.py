"""AV-CANet's Local-Global Fusion as the authors' released code computes it (XuecWu/eMotions, AV-CANet/models:
``MPAM.py``, ``Transformer.py``, ``CrossAttentionFusion_Module.py``); written afresh, not copied.

Inputs are the audio and visual step features, (B, S, E) each (S = 16 segments). Three stages:

1. **Local** (multimodal pyramid): L levels in a chain. Level l has three pre-LN Transformer layers (self-attention
   on audio, on video, and one cross layer shared by both directions) whose attention sees only steps within
   ±``band(l)`` (the authors' ``masksize`` 2·2^l), gates e1 = σ(W1[sa; ca]), e2 = σ(W2[sa; ca]) with
   out = e1·sa + e2·ca, then a TCN block (Conv1d, dilation 2^l → ReLU → 1×1 conv, residual, ReLU) per modality.
2. **Level weighting** (the authors' "semantic fusion"): for every clip, time step and modality, a score
   σ(w·x_l + b) per level, separate weights for audio and video; a small cross-modal layer lets each modality's
   level scores attend to the other's (:class:`ScoreInteraction`); the levels are summed with these weights,
   unnormalised.
3. **Global**: one attention module used both ways (audio ← video, video ← audio), a Linear per modality plus a
   residual, no LayerNorm or FFN, then the mean over the S steps.

Pieces the released code does not show, and the readings chosen here: ``attention_module`` of the global stage is
absent (its call ``(query=, key=, value=)`` on sequence-first tensors returning a pair matches
``nn.MultiheadAttention``: ``global_heads`` heads, dropout ``global_dropout`` = 0, torch's default); the
``MMP_Module`` constructor is absent (levels ``pyramid_levels`` = 3, FFN width ``ffn`` = 512, dropout 0.5 as the
module's default, 8 heads as its default).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from baselines.config import ModelConfig


def banded_mask(steps: int, band: int, device: torch.device | None = None) -> Tensor:
    """Boolean attention mask (True = blocked) letting step i attend only to steps j with |i - j| <= band."""
    idx = torch.arange(steps, device=device)
    return (idx[:, None] - idx[None, :]).abs() > band


class PreNormLayer(nn.Module):
    """Pre-LN Transformer layer: x = q + drop(attn(LN(q), k, v)); out = x + drop(FFN(LN(x))), FFN = Linear → ReLU →
    dropout → Linear. As in the authors' layer, only the query is normalised: keys and values enter as they are.

    Shapes: q (B, S, E), k and v (B, S', E) -> (B, S, E). With ``band``, query step i sees key steps within ±band.
    """

    def __init__(self, dim: int, heads: int, ffn: int, dropout: float, attn_dropout: float, band: int | None) -> None:
        super().__init__()
        self.band = band
        self.norm_attn = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, dropout=attn_dropout, batch_first=True)
        self.norm_ffn = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn), nn.ReLU(), nn.Dropout(dropout), nn.Linear(ffn, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        mask = None if self.band is None else banded_mask(q.shape[1], self.band, device=q.device)
        x = q + self.dropout(self.attn(self.norm_attn(q), k, v, attn_mask=mask, need_weights=False)[0])
        return x + self.dropout(self.ffn(self.norm_ffn(x)))


class TemporalBlock(nn.Module):
    """TCN block on (B, S, E): Conv1d (kernel k, dilation d, same length) → ReLU → Conv1d 1×1, plus the input, ReLU."""

    def __init__(self, dim: int, kernel: int, dilation: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, kernel, dilation=dilation, padding=dilation * (kernel - 1) // 2)
        self.mix = nn.Conv1d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.mix(torch.relu(self.conv(x.transpose(1, 2)))).transpose(1, 2)
        return torch.relu(x + h)


class PyramidLevel(nn.Module):
    """One pyramid level: banded self-attention per modality, one banded cross layer shared by both directions,
    gated sum e1·sa + e2·ca (e1, e2 = σ(W[sa; ca])), then a dilated TCN block. (a, v) (B, S, E) -> same shapes."""

    def __init__(self, cfg: ModelConfig, level: int) -> None:
        super().__init__()
        e = cfg.embed

        def layer() -> PreNormLayer:
            return PreNormLayer(e, cfg.local_heads, cfg.ffn, cfg.local_dropout, cfg.fusion_dropout, cfg.band(level))

        self.self_a, self.self_v, self.cross = layer(), layer(), layer()
        # one Linear(2E, 2E) is the authors' two Linear(2E, E) gates side by side
        self.gate_a = nn.Linear(2 * e, 2 * e)
        self.gate_v = nn.Linear(2 * e, 2 * e)
        self.tcn_a = TemporalBlock(e, cfg.tcn_kernel, 2**level)
        self.tcn_v = TemporalBlock(e, cfg.tcn_kernel, 2**level)

    @staticmethod
    def _gated(s: Tensor, c: Tensor, gate: nn.Linear) -> Tensor:
        e1, e2 = torch.sigmoid(gate(torch.cat([s, c], dim=-1))).chunk(2, dim=-1)
        return e1 * s + e2 * c

    def forward(self, a: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        s_a, s_v = self.self_a(a, a, a), self.self_v(v, v, v)
        c_a, c_v = self.cross(a, v, v), self.cross(v, a, a)  # audio attends to video, video to audio
        return self.tcn_a(self._gated(s_a, c_a, self.gate_a)), self.tcn_v(self._gated(s_v, c_v, self.gate_v))


class ScoreInteraction(nn.Module):
    """Lets one modality's level scores attend to the other's: (..., L, 1) x2 -> (..., L, 1), shared both ways.

    The authors use a pre-LN Transformer layer of width 1 (one head, FFN 1→1→1). A LayerNorm over one feature returns
    its bias whatever its input (x − mean = 0), so in their layer the query and the FFN's input are learned constants:
    out_i = s_i + W_o·Σ_j drop(p_ij)·(W_v t_j + b_v) + c, p_ij = softmax_j(q·(W_k t_j + b_k)). That function is kept
    with its effective parameters only (the scalar query q, the key and value projections, W_o and one offset c),
    which drops the LayerNorm scales and FFN weights that never receive a gradient.
    """

    def __init__(self, attn_dropout: float) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.empty(1).uniform_(-1.0, 1.0))  # the authors' query bias, U(-1, 1) at init
        self.key_value = nn.Linear(1, 2)
        self.out = nn.Linear(1, 1)  # its bias is the layer's constant offset
        self.dropout = nn.Dropout(attn_dropout)

    def forward(self, scores: Tensor, other: Tensor) -> Tensor:
        key, value = self.key_value(other).unbind(-1)  # (..., L) each
        probs = torch.softmax(self.query * key, dim=-1).unsqueeze(-2)  # the same for every query level
        probs = self.dropout(probs.expand(*scores.shape[:-1], key.shape[-1]))  # (..., L, L): dropped per pair
        return scores + self.out(probs @ value.unsqueeze(-1))


class LevelWeighting(nn.Module):
    """Level stacks (B, S, L, E) x2 -> weighted sums (B, S, E) x2 and the weights (B, S, L, 2) (audio, video).

    Per clip, time step and modality: score σ(Linear(E→1)) per level (separate for audio and video), then
    :class:`ScoreInteraction` each way, then Σ_l w_l·x_l without normalisation (the authors' ``SemanticFusionModule``).
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.score_a = nn.Linear(cfg.embed, 1)
        self.score_v = nn.Linear(cfg.embed, 1)
        self.interaction = ScoreInteraction(cfg.fusion_dropout)

    def forward(self, stack_a: Tensor, stack_v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        w_a, w_v = torch.sigmoid(self.score_a(stack_a)), torch.sigmoid(self.score_v(stack_v))  # (B, S, L, 1)
        w_a, w_v = self.interaction(w_a, w_v), self.interaction(w_v, w_a)
        return (w_a * stack_a).sum(2), (w_v * stack_v).sum(2), torch.cat([w_a, w_v], dim=-1)


class GlobalCrossAttention(nn.Module):
    """One attention module used both ways, a Linear per modality and a residual: (a, v) (B, S, E) -> same shapes.

    a' = a + Linear_a(attn(a, v, v)), v' = v + Linear_v(attn(v, a, a)); no LayerNorm, no FFN."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.attention = nn.MultiheadAttention(
            cfg.embed, cfg.global_heads, dropout=cfg.global_dropout, batch_first=True
        )
        self.linear_a = nn.Linear(cfg.embed, cfg.embed)
        self.linear_v = nn.Linear(cfg.embed, cfg.embed)

    def forward(self, a: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        from_v = self.attention(a, v, v, need_weights=False)[0]
        from_a = self.attention(v, a, a, need_weights=False)[0]
        return a + self.linear_a(from_v), v + self.linear_v(from_a)


def pyramid(levels: nn.ModuleList, a: Tensor, v: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    """Run chained pyramid levels on (a, v) (B, S, E) each (each level takes the previous one's output); every
    level's outputs stacked along ``dim`` (1: (B, L, S, E); 2: (B, S, L, E))."""
    outs_a, outs_v = [], []
    for level in levels:
        a, v = level(a, v)
        outs_a.append(a)
        outs_v.append(v)
    return torch.stack(outs_a, dim), torch.stack(outs_v, dim)


class LocalGlobalFusion(nn.Module):
    """The authors' fusion (the ``avcanet`` model): (a, v) (B, S, E) each -> (a, v) (B, E) each."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.levels = nn.ModuleList(PyramidLevel(cfg, level) for level in range(cfg.pyramid_levels))
        self.level_weights = LevelWeighting(cfg)
        self.global_stage = GlobalCrossAttention(cfg)

    def local(self, a: Tensor, v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The local stage: (a, v) each (B, S, E), and the level weights (B, S, L, 2) (audio, video)."""
        return self.level_weights(*pyramid(self.levels, a, v, dim=2))

    def forward(self, a: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        a, v, _ = self.local(a, v)
        a, v = self.global_stage(a, v)
        return a.mean(1), v.mean(1)
