"""How good a time-dependent log-ratio ℓ_ψ(z, t) is: against a known one (the closed-form check of
DESIGN.md §5 / issue 11 §2), and per time bucket on held-out diffused points (accuracy and
calibration, :func:`evaluate_time_discriminator`).

With data and model both Gaussian mixtures, every diffused marginal is a Gaussian mixture again:
p_0 = Σ_k w_k N(μ_k, diag σ_k²) gives p_t = Σ_k w_k N(m(t) μ_k, diag(m(t)² σ_k² + s(t)²)) for the
affine-drift SDEs of sde.py, so ℓ*(z, t) = log p_t^data(z) − log p_t^model(z) and ∇_z ℓ* are exact.
Shapes: ``z: (B, d)``, ``t: (B,)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from latentnav._checks import check_latents
from latentnav.density_ratio import calibration, evaluate_ratio
from latentnav.priors import GaussianMixture
from latentnav.sde import SDE

__all__ = [
    "mixture_pair",
    "diffused_mixture_log_prob",
    "MixtureLogRatio",
    "log_ratio_fidelity",
    "TimeColumn",
    "evaluate_time_discriminator",
]

LogRatioFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _diagonal_variances(mixture: GaussianMixture) -> torch.Tensor:
    tril = mixture.scale_tril
    diag = torch.diagonal(tril, dim1=-2, dim2=-1)
    if not torch.equal(tril, torch.diag_embed(diag)):
        raise ValueError("mixture must have diagonal covariances (scale_tril diagonal)")
    return diag.square()  # (K, d)


def diffused_mixture_log_prob(
    mixture: GaussianMixture, sde: SDE, z: torch.Tensor, t: torch.Tensor
) -> torch.Tensor:
    """log p_t(z) for p_0 = ``mixture`` (diagonal covariances) under ``sde``.

    z: (B, d), t: (B,) → (B,).
    """
    if z.ndim != 2 or z.shape[1] != mixture.dim:
        raise ValueError(f"z must have shape (B, {mixture.dim}), got {tuple(z.shape)}")
    if t.shape != z.shape[:1]:
        raise ValueError(f"t must have shape ({z.shape[0]},), got {tuple(t.shape)}")
    m, s = (c.to(z.dtype)[:, None, None] for c in sde.marginal(t))
    means, var0 = mixture.means.to(z), _diagonal_variances(mixture).to(z)
    var = m.square() * var0 + s.square()  # (B, K, d)
    diff = z[:, None, :] - m * means  # (B, K, d)
    comp = -0.5 * (diff.square() / var + var.log() + math.log(2 * math.pi)).sum(-1)
    return torch.logsumexp(comp + mixture.weights.to(z).log(), dim=-1)


class MixtureLogRatio(nn.Module):
    """ℓ*(z, t) = log p_t^data(z) − log p_t^model(z) in closed form; the signature of a
    TimeDiscriminator, so it can stand in for one (``y`` is ignored)."""

    def __init__(self, data: GaussianMixture, model: GaussianMixture, sde: SDE):
        super().__init__()
        if data.dim != model.dim:
            raise ValueError(f"data and model must share a dim, got {data.dim} and {model.dim}")
        self.data, self.model, self.sde = data, model, sde

    def forward(
        self, z: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None
    ) -> torch.Tensor:
        lp = diffused_mixture_log_prob(self.data, self.sde, z, t)
        return lp - diffused_mixture_log_prob(self.model, self.sde, z, t)


def _value_and_grad(fn: LogRatioFn, z: torch.Tensor, t: torch.Tensor):
    with torch.enable_grad():
        z = z.detach().requires_grad_(True)
        value = fn(z, t)
        (grad,) = torch.autograd.grad(value.sum(), z)
    return value.detach(), grad


def log_ratio_fidelity(
    disc: LogRatioFn,
    sde: SDE,
    true_log_ratio: LogRatioFn,
    z0: torch.Tensor,
    t_buckets: int | Sequence[float] = 5,
    *,
    eps: float = 1e-3,
    generator: torch.Generator | None = None,
) -> list[dict[str, Any]]:
    """Per time bucket, how ℓ_ψ = ``disc(z, t)`` tracks ℓ* = ``true_log_ratio(z, t)``.

    ``z0: (N, d)`` clean points (draw them from the data so that the density is not negligible)
    are diffused to t ~ U(bucket) with one (t, ε) draw each per bucket. ``t_buckets``: a number of
    equal intervals of [eps, T] or their edges. Per bucket: ``pearson`` r(ℓ_ψ, ℓ*);
    ``grad_rel_error`` = √(Σ‖∇ℓ_ψ − ∇ℓ*‖² / Σ‖∇ℓ*‖²) over the points (a ratio of sums, so points
    where ∇ℓ* ≈ 0 do not blow it up); ``grad_cosine`` the mean cosine between the gradients;
    ``logit_rmse`` of ℓ_ψ − ℓ* after removing the mean offset; ``truth_std`` the spread of ℓ* and
    ``truth_grad_rms`` √(mean ‖∇ℓ*‖²), to read the others against.
    """
    check_latents(z0, None, "z0")
    if isinstance(t_buckets, int):
        if t_buckets < 1:
            raise ValueError(f"t_buckets must be ≥ 1, got {t_buckets}")
        edges = torch.linspace(eps, sde.T, t_buckets + 1, dtype=torch.float64).tolist()
    else:
        edges = [float(e) for e in t_buckets]
        if len(edges) < 2 or any(b <= a for a, b in zip(edges[:-1], edges[1:], strict=True)):
            raise ValueError(f"t_buckets edges must be ≥ 2 increasing times, got {edges}")
    if edges[0] <= 0 or edges[-1] > sde.T:
        raise ValueError(f"t_buckets must lie in (0, T = {sde.T}], got {edges[0]}..{edges[-1]}")
    out = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        u = torch.rand(len(z0), generator=generator, device=z0.device, dtype=z0.dtype)
        t = lo + (hi - lo) * u
        noise = torch.randn(z0.shape, generator=generator, device=z0.device, dtype=z0.dtype)
        zt = sde.perturb(z0, t, noise)[0]
        est, g_est = _value_and_grad(disc, zt, t)
        truth, g_true = _value_and_grad(true_log_ratio, zt, t)
        est, truth, g_est, g_true = (x.double() for x in (est, truth, g_est, g_true))
        pair = torch.stack([est, truth])
        pearson = float(torch.corrcoef(pair)[0, 1]) if len(z0) > 2 else math.nan
        centred = (est - est.mean()) - (truth - truth.mean())
        cosine = torch.nn.functional.cosine_similarity(g_est, g_true, dim=1, eps=1e-30)
        out.append(
            {
                "t_low": lo,
                "t_high": hi,
                "pearson": pearson,
                "grad_rel_error": float(
                    ((g_est - g_true).square().sum() / g_true.square().sum()).sqrt()
                ),
                "grad_cosine": float(cosine.mean()),
                "logit_rmse": float(centred.square().mean().sqrt()),
                "truth_std": float(truth.std()),
                "truth_grad_rms": float(g_true.square().sum(1).mean().sqrt()),
                "n_points": len(z0),
            }
        )
    return out


class TimeColumn(nn.Module):
    """Adapter ℓ(z ⊕ t [⊕ y]) = ℓ_ψ(z, t[, y]), so that density_ratio's evaluators, which call
    ``disc(x)``, see diffused points as rows ``x: (B, d + 1 [+ 1])``."""

    def __init__(self, disc: nn.Module, labelled: bool):
        super().__init__()
        self.disc, self.labelled = disc, labelled

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.labelled:
            return self.disc(x[:, :-2], x[:, -2], x[:, -1].long())
        return self.disc(x[:, :-1], x[:, -1])


def evaluate_time_discriminator(
    disc: nn.Module,
    real_zt: torch.Tensor,
    fake_zt: torch.Tensor,
    edges: torch.Tensor,
    bins: int = 10,
    labelled: bool = False,
) -> list[dict[str, Any]]:
    """Per interval [edges_i, edges_{i+1}) of t (the last one closed): balanced BCE, accuracy and
    calibration (ECE, Brier, reliability bins) of ``disc`` on diffused rows ``(N, d + 1)`` = z_t ⊕ t
    (``labelled``: ``(N, d + 2)`` = z_t ⊕ t ⊕ y)."""
    wrapped, out, col = TimeColumn(disc, labelled), [], -2 if labelled else -1
    pairs = list(zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True))
    for i, (lo, hi) in enumerate(pairs):
        last = i == len(pairs) - 1
        sel = [
            x[(x[:, col] >= lo) & ((x[:, col] <= hi) if last else (x[:, col] < hi))]
            for x in (real_zt, fake_zt)
        ]
        row: dict[str, Any] = {"t_low": lo, "t_high": hi, "n_real": len(sel[0])}
        row["n_fake"] = len(sel[1])
        if min(len(sel[0]), len(sel[1])) >= 1:
            row["loss"], row["accuracy"] = evaluate_ratio(wrapped, *sel)
            cal = calibration(wrapped, *sel, bins=bins)
            row.update(ece=cal["ece"], brier=cal["brier"], calibration=cal)
        out.append(row)
    return out


def mixture_pair(d: int) -> tuple[GaussianMixture, GaussianMixture]:
    """A data and a model Gaussian mixture in R^d that differ in means, stds and weights: the
    known-answer case of the closed-form log-ratio checks (tests and
    ``benchmarks/time_discriminator_fidelity.py`` use the same pairs)."""
    if d == 2:
        data = GaussianMixture(
            torch.tensor([[-1.5, 0.0], [1.5, 0.0]]), stds=0.4, weights=torch.tensor([0.7, 0.3])
        )
        model = GaussianMixture(
            torch.tensor([[-1.2, 0.3], [1.5, -0.2]]), stds=0.55, weights=torch.tensor([0.5, 0.5])
        )
        return data, model
    g = torch.Generator().manual_seed(1)
    mu = torch.randn(3, d, generator=g)
    data = GaussianMixture(mu, stds=0.5, weights=torch.tensor([0.5, 0.3, 0.2]))
    shifted = mu + 0.3 * torch.randn(3, d, generator=g)
    model = GaussianMixture(shifted, stds=0.65, weights=torch.tensor([0.3, 0.3, 0.4]))
    return data, model
