"""Executor choice (emotions_data.executor) without the optional Ray extra."""

from __future__ import annotations

import sys

import pytest


def test_ray_executor_without_the_extra_says_how_to_install_it(monkeypatch):
    from emotions_data.executor import ExecutorError, make_executor

    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` sees when the extra is not installed
    with pytest.raises(ExecutorError) as caught:
        make_executor("ray", 2)
    assert str(caught.value) == "--executor ray needs the ray extra: pip install 'emotions[ray]'"
    with pytest.raises(ValueError, match="choose: local, serial, ray"):
        make_executor("spark", 2)
