"""Release versions are semantic versions in ASCII digits (one name per version), and the pseudonym key has a
minimum strength; both refused in one line naming the version, the variable or the key file."""

from __future__ import annotations

import pytest

from emotions_data.layout import DatasetLayout
from emotions_data.release import MIN_KEY_BYTES, PSEUDONYM_KEY_ENV, check_version, pseudonym_key


@pytest.mark.parametrize("version", ["1.0.0", "0.0.0", "10.20.30", "1.2.10"])
def test_semantic_versions_pass(version):
    check_version(version)


@pytest.mark.parametrize(
    "version",
    ["01.0.0", "1.00.0", "1.0.01", "١.0.0", "1.٠.0", "１.0.0", "1.0", "1.0.0.0", "v1.0.0", "1.0.0-rc1", " 1.0.0", "",
     "1..0", "-1.0.0"],
)  # fmt: skip
def test_other_versions_are_refused_naming_them(version):
    with pytest.raises(ValueError, match=r"must be a semantic version X\.Y\.Z") as caught:
        check_version(version)
    assert repr(version) in str(caught.value)


def test_a_short_pseudonym_key_is_refused_naming_its_source(tmp_path, monkeypatch):
    layout = DatasetLayout(tmp_path)
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "x" * (MIN_KEY_BYTES - 1))
    short = rf"^{PSEUDONYM_KEY_ENV}: the pseudonym key is 15 byte\(s\); it needs at least 16"
    with pytest.raises(ValueError, match=short):
        pseudonym_key(layout)
    monkeypatch.setenv(PSEUDONYM_KEY_ENV, "é" * 8)  # 16 bytes in UTF-8
    assert pseudonym_key(layout) == ("é" * 8).encode()
    monkeypatch.delenv(PSEUDONYM_KEY_ENV)
    assert len(pseudonym_key(layout)) == 64  # the dataset's own key: 32 random bytes in hex
    layout.release_key.write_bytes(b"short\n")
    with pytest.raises(ValueError, match=r"release-pseudonyms\.key: the pseudonym key is 5 byte"):
        pseudonym_key(layout)
