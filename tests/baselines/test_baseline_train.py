"""The training loop: schedule, learning, resume, model selection on validation only."""

from __future__ import annotations

import itertools
import math
from dataclasses import replace

import pytest
import torch

from baselines.loss import polarity_index
from baselines.model import AVCANet
from baselines.train import TrainConfig, lr_factor, train
from emotions_data.taxonomy import EMOTIONS6
from tests.support.synthetic import MODEL, Synthetic

CLASSES = list(EMOTIONS6.classes)
POL = polarity_index(EMOTIONS6.classes, EMOTIONS6.polarity)
CONFIG = replace(TrainConfig.tiny(), batch_size=4, epochs=4)


def test_schedule_warms_up_then_decays_to_one_percent_over_the_whole_run():
    total, warmup = 100, 10
    factors = [lr_factor(s, total, warmup, 0.01) for s in range(total + 1)]
    assert factors[0] == pytest.approx(0.1) and factors[9] == pytest.approx(1.0)
    after = factors[9:]
    assert all(a >= b for a, b in itertools.pairwise(after))  # monotone decay after warm-up
    assert factors[55] == pytest.approx(0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert factors[total] == pytest.approx(0.01) and min(factors) >= 0.01
    assert factors[50] > 0.4, "not frozen at the floor (the released code's bug)"


def run(tmp_path, config=CONFIG, **kwargs):
    torch.manual_seed(0)
    model = AVCANet(MODEL)
    history = train(model, Synthetic(24, 1), Synthetic(12, 2), config, tmp_path, classes=CLASSES,
                    class_polarity=POL, **kwargs)  # fmt: skip
    return model, history


def test_the_tiny_model_learns_and_keeps_the_best_checkpoint_on_val(tmp_path):
    _, history = run(tmp_path / "run", replace(CONFIG, epochs=15))
    assert history[-1].train_loss < 0.8 * history[0].train_loss
    assert history[-1].val["accuracy"] >= 0.75  # chance is 1/6
    best = torch.load(tmp_path / "run" / "best.pt", weights_only=False)
    assert best["best"] == max(h.val["accuracy"] for h in history)
    assert set(history[-1].val) >= {"accuracy", "uar", "weighted_f1", "polarity_accuracy", "audio_accuracy"}


def test_resume_reproduces_the_uninterrupted_run(tmp_path):
    straight, history = run(tmp_path / "straight")
    run(tmp_path / "interrupted", stop_after_epochs=2)
    resumed, resumed_history = run(tmp_path / "interrupted")
    assert [h.train_loss for h in resumed_history] == pytest.approx([h.train_loss for h in history], rel=1e-5)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a.float(), b.float(), atol=1e-5), name
