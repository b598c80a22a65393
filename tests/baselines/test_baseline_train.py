"""The training loop: schedule, learning, resume, model selection on validation only."""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import replace

import pytest
import torch

from baselines.distributed import World
from baselines.loss import polarity_index
from baselines.model import AVCANet
from baselines.schedules import SCHEDULES, ScheduleShape, lr_factor, warm_cos
from baselines.train import TrainConfig, _set_up, train
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


PAPER = ScheduleShape(epochs=30, steps_per_epoch=100, warmup_epochs=1.5, hold_epochs=1.5, final_fraction=0.01,
                      lr=1.5e-4)  # fmt: skip


def test_paper_schedule_is_the_authors_warm_cos_per_epoch():
    lr = [1.5e-4 * SCHEDULES["paper"].factor(e, PAPER) for e in range(30)]
    assert lr[0] == pytest.approx(1.5e-5, rel=1e-12)  # warm-up starts at 0.1 x lr
    assert lr[1] == pytest.approx(7.5e-5, rel=1e-12)  # 0.1 + 0.9 * (1 / 1.5)^2 = 0.5
    assert lr[2] == pytest.approx(1.5e-4 * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 0.5 / 27))), rel=1e-12)
    assert lr[15] == pytest.approx(1.5e-4 * 0.505, rel=1e-12)  # half-way through the cosine's 27 epochs
    assert lr[28] == pytest.approx(1.5e-4 * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * 26.5 / 27))), rel=1e-12)
    assert lr[29] == pytest.approx(1.5e-6, rel=1e-12)  # the floor, held from epoch 28.5
    assert lr[0] < lr[1] < lr[2] and all(a >= b for a, b in itertools.pairwise(lr[2:]))
    tiny_lr = replace(PAPER, lr=5e-6)  # the warm-up never starts below 1e-6 in absolute terms
    assert 5e-6 * SCHEDULES["paper"].factor(0, tiny_lr) == pytest.approx(1e-6)


def test_released_schedule_is_frozen_at_the_floor_and_per_step_is_the_earlier_one():
    assert [1.5e-4 * SCHEDULES["released"].factor(e, PAPER) for e in range(30)] == [pytest.approx(1.5e-6)] * 30
    per_step = [SCHEDULES["per-step"].factor(s, PAPER) for s in range(3000)]
    assert per_step == [lr_factor(s, 3000, 150, 0.01) for s in range(3000)]


def test_short_runs_and_no_warm_up_never_divide_by_zero():
    for epochs in (1, 2, 3):
        shape = replace(PAPER, epochs=epochs)
        assert [round(warm_cos(e, shape), 6) for e in range(epochs)] == [0.1, 0.5, 0.01][:epochs]
    no_warm_up = replace(PAPER, warmup_epochs=0, hold_epochs=0)
    assert warm_cos(0, no_warm_up) == 1.0 and warm_cos(15, no_warm_up) == pytest.approx(0.505)


def test_the_optimiser_follows_the_epoch_schedule_step_by_step():
    config = replace(TrainConfig.paper(), batch_size=4, accumulation=2, epochs=5, warmup_epochs=1.0,
                     hold_epochs=1.0)  # fmt: skip
    model = torch.nn.Linear(2, 2)
    run = _set_up(model, Synthetic(24, 1), Synthetic(4, 2), config, torch.device("cpu"), World())
    assert len(run.loader) == 6  # 3 optimiser steps an epoch
    rates = []
    for _ in range(3 * config.epochs):
        rates.append(run.optimizer.param_groups[0]["lr"])
        run.optimizer.step()
        run.scheduler.step()
    shape = replace(PAPER, epochs=5, steps_per_epoch=3, warmup_epochs=1.0, hold_epochs=1.0)
    expected = [1.5e-4 * warm_cos(s // 3, shape) for s in range(15)]
    assert rates == pytest.approx(expected, rel=1e-12)
    assert rates[:3] == [pytest.approx(1.5e-5)] * 3 and rates[-1] == pytest.approx(1.5e-6)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"lr": float("nan")}, "lr must be a finite number > 0"),
        ({"lr": 0.0}, "lr must be a finite number > 0"),
        ({"weight_decay": float("inf")}, "weight_decay must be a finite number >= 0"),
        ({"lambdas": (0.5, -1.0, 0.5)}, "lambdas must be three finite numbers >= 0"),
        ({"lambdas": (0.5, 0.5)}, "lambdas must be three finite numbers >= 0"),
        ({"lr_schedule": "step"}, "unknown learning-rate schedule 'step' (choose: paper, released, per-step)"),
        ({"hold_epochs": -1.0}, "hold_epochs must be a finite number >= 0"),
    ],
)
def test_impossible_settings_are_refused_naming_the_setting(change, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        replace(TrainConfig.paper(), **change)


def test_a_run_from_before_named_schedules_resumes_per_step_only(tmp_path):
    config = replace(CONFIG, epochs=2, lr_schedule="per-step")
    train(AVCANet(MODEL), Synthetic(8, 1), Synthetic(6, 2), config, tmp_path, classes=CLASSES, class_polarity=POL,
          stop_after_epochs=1)  # fmt: skip
    state = torch.load(tmp_path / "last.pt", weights_only=False)
    del state["train_config"]["lr_schedule"], state["train_config"]["hold_epochs"]
    torch.save(state, tmp_path / "last.pt")
    with pytest.raises(ValueError, match=re.escape("(lr_schedule: per-step -> paper)")):
        train(AVCANet(MODEL), Synthetic(8, 1), Synthetic(6, 2), replace(config, lr_schedule="paper"), tmp_path,
              classes=CLASSES, class_polarity=POL)  # fmt: skip
    history = train(AVCANet(MODEL), Synthetic(8, 1), Synthetic(6, 2), config, tmp_path, classes=CLASSES,
                    class_polarity=POL)  # fmt: skip
    assert [h.epoch for h in history] == [0, 1]


def test_plain_cross_entropy_and_fp32_are_settings_of_the_run(tmp_path):
    config = replace(CONFIG, epochs=1, plain_ce=True, bf16=False, lambdas=(1.0, 0.0, 2.0))
    train(AVCANet(MODEL), Synthetic(8, 1), Synthetic(6, 2), config, tmp_path, classes=CLASSES, class_polarity=POL)
    saved = torch.load(tmp_path / "last.pt", weights_only=False)["train_config"]
    assert saved["plain_ce"] is True and saved["bf16"] is False and list(saved["lambdas"]) == [1.0, 0.0, 2.0]
