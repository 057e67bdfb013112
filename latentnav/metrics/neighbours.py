"""Nearest-neighbour distances, chunked to bound memory (DESIGN.md §7: k-NN metrics, OOD banks).

``x: (M, F)`` queries against ``bank: (N, F)``; the (M, N) distance matrix is never held whole,
only ``(chunk, N)`` blocks of it.
"""

from __future__ import annotations

import torch

from latentnav._checks import check_latents

__all__ = ["squared_distances", "knn_distances", "nearest_distance"]


def squared_distances(x: torch.Tensor, bank: torch.Tensor) -> torch.Tensor:
    """‖x_i − b_j‖² ``(M, N)`` for ``x: (M, F)``, ``bank: (N, F)``, clamped at 0."""
    d2 = x.square().sum(1, keepdim=True) + bank.square().sum(1) - 2 * x @ bank.T
    return d2.clamp_min_(0)


def knn_distances(
    x: torch.Tensor,
    bank: torch.Tensor,
    k: int,
    exclude_self: bool = False,
    chunk: int = 1024,
) -> torch.Tensor:
    """Euclidean distances to the k nearest bank points, ascending: ``(M, k)``.

    ``exclude_self``: ``x`` is ``bank`` itself; each point's zero distance to itself is skipped.
    """
    check_latents(x, None, "x")
    check_latents(bank, x.shape[1], "bank")
    n = bank.shape[0] - (1 if exclude_self else 0)
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}] for a bank of {bank.shape[0]} points, got {k}")
    if exclude_self and x.shape[0] != bank.shape[0]:
        raise ValueError("exclude_self=True needs x to be the bank itself (same N)")
    out = []
    for start in range(0, x.shape[0], chunk):
        d2 = squared_distances(x[start : start + chunk], bank)
        if exclude_self:
            rows = torch.arange(d2.shape[0], device=d2.device)
            d2[rows, rows + start] = float("inf")
        out.append(d2.topk(k, dim=1, largest=False).values.sqrt())
    return torch.cat(out)


def nearest_distance(
    x: torch.Tensor, bank: torch.Tensor, metric: str = "euclidean", chunk: int = 1024
) -> torch.Tensor:
    """Distance to the nearest bank point ``(M,)``: ``"euclidean"``, or ``"cosine"`` (1 − max
    cosine similarity; rows are L2-normalised, a zero row has similarity 0 to everything)."""
    if metric == "cosine":
        x = torch.nn.functional.normalize(x, dim=1)
        bank = torch.nn.functional.normalize(bank, dim=1)
        check_latents(x, None, "x")
        check_latents(bank, x.shape[1], "bank")
        best = [(part @ bank.T).amax(1) for part in x.split(chunk)]
        return 1 - torch.cat(best)
    if metric != "euclidean":
        raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")
    return knn_distances(x, bank, 1, chunk=chunk)[:, 0]
