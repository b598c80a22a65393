"""Models registry and self-describing checkpoints: a checkpoint rebuilds its model from the file alone; files
written before checkpoints named their model still load; `paper` refuses random initialisation unless asked."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from baselines.checkpoint import load_model, model_record, save_checkpoint
from baselines.config import ModelConfig
from baselines.recipes import BaselineRelease, TrainRequest, check_initialisation, outside_release, train_config_of
from baselines.registry import MODELS, build_model, model_spec, preprocessing, register_model
from baselines.train import TrainConfig

TINY = ModelConfig.tiny()


def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 16, 3, 8, 112, 112, generator=g), torch.randn(1, 16, 256, 32, generator=g)


def outputs(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return model.eval()(*inputs())


def test_registry() -> None:
    assert set(MODELS) == {"avcanet", "avcanet-softmax-levels"} and all(s.description for s in MODELS.values())
    with pytest.raises(ValueError, match=r"unknown model 'nope' \(choose: avcanet, avcanet-softmax-levels\)"):
        model_spec("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_model("avcanet", "again", lambda cfg: build_model("avcanet", cfg))
    with pytest.raises(ValueError, match="unknown model"):
        model_record("nope", TINY, ["a"])


@pytest.mark.parametrize("name", ["avcanet", "avcanet-softmax-levels"])
def test_checkpoint_rebuilds_its_model_alone(tmp_path: Path, name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, TINY)
    classes = ["Anger", "Fear", "Joy", "Sadness", "Surprise", "Disgust"]
    save_checkpoint({"model": model.state_dict(), **model_record(name, TINY, classes)}, tmp_path / "best.pt")
    loaded, state = load_model(tmp_path / "best.pt")
    assert state["model_name"] == name and state["classes"] == classes
    assert state["preprocessing"] == preprocessing(TINY) and state["preprocessing"]["crop"] == 112
    assert ModelConfig(**state["model_config"]) == TINY
    for key, value in outputs(model).items():
        torch.testing.assert_close(outputs(loaded)[key], value)


def test_checkpoint_written_before_models_were_named_still_loads(tmp_path: Path) -> None:
    """Such a file has no `model_name` or `preprocessing`, and a configuration without the later dropout fields."""
    torch.manual_seed(0)
    model = build_model("avcanet-softmax-levels", TINY)
    old_config = {k: v for k, v in asdict(TINY).items() if k not in ("local_dropout", "global_dropout")}
    save_checkpoint({"model": model.state_dict(), "model_config": old_config, "classes": list("abcdef")},
                    tmp_path / "old.pt")  # fmt: skip
    loaded, state = load_model(tmp_path / "old.pt")
    assert state["model_name"] == "avcanet-softmax-levels" and state["preprocessing"] == preprocessing(TINY)
    torch.testing.assert_close(outputs(loaded)["logits"], outputs(model)["logits"])


def test_checkpoint_of_unknown_or_mismatched_model_is_one_line(tmp_path: Path) -> None:
    model = build_model("avcanet", TINY)
    record = model_record("avcanet", TINY, list("abcdef"))
    save_checkpoint({"model": model.state_dict(), **record, "model_name": "resnet"}, tmp_path / "unknown.pt")
    with pytest.raises(ValueError, match=r"unknown\.pt: .*unknown model 'resnet'") as err:
        load_model(tmp_path / "unknown.pt")
    assert "\n" not in str(err.value)
    save_checkpoint({"model": model.state_dict(), **record, "model_name": "avcanet-softmax-levels"}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match=r"x\.pt: not a checkpoint of `emotions train` \(its weights do not fit"):
        load_model(tmp_path / "x.pt")


def test_paper_refuses_random_initialisation(tmp_path: Path) -> None:
    with pytest.raises(ValueError) as err:
        check_initialisation(TrainRequest(tmp_path, config="paper"))
    message = str(err.value)
    assert "\n" not in message and "--random-init" in message and "never downloads" in message
    for needed in ("--weights FILE", "swin3d_t-7615ae03.pth", "swin_tiny_patch4_window7_224_22k.pth",
                   "--audio-weights FILE", "resnet34-b627a593.pth"):  # fmt: skip
        assert needed in message
    with pytest.raises(ValueError, match="--audio-weights") as err:
        check_initialisation(TrainRequest(tmp_path, config="paper", weights=tmp_path / "swin.pth"))
    assert "--weights FILE" not in str(err.value)
    check_initialisation(TrainRequest(tmp_path, config="paper", random_init=True))
    check_initialisation(TrainRequest(tmp_path, config="paper", weights=Path("s"), audio_weights=Path("r")))
    check_initialisation(TrainRequest(tmp_path, config="tiny"))


def test_the_schedules_spans_are_taken_and_must_fit_the_run(tmp_path: Path) -> None:
    config = train_config_of(TrainRequest(tmp_path, warmup_epochs=0.5, hold_epochs=2.0), TrainConfig.paper())
    assert (config.warmup_epochs, config.hold_epochs, config.epochs) == (0.5, 2.0, 30)
    assert train_config_of(TrainRequest(tmp_path), TrainConfig.tiny()).warmup_epochs == 1.0, "the config's default"
    with pytest.raises(ValueError, match=r"^--warmup-epochs 2 and --hold-epochs 1.5 add up to more than the run's 3 "):
        train_config_of(TrainRequest(tmp_path, epochs=3, warmup_epochs=2.0), TrainConfig.paper())
    with pytest.raises(ValueError, match=r"hold_epochs must be a finite number >= 0 \(got nan\)"):
        train_config_of(TrainRequest(tmp_path, hold_epochs=float("nan")), TrainConfig.paper())


def test_a_run_or_an_evaluation_is_never_written_inside_the_release(tmp_path: Path) -> None:
    release = BaselineRelease((tmp_path / "ds" / "releases" / "1.0.0").resolve(), "ds", "1.0.0", [], {}, {})
    for inside in (
        release.folder,
        release.folder / "runs" / "a",
        tmp_path / "ds" / "releases" / "1.0.0" / ".." / "1.0.0",
    ):
        with pytest.raises(
            ValueError, match=r": inside the release .*which is never written to; choose another --out$"
        ):
            outside_release(inside, release, "--out")
    assert outside_release(tmp_path / "ds" / "runs" / "1.0.0", release, "--out") == tmp_path / "ds" / "runs" / "1.0.0"
