"""Data-parallel training under `torchrun`: process group, per-rank sampling, synchronised batch norm.

The design goal is that N processes with per-process batch B/N reproduce one process with batch B:
- every rank draws the same epoch permutation and takes every N-th index, so the union of the ranks' k-th
  batches is the single process's k-th batch;
- batch norm statistics are reduced over all ranks (`nn.SyncBatchNorm` on GPU; `DistributedBatchNorm` on CPU,
  where torch's SyncBatchNorm refuses to run), so the normalisation sees the whole global batch;
- DDP averages gradients, which equals the gradient of the mean loss over the global batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Sampler


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def init_world(device: torch.device) -> World:
    """The process group `torchrun` describes in the environment (gloo on CPU, NCCL on CUDA), or a world of one."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def shutdown_world(world: World) -> None:
    if world.distributed and dist.is_initialized():
        dist.destroy_process_group()


class EpochShuffle(Sampler[int]):
    """A seeded permutation per epoch, of which this rank takes every `world`-th index (all of it for one rank);
    padded so that every rank gets the same number of items."""

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1) -> None:
        self.n, self.seed, self.rank, self.world, self.epoch = n, seed, rank, world, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1000 + self.epoch)
        order = torch.randperm(self.n, generator=generator).tolist()
        # Every rank must run as many batches as the others (each backward is a collective): pad with the
        # permutation's first items, as DistributedSampler does. A world of one is never padded.
        order += order[: len(self) * self.world - self.n]
        return iter(order[self.rank :: self.world])

    def __len__(self) -> int:
        return -(-self.n // self.world)


class _SumOverRanks(torch.autograd.Function):
    """All-reduce (sum) whose gradient is again the sum over ranks: each rank's statistics feed every rank's loss."""

    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class DistributedBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch norm whose training statistics are summed over all ranks with a differentiable all-reduce.
    Works on any device (torch's SyncBatchNorm is GPU-only); inference uses the running statistics."""

    def _check_input_dim(self, input: Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {input.dim()}-D")

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        dims = [0, *range(2, x.dim())]
        channels = x.shape[1]
        local = torch.cat([x.sum(dims), (x * x).sum(dims), x.new_full((1,), x.numel() / channels)])
        total = _SumOverRanks.apply(local) if dist.is_initialized() else local
        count = total[-1]
        mean = total[:channels] / count
        var = total[channels : 2 * channels] / count - mean * mean
        shape = [1, channels] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                unbiased = var * count / torch.clamp(count - 1, min=1)
                momentum = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(unbiased.detach(), momentum)
        return y


def synchronise_batch_norm(model: nn.Module, device: torch.device) -> nn.Module:
    """Every batch-norm layer of `model` reduced over the process group (state dict keys unchanged)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return _replace_batch_norm(model)


def _replace_batch_norm(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(module, DistributedBatchNorm):
        new = DistributedBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                   module.track_running_stats)  # fmt: skip
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, _replace_batch_norm(child))
    return module


def all_reduce_sum(values: list[float], device: torch.device, world: World) -> list[float]:
    """Sum of `values` over all ranks (unchanged for a world of one)."""
    if not world.distributed:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()
