"""The authors' Local-Global Fusion (baselines/fusion.py): each point checked against a formula written here, paper
sizes with batch 1, every parameter trained, and float64 gradcheck."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from baselines.config import ModelConfig
from baselines.fusion import (
    GlobalCrossAttention,
    LevelWeighting,
    LocalGlobalFusion,
    PreNormLayer,
    PyramidLevel,
    ScoreInteraction,
    TemporalBlock,
)
from baselines.registry import build_model

PAPER = ModelConfig.paper()
SMALL = ModelConfig.tiny(embed=8, ffn=12, local_heads=2, global_heads=2, pyramid_levels=2)


def steps(cfg: ModelConfig, batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, cfg.segments, cfg.embed, generator=g), torch.randn(
        batch, cfg.segments, cfg.embed, generator=g
    )


def test_paper_sizes_batch_one() -> None:
    torch.manual_seed(0)
    fusion = LocalGlobalFusion(PAPER).eval()
    a, v = steps(PAPER, 1)
    with torch.no_grad():
        la, lv, weights = fusion.local(a, v)
        fa, fv = fusion(a, v)
    assert la.shape == lv.shape == (1, 16, 512) and weights.shape == (1, 16, 3, 2)
    assert fa.shape == fv.shape == (1, 512)
    assert len(fusion.levels) == 3 and fusion.levels[2].self_a.band == 4
    # the level weights are sigmoid scores shifted by the interaction: not normalised over the levels
    assert not torch.allclose(weights.sum(2), torch.ones(1, 16, 2))


@pytest.mark.slow
def test_full_model_at_paper_sizes_batch_one() -> None:
    torch.manual_seed(0)
    net = build_model("avcanet", PAPER).eval()
    video = torch.rand(1, 16, 3, 8, 112, 112) - 100 / 255
    audio = torch.randn(1, 16, 256, 32)
    with torch.no_grad():
        out = net(video, audio)
    assert {k: tuple(t.shape) for k, t in out.items()} == {
        k: (1, 6) for k in ("logits", "audio_logits", "visual_logits")
    }
    assert all(torch.isfinite(t).all() for t in out.values())


def test_every_parameter_gets_a_finite_nonzero_gradient() -> None:
    torch.manual_seed(0)
    net = build_model("avcanet", ModelConfig.tiny()).train()
    video = torch.rand(2, 16, 3, 8, 112, 112) - 100 / 255
    out = net(video, torch.randn(2, 16, 256, 32))
    sum(F.cross_entropy(z, torch.tensor([1, 4])) for z in out.values()).backward()
    for name, p in [*net.fusion.named_parameters(prefix="fusion"), *net.head.named_parameters(prefix="head")]:
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_gradcheck_float64() -> None:
    torch.manual_seed(0)
    cfg = ModelConfig.tiny(segments=8, audio_frames=2048, embed=4, ffn=6, local_heads=2, global_heads=2)
    fusion = LocalGlobalFusion(cfg).double().eval()  # eval: dropout off, the function is deterministic
    a, v = (t.double().requires_grad_() for t in steps(cfg, 1))
    assert torch.autograd.gradcheck(lambda a, v: fusion(a, v), (a, v), eps=1e-6, atol=1e-5, fast_mode=True)


def test_pre_ln_layer_normalises_the_query_only() -> None:
    torch.manual_seed(0)
    layer = PreNormLayer(8, 2, 12, dropout=0.5, attn_dropout=0.1, band=1).eval()
    q, k = torch.randn(2, 6, 8), torch.randn(2, 6, 8)
    mask = (torch.arange(6)[:, None] - torch.arange(6)[None, :]).abs() > 1
    x = q + layer.attn(layer.norm_attn(q), k, k, attn_mask=mask)[0]
    ffn = layer.ffn
    expected = x + ffn[3](torch.relu(ffn[0](layer.norm_ffn(x))))
    torch.testing.assert_close(layer(q, k, k), expected)
    assert (layer.dropout.p, layer.ffn[2].p, layer.attn.dropout) == (0.5, 0.5, 0.1)
    level = PyramidLevel(PAPER, 0)
    assert (level.self_a.dropout.p, level.self_a.attn.dropout) == (0.5, 0.1)


def test_gates_and_tcn() -> None:
    torch.manual_seed(0)
    level = PyramidLevel(SMALL, 1).eval()
    a, v = steps(SMALL, 2)
    s_a, c_a = level.self_a(a, a, a), level.cross(a, v, v)  # the cross layer is shared by both directions
    w, b = level.gate_a.weight, level.gate_a.bias
    e1 = torch.sigmoid(torch.cat([s_a, c_a], -1) @ w[:8].T + b[:8])
    e2 = torch.sigmoid(torch.cat([s_a, c_a], -1) @ w[8:].T + b[8:])
    gated = e1 * s_a + e2 * c_a
    tcn = level.tcn_a
    assert tcn.conv.dilation == (2,) and tcn.conv.kernel_size == (3,)
    h = tcn.mix(torch.relu(tcn.conv(gated.transpose(1, 2)))).transpose(1, 2)
    torch.testing.assert_close(level(a, v)[0], torch.relu(gated + h))
    assert isinstance(TemporalBlock(8, 3, 4)(a), torch.Tensor)


def authors_score_layer(s: torch.Tensor, t: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
    """The authors' width-1 pre-LN Transformer layer on level scores (..., L, 1), written out in full: LayerNorm(1)
    on the query, one-head attention over the other modality's scores, residual, then LayerNorm(1) + FFN 1→1→1."""
    ln = lambda x, g, b: F.layer_norm(x, (1,), g, b)  # noqa: E731
    q = ln(s, p["g1"], p["b1"]) * p["wq"] + p["bq"]
    k, val = t * p["wk"] + p["bk"], t * p["wv"] + p["bv"]
    attn = torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ val
    x = s + attn * p["wo"] + p["bo"]
    return x + torch.relu(ln(x, p["g2"], p["b2"]) * p["w1"] + p["c1"]) * p["w2"] + p["c2"]


