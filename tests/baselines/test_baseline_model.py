"""AV-CANet model: block shapes, banded local attention, split heads, gradients, weights loading, devices."""

from __future__ import annotations

import inspect
import logging
import re
from pathlib import Path

import pytest
import torch

from baselines import model as M
from baselines.model import (
    AudioBranch,
    AVCANet,
    LocalGlobalFusion,
    ModelConfig,
    PyramidLevel,
    VisualBranch,
    banded_mask,
)
from baselines.registry import build_model
from baselines.weights import load_visual_weights

TINY = ModelConfig.tiny()


def inputs(cfg: ModelConfig, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    video = torch.rand(batch, cfg.segments, 3, cfg.frames_per_segment, cfg.crop, cfg.crop, generator=g) - 100 / 255
    audio = torch.randn(batch, cfg.segments, cfg.chunk_frames, cfg.mfcc, generator=g)
    return video, audio


def test_configs() -> None:
    paper = ModelConfig.paper()
    assert (paper.segments, paper.frames_per_segment, paper.crop, paper.n_classes) == (16, 8, 112, 6)
    assert (paper.embed, paper.pyramid_levels, paper.ffn, paper.global_heads) == (512, 3, 512, 8)
    assert (paper.dropout, paper.drop_path, paper.mfcc, paper.audio_frames, paper.chunk_frames) == (
        0.5,
        0.1,
        32,
        4096,
        256,
    )
    assert (paper.visual_backbone, paper.audio_backbone) == ("swin3d_t", "resnet34")
    assert (TINY.embed, TINY.pyramid_levels, TINY.global_heads, TINY.visual_backbone) == (64, 2, 2, "tiny")
    assert [paper.band(level) for level in range(3)] == [1, 2, 4]
    with pytest.raises(ValueError, match="multiple of segments"):
        ModelConfig(audio_frames=4100)


def test_tiny_block_shapes() -> None:
    torch.manual_seed(0)
    net = AVCANet(TINY)
    video, audio = inputs(TINY)
    v, a = net.visual(video), net.audio(audio)
    assert v.shape == a.shape == (2, 16, 64)
    assert a.abs().max() <= 1  # Tanh
    la, lv, weights = net.fusion.local(a, v)
    assert la.shape == lv.shape == (2, 16, 64)
    assert weights.shape == (2, 16, 2, 2)  # per clip, step, level and modality (audio, video)
    la, lv, weights = build_model("avcanet-softmax-levels", TINY).fusion.local(a, v)
    assert la.shape == lv.shape == (2, 16, 64)
    assert weights.shape == (2, 2)
    torch.testing.assert_close(weights.sum(1), torch.ones(2))
    fa, fv = net.fusion(a, v)
    assert fa.shape == fv.shape == (2, 64)
    out = net(video, audio)
    assert set(out) == {"logits", "audio_logits", "visual_logits"}
    assert all(t.shape == (2, 6) for t in out.values())


def test_paper_backbones_shapes() -> None:
    """The real Swin-T and ResNet-34 branches, on one video of two segments (keeps CPU time low)."""
    cfg = ModelConfig.paper(segments=2, audio_frames=512)
    torch.manual_seed(0)
    visual, audio = VisualBranch(cfg).eval(), AudioBranch(cfg).eval()
    video, mfcc = inputs(cfg, batch=1)
    with torch.no_grad():
        f = visual.features(video[0])
        assert f.shape == (2, 4, 4, 4, 768)  # (N, T/2, H/32, W/32, 8C)
        assert visual(video).shape == (1, 2, 512)
        assert audio.backbone(mfcc[0].unsqueeze(1)).shape == (2, 512)
        assert audio(mfcc).shape == (1, 2, 512)
    conv1 = audio.backbone.conv1
    assert (conv1.in_channels, conv1.kernel_size, conv1.stride, conv1.padding) == (1, (7, 1), (2, 1), (3, 0))
    swin = visual.backbone
    assert swin.patch_embed.proj.kernel_size == (2, 4, 4)
    assert swin.patch_embed.proj.out_channels == 96
    assert [len(stage) for stage in swin.features[::2]] == [2, 2, 6, 2]
    assert [stage[0].attn.num_heads for stage in swin.features[::2]] == [3, 6, 12, 24]
    assert list(swin.features[0][0].attn.window_size) == [8, 7, 7]
    assert swin.features[-1][-1].stochastic_depth.p == pytest.approx(0.1)
    assert isinstance(swin.head, torch.nn.Identity)


def test_banded_mask() -> None:
    mask = banded_mask(6, 2)
    assert mask.dtype == torch.bool
    assert not mask[0, :3].any() and mask[0, 3:].all()
    assert not mask[3, 1:6].any() and mask[3, 0]


@pytest.mark.parametrize("level", [0, 1])
def test_local_level_is_banded(level: int) -> None:
    """A step far beyond the band (and the dilated conv's reach) cannot change the level output at step 0."""
    torch.manual_seed(0)
    a, v = torch.randn(2, 2, 16, 64).unbind(0)
    reach = TINY.band(level) + 2**level  # attention band + one dilated conv tap
    far = reach + 1
    a2, v2 = a.clone(), v.clone()
    a2[:, far:] += 5 * torch.randn_like(a2[:, far:])
    v2[:, far:] += 5 * torch.randn_like(v2[:, far:])

    def changed(cfg: ModelConfig) -> tuple[bool, bool]:
        torch.manual_seed(1)
        block = PyramidLevel(cfg, level).eval()
        with torch.no_grad():
            (oa, ov), (oa2, ov2) = block(a, v), block(a2, v2)
        at_0 = not (torch.allclose(oa[:, 0], oa2[:, 0]) and torch.allclose(ov[:, 0], ov2[:, 0]))
        near_far = not torch.allclose(oa[:, far], oa2[:, far])
        return at_0, near_far

    assert changed(TINY) == (False, True)
    # control: with a band that covers every step, the same perturbation does reach step 0 (the test can fail)
    assert changed(ModelConfig.tiny(local_band=16))[0]


def test_fused_logits_are_sum_of_split_heads() -> None:
    torch.manual_seed(0)
    net = AVCANet(TINY).eval()
    with torch.no_grad():
        out = net(*inputs(TINY))
        a, v = net.fusion(net.audio(inputs(TINY)[1]), net.visual(inputs(TINY)[0]))
    torch.testing.assert_close(out["logits"], out["audio_logits"] + out["visual_logits"])
    w, b = net.head.weight, net.head.bias
    torch.testing.assert_close(out["audio_logits"], a @ w[:, :64].T + b / 2)
    torch.testing.assert_close(out["visual_logits"], v @ w[:, 64:].T + b / 2)
    assert len(list(net.head.parameters())) == 2  # the split heads own no weights of their own


def test_gradients_reach_both_branches() -> None:
    torch.manual_seed(0)
    net = AVCANet(TINY).train()
    out = net(*inputs(TINY))
    loss = sum(torch.nn.functional.cross_entropy(z, torch.tensor([1, 4])) for z in out.values())
    loss.backward()
    for name, part in [("visual", net.visual), ("audio", net.audio), ("fusion", net.fusion), ("head", net.head)]:
        grads = [p.grad for p in part.parameters() if p.requires_grad]
        assert grads and all(g is not None for g in grads), name
        assert sum(g.abs().sum() for g in grads) > 0, name
    assert net.visual.backbone.net[0].weight.grad.abs().sum() > 0
    assert net.audio.backbone.net[0].weight.grad.abs().sum() > 0


def test_load_visual_weights_round_trip(tmp_path: Path) -> None:
    cfg = ModelConfig.paper(segments=1, audio_frames=256)
    torch.manual_seed(0)
    source = VisualBranch(cfg).backbone.state_dict()
    source["head.weight"], source["head.bias"] = torch.zeros(400, 768), torch.zeros(400)  # a Kinetics-400 file
    path = tmp_path / "swin3d_t_k400.pth"
    torch.save({"state_dict": {f"module.{k}": t for k, t in source.items()}}, path)

    torch.manual_seed(1)
    net = AVCANet(ModelConfig.tiny(visual_backbone="swin3d_t"))
    report = load_visual_weights(net, path)
    loaded = net.visual.backbone.state_dict()
    assert all(torch.equal(loaded[k], source[k]) for k in loaded)
    assert (report.missing, report.unexpected, report.mismatched) == ([], [], [])
    assert sorted(report.ignored) == ["module.head.bias", "module.head.weight"]
    assert len(report.loaded) == len(loaded)


def test_load_visual_weights_reports_mismatches(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    cfg = ModelConfig.paper(segments=1, audio_frames=256)
    branch = VisualBranch(cfg)
    state = branch.backbone.state_dict()
    state["blocks.0.attn.qkv.weight"] = state.pop("features.0.0.attn.qkv.weight")  # original Video Swin naming
    state["patch_embed.proj.weight"] = torch.zeros(96, 3, 4, 4, 4)  # wrong shape
    partial = tmp_path / "partial.pth"
    torch.save(state, partial)
    with caplog.at_level(logging.WARNING, logger="baselines.weights"):
        report = load_visual_weights(branch, partial)
    assert report.missing == ["features.0.0.attn.qkv.weight", "patch_embed.proj.weight"]
    assert report.unexpected == ["blocks.0.attn.qkv.weight"]
    assert report.mismatched == ["patch_embed.proj.weight: (96, 3, 4, 4, 4) vs (96, 3, 2, 4, 4)"]
    assert "1 unexpected" in str(report) and "blocks.0.attn.qkv.weight" in caplog.text

    foreign = tmp_path / "foreign.pth"
    torch.save({"conv.weight": torch.zeros(1), "fc.bias": torch.zeros(2)}, foreign)
    with pytest.raises(ValueError, match=r"no key of .*foreign\.pth fits the visual backbone") as err:
        load_visual_weights(branch, foreign)
    assert "conv.weight" in str(err.value) and "patch_embed.proj.weight" in str(err.value)

    not_weights = tmp_path / "not_weights.pth"
    torch.save({"epoch": 3}, not_weights)
    with pytest.raises(ValueError, match="does not hold a state dict"):
        load_visual_weights(branch, not_weights)


def test_seeded_forward_is_deterministic() -> None:
    def run() -> dict[str, torch.Tensor]:
        torch.manual_seed(7)
        net = AVCANet(TINY).train()  # dropout active: its draws must come from the seed too
        return net(*inputs(TINY))

    first, second = run(), run()
    for key in first:
        assert torch.equal(first[key], second[key]), key


def test_device_agnostic() -> None:
    net = AVCANet(TINY)
    tensors = [*net.parameters(), *net.buffers()]
    assert tensors and all(t.device.type == "cpu" for t in tensors)
    assert net.to("cpu") is net
    out = net.to(torch.device("cpu")).eval()(*inputs(TINY))
    assert out["logits"].device.type == "cpu"
    source = inspect.getsource(M)
    assert ".cuda(" not in source and '"cuda' not in source
    assert not re.search(r"(?<!need_)weights=", source)  # no torchvision weights: never downloads
    assert "load_state_dict_from_url" not in source


def test_forward_checks_inputs() -> None:
    net = AVCANet(TINY)
    video, audio = inputs(TINY)
    with pytest.raises(ValueError, match=r"video must be \(B, S, 3, T, H, W\)"):
        net(video[:, 0], audio)
    with pytest.raises(ValueError, match="disagree"):
        net(video, audio[:, :8])
    assert isinstance(net.fusion, LocalGlobalFusion)
