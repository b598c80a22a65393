"""The DDP test's worker (tests/baselines/test_baseline_ddp.py runs it with the repository root on PYTHONPATH):
`python ddp_train.py MODE OUT` (one process) or `torchrun --nproc-per-node 2
ddp_train.py MODE OUT` (two). MODE `train`: two epochs of the tiny model on synthetic data, OUT/final.pt.
MODE `grads`: the gradients of one global batch of 4 (rank r takes items r and r + 2), OUT/grads.pt."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel

from baselines.distributed import init_world, shutdown_world, synchronise_batch_norm
from baselines.loss import polarity_index, total_loss
from baselines.model import AVCANet
from baselines.train import TrainConfig, train
from emotions_data.taxonomy import EMOTIONS6
from tests.support.synthetic import MODEL, Synthetic

# Dropout draws differ between one process and two; everything else must agree.
CONFIG = replace(MODEL, dropout=0.0, fusion_dropout=0.0, local_dropout=0.0, global_dropout=0.0, drop_path=0.0)
POLARITY = polarity_index(EMOTIONS6.classes, EMOTIONS6.polarity)


def model() -> AVCANet:
    torch.manual_seed(0)
    return AVCANet(CONFIG)


def one_batch_grads(net: torch.nn.Module, rank: int, world: int) -> None:
    data = Synthetic(4, 1, CONFIG)
    items = [data[i] for i in range(rank, 4, world)]
    video, audio = torch.stack([v for v, _, _ in items]), torch.stack([a for _, a, _ in items])
    outputs = net(video, audio)
    total_loss(outputs, torch.tensor([y for _, _, y in items]), POLARITY).backward()


def main(mode: str, out: Path) -> None:
    torch.set_num_threads(1)
    world = init_world(torch.device("cpu"))
    out.mkdir(parents=True, exist_ok=True)
    if mode == "grads":
        net = model()
        if world.distributed:
            net = DistributedDataParallel(synchronise_batch_norm(net, torch.device("cpu")))
        one_batch_grads(net, world.rank, world.size)
        if world.is_main:
            torch.save({n.removeprefix("module."): p.grad for n, p in net.named_parameters()}, out / "grads.pt")
        shutdown_world(world)
        return
    net = model()
    # A tenth of tiny's rate: Adam turns the rounding differences of all-reduced gradients into steps of up to the
    # rate on elements whose gradient is nearly zero, and the authors' fusion (gated sums, sigmoid level scores)
    # carries them further than the earlier one did. The equality itself is the grads mode's, step for step.
    config = replace(TrainConfig.tiny(), batch_size=4, accumulation=2, epochs=2, lr=2e-4)
    train(net, Synthetic(16, 1, CONFIG), Synthetic(6, 2, CONFIG), config, out, classes=list(EMOTIONS6.classes),
          class_polarity=POLARITY, world=world)  # fmt: skip
    if world.is_main:
        torch.save(net.state_dict(), out / "final.pt")
    shutdown_world(world)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