def test_score_interaction_is_the_authors_width_one_layer() -> None:
    g = torch.Generator().manual_seed(3)
    p = {k: torch.randn(1, generator=g) for k in ("g1", "b1", "wq", "bq", "wk", "bk", "wv", "bv", "wo", "bo", "g2",
                                                   "b2", "w1", "c1", "w2", "c2")}  # fmt: skip
    layer = ScoreInteraction(attn_dropout=0.1).eval()
    with torch.no_grad():  # the same function from the effective parameters
        layer.query.copy_(p["b1"] * p["wq"] + p["bq"])
        layer.key_value.weight.copy_(torch.stack([p["wk"], p["wv"]]))
        layer.key_value.bias.copy_(torch.cat([p["bk"], p["bv"]]))
        layer.out.weight.copy_(p["wo"][:, None])
        layer.out.bias.copy_(p["bo"] + torch.relu(p["b2"] * p["w1"] + p["c1"]) * p["w2"] + p["c2"])
    s, t = torch.rand(5, 16, 3, 1, generator=g), torch.rand(5, 16, 3, 1, generator=g)
    torch.testing.assert_close(layer(s, t), authors_score_layer(s, t, p))


def test_level_weighting_per_step_and_modality_unnormalised() -> None:
    torch.manual_seed(0)
    weighting = LevelWeighting(SMALL).eval()
    stack_a, stack_v = torch.randn(2, 16, 2, 8), torch.randn(2, 16, 2, 8)
    out_a, out_v, w = weighting(stack_a, stack_v)
    score_a, score_v = torch.sigmoid(weighting.score_a(stack_a)), torch.sigmoid(weighting.score_v(stack_v))
    torch.testing.assert_close(w[..., :1], weighting.interaction(score_a, score_v))
    torch.testing.assert_close(w[..., 1:], weighting.interaction(score_v, score_a))
    torch.testing.assert_close(out_a, (w[..., :1] * stack_a).sum(2))
    torch.testing.assert_close(out_v, (w[..., 1:] * stack_v).sum(2))
    assert weighting.score_a is not weighting.score_v
    assert not torch.allclose(w[0, 0], w[0, 1])  # a weight per time step, not one per clip


def test_global_stage_one_shared_attention_linear_and_residual() -> None:
    torch.manual_seed(0)
    stage = GlobalCrossAttention(SMALL).eval()
    assert sum(isinstance(m, nn.MultiheadAttention) for m in stage.modules()) == 1
    assert not any(isinstance(m, nn.LayerNorm) for m in stage.modules())
    a, v = steps(SMALL, 2)
    ga, gv = stage(a, v)
    torch.testing.assert_close(ga, a + stage.linear_a(stage.attention(a, v, v)[0]))
    torch.testing.assert_close(gv, v + stage.linear_v(stage.attention(v, a, a)[0]))
    fusion = LocalGlobalFusion(SMALL).eval()
    la, lv, _ = fusion.local(a, v)
    fa, fv = fusion(a, v)
    expected = fusion.global_stage(la, lv)
    torch.testing.assert_close(fa, expected[0].mean(1))  # mean over the 16 steps
    torch.testing.assert_close(fv, expected[1].mean(1))
