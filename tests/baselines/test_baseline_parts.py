"""The baseline's pure parts: EP-CE, metrics, frame sampling and crops."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.metrics import balanced_accuracy_score, f1_score
from sklearn.metrics import confusion_matrix as sk_confusion

from baselines.loss import ep_ce_loss, polarity_index, total_loss
from baselines.metrics import classification_metrics
from baselines.sampling import SpatialParams, TooFewFrames, apply_spatial, draw_spatial, frame_indices
from emotions_data.taxonomy import EMOTIONS6

POL = polarity_index(
    EMOTIONS6.classes, EMOTIONS6.polarity
)  # Excitation+, Fear-, Neutral0, Relaxation+, Sadness-, Tension-


def test_polarity_index_follows_the_taxonomy():
    assert POL.tolist() == [0, 2, 1, 0, 2, 2]


def test_ep_ce_matches_a_hand_computation():
    # Rows: true Excitation predicted Excitation (w = 1); true Excitation predicted Relaxation, same polarity
    # (w = 1); true Excitation predicted Fear, wrong polarity (w = 1 + 0.5); true Neutral predicted Tension
    # (w = 1 + lambda_NEU = 1.25).
    logits = torch.tensor([[3.0, 0, 0, 1, 0, 0], [0.0, 0, 0, 2, 0, 0], [0.0, 2, 0, 0, 0, 0], [0.0, 0, 1, 0, 0, 4]])
    target = torch.tensor([0, 0, 0, 2])
    ce = [float(-torch.log_softmax(logits[i], 0)[target[i]]) for i in range(4)]
    expected = (ce[0] + ce[1] + 1.5 * ce[2] + 1.25 * ce[3]) / 4
    got = ep_ce_loss(logits, target, POL, lambdas=(0.5, 0.25, 0.5))
    assert float(got) == pytest.approx(expected, rel=1e-6)
    assert float(ep_ce_loss(logits, target, POL, plain=True)) == pytest.approx(float(F.cross_entropy(logits, target)))


def test_no_gradient_flows_through_the_weight():
    torch.manual_seed(0)
    logits = torch.randn(16, 6, requires_grad=True)
    target = torch.randint(0, 6, (16,))
    ep_ce_loss(logits, target, POL).backward()
    pred_pol, true_pol = POL[logits.detach().argmax(1)], POL[target]
    weight = 1 + 0.5 * (pred_pol != true_pol).float()
    reference = logits.detach().clone().requires_grad_(True)
    (weight * F.cross_entropy(reference, target, reduction="none")).mean().backward()
    assert torch.allclose(logits.grad, reference.grad)


def test_total_loss_sums_the_three_heads():
    torch.manual_seed(1)
    outputs = {k: torch.randn(4, 6) for k in ("logits", "audio_logits", "visual_logits")}
    target = torch.tensor([0, 1, 2, 3])
    expected = sum(float(ep_ce_loss(outputs[k], target, POL)) for k in outputs)
    assert float(total_loss(outputs, target, POL)) == pytest.approx(expected)


@pytest.mark.parametrize("seed", range(4))
def test_metrics_match_scikit_learn(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 6, 300)
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, 6, 300))
    got = classification_metrics(y_true, y_pred, list(EMOTIONS6.classes), POL.numpy())
    assert got["accuracy"] == pytest.approx(float(np.mean(y_true == y_pred)))
    assert got["uar"] == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert got["uar_present"] == pytest.approx(got["uar"])  # every class present: the two agree
    assert got["weighted_f1"] == pytest.approx(f1_score(y_true, y_pred, average="weighted"))
    assert got["confusion_matrix"] == sk_confusion(y_true, y_pred, labels=range(6)).tolist()
    assert got["polarity_accuracy"] == pytest.approx(float(np.mean(POL.numpy()[y_true] == POL.numpy()[y_pred])))


def test_uar_counts_an_absent_class_as_zero_and_uar_present_leaves_it_out():
    y = np.array([0, 1, 2, 3, 4, 0, 1])  # Tension (5) absent, every prediction right
    got = classification_metrics(y, y, list(EMOTIONS6.classes), POL.numpy())
    assert got["uar"] == pytest.approx(5 / 6) and round(got["uar"], 3) == 0.833
    assert got["uar_present"] == 1.0 == pytest.approx(balanced_accuracy_score(y, y))
    assert got["accuracy"] == 1.0 and "Tension" not in got["per_class_accuracy"]
    assert "absent" in got["definitions"]["uar"] and "present" in got["definitions"]["uar_present"]
    one_wrong = classification_metrics(np.array([0, 0, 1]), np.array([0, 1, 1]), list(EMOTIONS6.classes))
    assert one_wrong["uar"] == pytest.approx((0.5 + 1) / 6) and one_wrong["uar_present"] == pytest.approx(0.75)
    empty = classification_metrics(np.array([], dtype=int), np.array([], dtype=int), list(EMOTIONS6.classes))
    assert np.isnan(empty["uar"]) and np.isnan(empty["uar_present"])


def test_frame_indices_are_tsn_snippets_with_loop_padding():
    evaluation = frame_indices(300, train=False)
    assert evaluation.shape == (16, 8) and np.array_equal(evaluation, frame_indices(300, train=False))
    assert (np.diff(evaluation, axis=1) == 1).all() and (np.diff(evaluation[:, 0]) > 0).all()
    segment = 300 / 16
    for s, start in enumerate(evaluation[:, 0]):
        assert s * segment - 1 <= start <= (s + 1) * segment  # inside its own segment
    a = frame_indices(300, train=True, rng=np.random.default_rng(0))
    b = frame_indices(300, train=True, rng=np.random.default_rng(1))
    assert not np.array_equal(a, b) and a.max() < 300
    short = frame_indices(20, train=False)  # fewer than 128 frames: indices wrap around
    assert short.max() < 20 and short.size == 128
    with pytest.raises(TooFewFrames):
        frame_indices(15)


def test_crops_positions_augmentations_and_normalisation():
    frames = torch.zeros(2, 120, 200, 3, dtype=torch.uint8)
    frames[:, :, :60] = 255  # a white band on the left
    centre = apply_spatial(frames, SpatialParams("centre"))
    assert centre.shape == (3, 2, 112, 112)
    assert float(centre.min()) == pytest.approx(-100 / 255) and float(centre.max()) <= 1 - 100 / 255 + 1e-6
    left = apply_spatial(frames, SpatialParams("top_left"))
    assert float(left[:, :, :, :40].mean()) > float(centre[:, :, :, :40].mean())  # the corner crop sees the band
    flipped = apply_spatial(frames, SpatialParams("top_left", "flip"))
    assert torch.allclose(flipped, left.flip(-1))
    assert draw_spatial(train=False) == SpatialParams()
    drawn = {draw_spatial(True, np.random.default_rng(s)).augment for s in range(200)}
    assert drawn == {None, "flip", "rotate", "brightness"}


def test_the_core_imports_without_torch():
    code = "import sys, emotions_cli.main, emotions_data.ingest, annotation.agreement, emotions_data.release; " \
           "assert 'torch' not in sys.modules, 'torch was imported'"  # fmt: skip
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
