"""Release formats: every registered format reads back what it wrote, and a real release loads in Hugging Face
`datasets` with `label` as a ClassLabel of the taxonomy's classes."""

from __future__ import annotations

import pandas as pd
import pytest

from emotions_data.card import card_writer
from emotions_data.layout import ReleaseLayout
from emotions_data.official_format import OfficialFormat
from emotions_data.release import write_release
from emotions_data.release_formats import FORMATS, register_format, release_format
from emotions_data.taxonomy import EMOTIONS6
from tests.support.manifests import released_dataset


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    layout, votes = released_dataset(tmp_path_factory.mktemp("formats") / "ds")
    folder = write_release(layout, "1.0.0", votes=votes, card=card_writer(layout))
    return layout, ReleaseLayout(folder)


@pytest.mark.parametrize("name", list(FORMATS))
def test_every_format_reads_back_what_it_wrote(release, name):
    layout, folder = release
    splits = pd.read_parquet(layout.splits)
    labels = pd.read_parquet(layout.labels)[["video_id", "label"]]
    for variant in ("full", "balanced", "test_oriented"):
        read = release_format(name).read(folder, variant, EMOTIONS6)[["video_id", "label", "split"]]
        expected = splits[splits["variant"] == variant].merge(labels, on="video_id")[["video_id", "label", "split"]]
        key = ["split", "video_id"]
        pd.testing.assert_frame_equal(
            read.astype(str).sort_values(key).reset_index(drop=True),
            expected.astype(str).sort_values(key).reset_index(drop=True),
        )


def test_the_registry_names_each_format_once():
    assert list(FORMATS) == ["parquet", "official"]
    with pytest.raises(ValueError, match="registered already"):
        register_format(OfficialFormat())
    with pytest.raises(ValueError, match="no release format 'csv'"):
        release_format("csv")


def test_hf_datasets_loads_label_as_a_class_label(release, tmp_path, monkeypatch):
    _, folder = release
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_OFFLINE", True)
    datasets.disable_progress_bars()
    loaded = datasets.load_dataset(str(folder.root), name="full", cache_dir=str(tmp_path / "cache"))
    label = loaded["train"].features["label"]
    assert isinstance(label, datasets.ClassLabel) and label.names == list(EMOTIONS6.classes)
    train = pd.read_parquet(folder.data_file("full", "train"))
    assert [label.int2str(i) for i in loaded["train"]["label"]] == list(train["label"])
    halves = loaded["train"].train_test_split(test_size=0.5, stratify_by_column="label", seed=0)
    assert sorted(halves["train"]["label"]) == sorted(halves["test"]["label"]), "each class split evenly"
