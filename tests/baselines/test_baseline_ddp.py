"""DDP under torchrun (gloo, 2 CPU processes) equals one process with the same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

TESTS = Path(__file__).parents[1]


def launch(mode: str, out: Path, processes: int) -> None:
    script = [str(TESTS / "support" / "ddp_train.py"), mode, str(out)]
    if processes > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}", *script]
    else:
        cmd = [sys.executable, *script]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(TESTS.parent)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.slow
def test_two_processes_compute_the_gradient_of_the_whole_global_batch(tmp_path):
    launch("grads", tmp_path / "one", 1)
    launch("grads", tmp_path / "two", 2)
    one, two = torch.load(tmp_path / "one" / "grads.pt"), torch.load(tmp_path / "two" / "grads.pt")
    assert one.keys() == two.keys()
    checked = 0
    for name, reference in one.items():
        scale = reference.abs().max().item()
        if scale < 1e-5:  # e.g. a bias right before batch norm: its true gradient is 0, what is left is rounding
            continue
        torch.testing.assert_close(two[name], reference, rtol=1e-4, atol=1e-4 * scale, msg=name)
        checked += 1
    assert checked > 0.9 * len(one)


@pytest.mark.slow
def test_two_processes_train_like_one(tmp_path):
    launch("train", tmp_path / "one", 1)
    launch("train", tmp_path / "two", 2)
    one = torch.load(tmp_path / "one" / "last.pt", weights_only=False)
    two = torch.load(tmp_path / "two" / "last.pt", weights_only=False)
    # Adam turns the rounding noise of zero gradients into full-size steps, so weights agree closely, not exactly.
    for a, b in zip(one["history"], two["history"], strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-3)
        assert b["train_accuracy"] == a["train_accuracy"] and b["val"]["accuracy"] == a["val"]["accuracy"]
    for name, tensor in one["model"].items():
        if tensor.is_floating_point():
            torch.testing.assert_close(two["model"][name], tensor, rtol=0, atol=1e-2, msg=name)


@pytest.mark.parametrize(("n", "world", "batch"), [(16, 2, 2), (13, 2, 2), (10, 4, 1)])
def test_ranks_share_the_single_process_batches_and_run_equally_many(n, world, batch):
    from baselines.distributed import EpochShuffle

    single = list(EpochShuffle(n, seed=1))
    ranks = [list(EpochShuffle(n, seed=1, rank=r, world=world)) for r in range(world)]
    assert len({len(r) for r in ranks}) == 1, "unequal ranks would deadlock in the next collective"
    assert set().union(*ranks) == set(single)
    for k in range(n // (batch * world)):  # the k-th global batch is the single process's k-th batch
        together = sorted(i for r in ranks for i in r[k * batch : (k + 1) * batch])
        assert together == sorted(single[k * batch * world : (k + 1) * batch * world])
