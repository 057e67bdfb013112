"""Data parallelism of the manually optimised steps (issue 15: the distributed engine is Lightning).

DDP's reducer expects, on every backward, a gradient for every parameter it wraps
(``find_unused_parameters=False``). No phase of the AAE's step (DESIGN.md §2) touches all of E, G
and D_z, so each phase backpropagates on its own process only (DDP's ``no_sync``) and then
averages exactly the gradients its optimiser steps, in one all-reduce over the W processes:
g ← (1/W) Σ_r g_r. With local batches of equal size b (Lightning's ``DistributedSampler``) that is
the gradient of the mean loss over the global batch of W·b, as on one process.

Noise that a step draws is drawn for the global batch from one stream on every process, and each
process keeps its own rows: the generators advance identically on every process and as on one
process with the global batch. On one process every function here changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import nullcontext

import lightning as L
import torch
import torch.distributed as dist

__all__ = ["backward_locally", "average_gradients", "gather_batch", "local_share", "parameters_of"]


def backward_locally(module: L.LightningModule, loss: torch.Tensor) -> None:
    """``module.manual_backward(loss)`` without DDP's gradient all-reduce (its ``no_sync``)."""
    block = getattr(module.trainer.strategy, "block_backward_sync", nullcontext)
    with block():
        module.manual_backward(loss)


def parameters_of(optimizer) -> list[torch.Tensor]:
    """The parameters an optimiser steps, in its own order."""
    return [p for group in optimizer.param_groups for p in group["params"]]


def average_gradients(parameters: Iterable[torch.Tensor], world_size: int) -> None:
    """g ← (1/W) Σ_r g_r in place for every parameter with a gradient: one all-reduce per dtype
    and device over the flattened gradients. Every process must pass the same parameters."""
    if world_size == 1:
        return
    groups: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
    for p in parameters:
        if p.grad is not None:
            groups.setdefault((p.grad.dtype, p.grad.device), []).append(p.grad)
    for grads in groups.values():
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat.div_(world_size)
        for g, avg in zip(grads, flat.split([g.numel() for g in grads]), strict=True):
            g.copy_(avg.view_as(g))


def gather_batch(x: torch.Tensor, world_size: int) -> torch.Tensor:
    """The global batch ``(W·b, ...)`` in rank order from every process's ``x: (b, ...)``
    (no gradient flows back); every process must hold the same b."""
    if world_size == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(world_size)]
    dist.all_gather(parts, x.detach().contiguous())
    return torch.cat(parts)


def local_share(
    draw: Callable[[int], torch.Tensor], n: int, rank: int, world_size: int
) -> torch.Tensor:
    """Rows [r·n, (r+1)·n) of ``draw(W·n)``: process r's share of noise drawn for the global
    batch; ``draw(m) -> (m, ...)`` from a generator seeded alike on every process."""
    return draw(n * world_size)[rank * n : (rank + 1) * n]
