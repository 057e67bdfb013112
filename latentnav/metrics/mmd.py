"""Maximum mean discrepancy between two samples (Gretton et al. 2012), RBF kernels."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from latentnav._checks import check_latents

__all__ = ["mmd2"]


def mmd2(
    x: torch.Tensor, y: torch.Tensor, bandwidths: Sequence[float] | None = None
) -> torch.Tensor:
    """Unbiased MMD² with a sum of RBF kernels k(a, b) = exp(−‖a − b‖² / (2 h²)).

    x: (N, d), y: (M, d), N, M ≥ 2. ``bandwidths`` default to the median pairwise distance of the
    pooled sample times (0.5, 1, 2). Returns a scalar tensor (may be slightly negative at p = q).
    """
    check_latents(x, None, "x")
    check_latents(y, x.shape[1], "y")
    if x.shape[0] < 2 or y.shape[0] < 2:
        raise ValueError(f"mmd2 needs ≥ 2 points in each sample, got {x.shape[0]} and {y.shape[0]}")
    pooled = torch.cat([x, y])
    d2 = torch.cdist(pooled, pooled).square()
    if bandwidths is None:
        median = d2[~torch.eye(len(pooled), dtype=torch.bool, device=d2.device)].median().sqrt()
        scales = median * torch.tensor([0.5, 1.0, 2.0], device=d2.device, dtype=d2.dtype)
    else:
        scales = torch.as_tensor(bandwidths, device=d2.device, dtype=d2.dtype)
    k = torch.exp(-d2.unsqueeze(0) / (2 * scales.view(-1, 1, 1) ** 2)).sum(0)
    n, m = x.shape[0], y.shape[0]
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    sum_xx = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    sum_yy = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return sum_xx + sum_yy - 2 * kxy.mean()
