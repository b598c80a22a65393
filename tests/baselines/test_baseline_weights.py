"""Swin-T weight conversion: original Video Swin and 2-D Swin-T layouts to torchvision swin3d_t, checked on outputs."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.models import resnet34, swin_t
from typer.testing import CliRunner

from baselines.model import AVCANet, ModelConfig, VisualBranch, build_swin3d_t
from baselines.weights import (
    convert_checkpoint,
    convert_state_dict,
    detect_layout,
    load_audio_weights,
    load_visual_weights,
    read_weights_file,
)
from emotions_cli.main import app

BIAS = "attn.relative_position_bias_table"


def main(argv: list[str]) -> int:
    """`emotions convert-weights SRC DST` in this process: its exit status; what it printed goes to stdout."""
    result = CliRunner().invoke(app, ["convert-weights", *argv])
    print(result.stdout, end="")
    return result.exit_code


@pytest.fixture(scope="module")
def reference() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_swin3d_t(0.0).eval()


def fresh_branch(seed: int) -> VisualBranch:
    torch.manual_seed(seed)
    return VisualBranch(ModelConfig.paper(segments=1, audio_frames=256)).eval()


def video_swin_name(key: str) -> str:
    """torchvision swin3d_t key -> the Video Swin repo's name (the inverse map, written apart from the converter)."""
    parts = key.split(".")
    if parts[0] != "features":
        return key  # patch_embed.*, norm.* are named alike
    stage, rest = int(parts[1]), parts[2:]
    if stage % 2:  # torchvision's merging entries: the downsample at the end of the stage before
        return ".".join(["layers", str(stage // 2), "downsample", *rest])
    block, sub = rest[0], ".".join(rest[1:])
    sub = re.sub(r"^mlp\.0\.", "mlp.fc1.", re.sub(r"^mlp\.3\.", "mlp.fc2.", sub))
    return f"layers.{stage // 2}.blocks.{block}.{sub}"


def test_inverse_map_spot_checks() -> None:
    """The test's own inverse map agrees with hand-read names of the original repo."""
    table = {
        "features.0.0.norm1.weight": "layers.0.blocks.0.norm1.weight",
        "features.0.1.attn.relative_position_bias_table": "layers.0.blocks.1.attn.relative_position_bias_table",
        "features.1.reduction.weight": "layers.0.downsample.reduction.weight",
        "features.5.norm.bias": "layers.2.downsample.norm.bias",
        "features.4.5.mlp.3.bias": "layers.2.blocks.5.mlp.fc2.bias",
        "features.6.1.mlp.0.weight": "layers.3.blocks.1.mlp.fc1.weight",
        "features.6.0.attn.qkv.weight": "layers.3.blocks.0.attn.qkv.weight",
        "patch_embed.proj.weight": "patch_embed.proj.weight",
        "norm.weight": "norm.weight",
    }
    assert {k: video_swin_name(k) for k in table} == table


def test_video_swin_checkpoint_converts_exactly(reference: torch.nn.Module, tmp_path: Path) -> None:
    ref = reference.state_dict()
    original = {f"backbone.{video_swin_name(k)}": t.clone() for k, t in ref.items()}
    assert "backbone.layers.3.downsample.reduction.weight" not in original  # no merging after the last stage
    original["cls_head.fc_cls.weight"], original["cls_head.fc_cls.bias"] = torch.randn(400, 768), torch.zeros(400)

    converted, layout = convert_state_dict(original)
    assert layout == "video-swin"
    assert set(converted) == set(ref) | {"head.weight", "head.bias"}
    assert all(torch.equal(converted[k], ref[k]) for k in ref)  # relative_position_index recomputed identically
    assert torch.equal(converted["head.weight"], original["cls_head.fc_cls.weight"])

    path = tmp_path / "swin_tiny_patch244_window877_kinetics400_1k.pth"
    torch.save({"meta": {"epoch": 30}, "state_dict": original}, path)
    branch = fresh_branch(seed=1)
    clip = torch.rand(1, 3, 8, 64, 64)
    with torch.no_grad():
        expected = reference(clip)
        assert not torch.allclose(branch.backbone(clip), expected)  # control: a random backbone differs
        report = load_visual_weights(branch, path)
        assert torch.equal(branch.backbone(clip), expected)
    assert (report.missing, report.unexpected, report.mismatched) == ([], [], [])
    assert sorted(report.ignored) == ["head.bias", "head.weight"]


def test_convert_checkpoint_writes_torchvision_layout(
    reference: torch.nn.Module, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the command line (``main`` prints what ``convert_checkpoint`` returns)."""
    src = tmp_path / "k400.pth"
    torch.save(
        {"state_dict": {f"module.backbone.{video_swin_name(k)}": t for k, t in reference.state_dict().items()}}, src
    )
    dst = tmp_path / "out" / "swin3d_t.pth"
    assert main([str(src), str(dst)]) == 0
    # the report of loading the written file into a fresh swin3d_t: nothing missing, unexpected or mismatched
    assert capsys.readouterr().out.splitlines() == [f"{src}: video-swin layout -> {dst}", f"{dst}: loaded 183 tensors"]
    written = torch.load(dst, weights_only=True)
    assert detect_layout(written) == "torchvision"
    assert written.keys() == reference.state_dict().keys()
    assert all(torch.equal(written[k], t) for k, t in reference.state_dict().items())
    assert [p.name for p in dst.parent.iterdir()] == ["swin3d_t.pth"]  # no temporary left behind


@pytest.fixture(scope="module")
def swin2d() -> tuple[torch.nn.Module, dict[str, Tensor]]:
    """A random torchvision 2-D swin_t (eval) and its backbone tensors in torchvision's 2-D layout."""
    torch.manual_seed(2)
    model = swin_t().eval()  # random init: no weights argument, nothing downloaded
    return model, {k: t for k, t in model.state_dict().items() if not k.startswith("head.")}


def microsoft_name(key: str) -> str:
    """torchvision swin_t key -> Microsoft Swin-Transformer name (patch_embed, layers.i.blocks.j / downsample)."""
    head = {"features.0.0": "patch_embed.proj", "features.0.2": "patch_embed.norm"}
    for old, new in head.items():
        if key.startswith(old + "."):
            return new + key[len(old) :]
    if not key.startswith("features."):
        return key
    return video_swin_name(re.sub(r"^features\.(\d+)", lambda m: f"features.{int(m[1]) - 1}", key))


def test_swin2d_inflation_shapes_patch_embed_and_table(
    reference: torch.nn.Module, swin2d: tuple[torch.nn.Module, dict[str, Tensor]]
) -> None:
    _, tv2d = swin2d
    original = {microsoft_name(k): t for k, t in tv2d.items()}
    original["head.weight"], original["head.bias"] = torch.randn(21841, 768), torch.zeros(21841)
    original["layers.0.blocks.1.attn_mask"] = torch.zeros(64, 49, 49)  # a stored shift mask, dropped
    assert original["patch_embed.proj.weight"].shape == (96, 3, 4, 4)
    assert original[f"layers.0.blocks.0.{BIAS}"].shape == (169, 3)

    inflated, layout = convert_state_dict(original)
    assert layout == "swin2d-inflated"
    ref = reference.state_dict()
    assert {k: tuple(t.shape) for k, t in inflated.items()} == {k: tuple(t.shape) for k, t in ref.items()}
    for key in [k for k in ref if k.endswith("relative_position_index")]:
        assert torch.equal(inflated[key], ref[key])
    # the same tensors whichever 2-D layout they came in
    from_tv, tv_layout = convert_state_dict(tv2d)
    assert tv_layout == "swin2d-inflated"
    assert from_tv.keys() == inflated.keys() and all(torch.equal(from_tv[k], inflated[k]) for k in inflated)

    # patch embedding: a clip of identical frames gives the 2-D response at every output time step
    w2d, w3d = original["patch_embed.proj.weight"], inflated["patch_embed.proj.weight"]
    bias = inflated["patch_embed.proj.bias"]
    frame = torch.randn(1, 3, 16, 16)
    out3d = F.conv3d(frame.unsqueeze(2).expand(-1, -1, 4, -1, -1), w3d, bias, stride=(2, 4, 4))
    out2d = F.conv2d(frame, w2d, bias, stride=4)
    for t in range(out3d.shape[2]):
        torch.testing.assert_close(out3d[:, :, t], out2d)

    # bias table: row dt*169 + k of the 3-D table is row k of the 2-D one, for each of the 15 temporal offsets
    for key_2d, key_3d in [
        (f"layers.0.blocks.0.{BIAS}", f"features.0.0.{BIAS}"),
        (f"layers.3.blocks.1.{BIAS}", f"features.6.1.{BIAS}"),
    ]:
        table2d, table3d = original[key_2d], inflated[key_3d]
        for dt in range(15):
            assert torch.equal(table3d[dt * 169 : (dt + 1) * 169], table2d)


def test_swin2d_inflated_model_matches_2d_model_on_static_clip(
    swin2d: tuple[torch.nn.Module, dict[str, Tensor]], tmp_path: Path
) -> None:
    """On a clip of identical frames, the inflated 3-D Swin-T gives the 2-D Swin-T features at every time step.

    Duplicated keys across time have equal logits (tiled bias), so attention averages as in 2-D. 8 frames give 4 time
    steps (temporal offsets -3..3 of the table in use); 224x224 keeps every stage a multiple of the 7x7 window, where
    torchvision's 2-D and 3-D windows agree.
    """
    model2d, tv2d = swin2d
    path = tmp_path / "swin_tiny_patch4_window7_224_22k.pth"
    torch.save({"model": {microsoft_name(k): t for k, t in tv2d.items()}}, path)
    branch = fresh_branch(seed=3)
    report = load_visual_weights(branch, path)
    assert (report.missing, report.unexpected, report.mismatched, report.ignored) == ([], [], [], [])

    frame = torch.rand(1, 3, 224, 224) - 100 / 255
    with torch.no_grad():
        f2d = model2d.norm(model2d.features(frame))  # (1, 7, 7, 768)
        f3d = branch.features(frame.unsqueeze(2).expand(-1, -1, 8, -1, -1))  # (1, 4, 7, 7, 768)
    assert f3d.shape == (1, 4, 7, 7, 768)
    for t in range(4):
        torch.testing.assert_close(f3d[:, t], f2d, atol=1e-4, rtol=1e-4)


def test_unknown_layout_is_a_clear_error(tmp_path: Path) -> None:
    foreign = {"conv.weight": torch.zeros(1), "fc.bias": torch.zeros(2), "fc.weight": torch.zeros(2, 2)}
    assert detect_layout(foreign) is None
    with pytest.raises(ValueError, match=r"^resnet\.pth: not a Swin-T state dict in one known layout") as err:
        convert_state_dict(foreign, source="resnet.pth")
    assert "\n" not in str(err.value) and "conv.weight" in str(err.value)

    path = tmp_path / "resnet.pth"
    torch.save(foreign, path)
    with pytest.raises(ValueError, match=re.escape(str(path))):
        convert_checkpoint(path, tmp_path / "out.pth")
    assert not (tmp_path / "out.pth").exists()
    assert main([str(path), str(tmp_path / "out.pth")]) == 2

    pickled = tmp_path / "numpy_meta.pth"  # metadata weights_only refuses: a clear error, not a traceback
    torch.save({"meta": {"best": np.float64(0.5)}, "state_dict": foreign}, pickled)
    with pytest.raises(ValueError, match=r"numpy_meta\.pth: torch\.load\(weights_only=True\)"):
        convert_checkpoint(pickled, tmp_path / "out.pth")

    mixed = {"features.0.0.norm1.weight": torch.zeros(96), "layers.0.blocks.0.norm1.weight": torch.zeros(96)}
    assert detect_layout(mixed) is None


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 1]) + data[at + 1 :]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda good: good[: len(good) // 2], "truncated weights file (its archive has no end record)"),
        (lambda good: good[:2], "truncated weights file (2 bytes)"),
        (lambda good: _flip(good, len(good) // 2), "damaged weights file"),  # in the tensor's data
        (lambda good: b"these are notes, not weights\n", "not a torch weights file"),
        (lambda good: b"\x80\x02}q\x00.", "not a torch weights file"),  # a pickle, but not torch's
    ],
)  # fmt: skip
def test_a_torn_or_foreign_weights_file_is_one_clear_error(tmp_path: Path, make, message) -> None:
    good = tmp_path / "good.pth"
    torch.save({"features.0.0.weight": torch.arange(4096.0)}, good)
    path = tmp_path / "weights.pth"
    path.write_bytes(make(good.read_bytes()))
    readers = (read_weights_file, lambda p: load_visual_weights(torch.nn.Linear(1, 1), p),
               lambda p: convert_checkpoint(p, tmp_path / "out.pth"))  # fmt: skip
    for read in readers:
        with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: ") as err:
            read(path)
        assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out.pth").exists()
    with pytest.raises(ValueError, match="no such weights file"):
        read_weights_file(tmp_path / "none.pth")


def test_audio_resnet34_weights_load_as_the_authors(tmp_path: Path) -> None:
    """torchvision's ImageNet ResNet-34 layout (random tensors here): all but the 3-channel conv1 and the classifier
    load; conv1 stays at its random 1-channel init, as in the authors' strict=False load."""
    torch.manual_seed(5)
    source = resnet34().state_dict()  # random init, nothing downloaded; the key layout of resnet34-b627a593.pth
    path = tmp_path / "resnet34-b627a593.pth"
    torch.save(source, path)
    torch.manual_seed(6)
    net = AVCANet(ModelConfig.tiny(audio_backbone="resnet34"))
    conv1 = net.audio.backbone.conv1.weight.clone()
    report = load_audio_weights(net, path)
    own = net.audio.backbone.state_dict()
    assert report.mismatched == ["conv1.weight: (64, 3, 7, 7) vs (64, 1, 7, 1)"]
    assert sorted(report.ignored) == ["fc.bias", "fc.weight"] and report.missing == ["conv1.weight"]
    assert torch.equal(own["conv1.weight"], conv1)
    assert all(torch.equal(own[k], source[k]) for k in report.loaded) and len(report.loaded) == len(own) - 1
    assert report.record() == {"part": "audio", "file": "resnet34-b627a593.pth",
                               "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "loaded": len(own) - 1,
                               "skipped": 3, "kept_random": 1}  # fmt: skip
    with pytest.raises(ValueError, match=r"no key of .* fits the audio backbone"):
        load_audio_weights(net, _swin_file(tmp_path))


def _swin_file(tmp_path: Path) -> Path:
    path = tmp_path / "swin.pth"
    torch.save(build_swin3d_t(0.0).state_dict(), path)
    return path


def test_visual_report_records_file_name_and_sha256(tmp_path: Path) -> None:
    path = _swin_file(tmp_path)
    report = load_visual_weights(fresh_branch(0), path)
    record = report.record()
    assert record["file"] == "swin.pth" and record["part"] == "visual" and record["loaded"] == 183
    assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest() and record["skipped"] == 0
