"""Path-level navigation (DESIGN.md §3): all T − 1 interior points of all pairs optimised at once.

For one pair, with frames x_k = G(z_k), steps Δ_k = ‖x_{k+1} − x_k‖ (k = 0..T−1) and
log q(z) = log p(z) − ℓ(z) (DESIGN.md §2; ℓ from a calibrated compass), the energy is

    E(z_1..z_{T−1}) = T · Σ_k Δ_k²                                  (decoded-path energy)
                    + μ · T² · (Σ_k Δ_k^p)^{2/p}                      (largest jump, soft max)
                    + λ · Σ_{k=1}^{T−1} h(log q(z_k))                 (density)
                    + γ · Σ_{k=1}^{T−1} max(‖E(G(z_k)) − z_k‖² − κ, 0)  (autoencoder cycle)
                    + ν · Σ_{k=1}^{T−1} −log(p(ŷ_0 | z_k) + p(ŷ_T | z_k))  (classes, optional)

    h(u) = −u                                   when no threshold τ is given (the first version),
    h(u) = s · softplus((τ − u) / s)            a hinge: ≈ τ − u below τ, ≈ 0 above it
                                                (s = 0: the hard hinge max(τ − u, 0)).

The first term is the discrete energy of the decoded path (short, evenly spaced frames; for equal
steps it equals T²Δ²). The second is on the same scale (T^{2/p}·T²Δ² for equal steps) but follows
the *largest* step (the L^p norm tends to the max as p → ∞), so one long jump costs more than the
same length spread over many short steps.
The third keeps interior points where encoded data lives; with a threshold τ (e.g. a low
percentile of log q over encoded training images, :func:`log_q_threshold`) only points in thin
regions are pushed, and clean points are left to the smoothness terms. The fourth asks every
interior frame to be (nearly) a fixed point of the autoencoder's own encoder–decoder: blends and
smears that the decoder produces between data are re-encoded elsewhere, frames of the learned
manifold are not (κ ≥ 0 a tolerance, e.g. a percentile of the same error over encoded training
images, :func:`cycle_threshold`). It uses the AAE only, not the evaluation's classifier.
The fifth needs labelled data once: p(y | z) is a latent classifier
(:func:`latentnav.latent_classifier.fit_latent_classifier`) and ŷ_0, ŷ_T its predictions at the
endpoints (one term when they agree); it keeps every frame in one of the endpoints' classes, so
cleaned frames do not pass through a third class's mode.

Endpoints stay exact. Initialised from SLERP (or any given path, e.g. a navigator's), Adam with an
optional cosine learning-rate decay and a per-pair convergence mask: a pair stops once its energy
changes by less than ``tol`` relatively. Masks, not indexing, so there is no host synchronisation
inside the loop on CUDA.

Shapes: z_a, z_b (B, d); paths (B, T + 1, d); frames (B, T + 1, *image_shape); energies (B,).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from latentnav.interpolation import interpolate
from latentnav.latent_path import LatentPath

__all__ = [
    "PathOptimizerConfig",
    "optimize_paths",
    "path_energy",
    "log_q",
    "log_q_threshold",
    "cycle_error",
    "cycle_threshold",
]


@dataclass(frozen=True)
class PathOptimizerConfig:
    """Settings of :func:`optimize_paths` (energy in the module docstring).

    steps: T, number of segments (T + 1 points, T − 1 of them optimised).
    density_weight: λ ≥ 0, weight of the density term.
    iterations: Adam iterations at most (0 returns the initial path).
    lr: Adam learning rate (latent units).
    tol: a pair stops once |ΔE| / |E| < tol between two iterations.
    eps: band half-width for the ``accepted`` record, |D − 0.5| < eps (reporting only).
    log_q_threshold: τ of the hinge; None gives the plain −log q term of the first version.
    hinge_width: s ≥ 0, softplus smoothing of the hinge (0: hard hinge, zero gradient above τ).
    jump_weight: μ ≥ 0, weight of the soft max-jump term.
    jump_power: p ≥ 2 of the L^p norm over the steps in that term.
    lr_decay: the learning rate follows a cosine from lr down to lr · lr_decay (1: constant).
    cycle_weight: γ ≥ 0, weight of the autoencoder-cycle term (needs the encoder).
    cycle_threshold: κ ≥ 0, squared latent cycle error tolerated without cost.
    class_weight: ν ≥ 0, weight of the class term (needs a latent classifier).
    """

    steps: int = 32
    density_weight: float = 0.05
    iterations: int = 100
    lr: float = 0.05
    tol: float = 1e-4
    eps: float = 0.1
    log_q_threshold: float | None = None
    hinge_width: float = 1.0
    jump_weight: float = 0.0
    jump_power: float = 8.0
    lr_decay: float = 1.0
    cycle_weight: float = 0.0
    cycle_threshold: float = 0.0
    class_weight: float = 0.0

    def __post_init__(self) -> None:
        if not (isinstance(self.steps, int) and self.steps >= 2):
            raise ValueError(f"steps must be an int ≥ 2, got {self.steps!r}")
        for name in ("lr", "tol", "eps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in (
            "density_weight",
            "iterations",
            "hinge_width",
            "jump_weight",
            "cycle_weight",
            "cycle_threshold",
            "class_weight",
        ):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be ≥ 0, got {getattr(self, name)}")
        if not self.jump_power >= 2:
            raise ValueError(f"jump_power must be ≥ 2, got {self.jump_power}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay}")
        if self.log_q_threshold is not None and not math.isfinite(self.log_q_threshold):
            raise ValueError(f"log_q_threshold must be finite, got {self.log_q_threshold}")


def log_q(compass: nn.Module, prior: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """log q(z) = log p(z) − ℓ(z), exact for a calibrated compass ℓ: z (N, d) → (N,)."""
    return prior.log_prob(z) - compass(z)


@torch.no_grad()
def log_q_threshold(
    aae: nn.Module,
    compass: nn.Module,
    images: torch.Tensor,
    percentile: float = 5.0,
    batch_size: int = 4096,
) -> float:
    """The ``percentile``-th percentile of log q over encoded ``images`` (N, *image_shape): a
    hinge threshold τ below which only that share of real (encoded) data lies."""
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    device = next(aae.parameters()).device
    values = torch.cat(
        [
            log_q(compass, aae.prior, aae.encoder(x.to(device))).double()
            for x in images.split(batch_size)
        ]
    )
    return float(torch.quantile(values.cpu(), percentile / 100))


def cycle_error(encoder: nn.Module, z: torch.Tensor, frames: torch.Tensor) -> torch.Tensor:
    """‖E(x) − z‖² for frames x = G(z): z (N, d), frames (N, *image_shape) → (N,)."""
    return (encoder(frames) - z).square().sum(-1)


@torch.no_grad()
def cycle_threshold(
    aae: nn.Module, images: torch.Tensor, percentile: float = 50.0, batch_size: int = 4096
) -> float:
    """The ``percentile``-th percentile of ‖E(G(z)) − z‖², z = E(x), over ``images``: a cycle
    tolerance κ that real (encoded) data meets that often."""
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {percentile}")
    device = next(aae.parameters()).device
    values = []
    for x in images.split(batch_size):
        z = aae.encoder(x.to(device))
        values.append(cycle_error(aae.encoder, z, aae.decoder(z)).double().cpu())
    return float(torch.quantile(torch.cat(values), percentile / 100))


def _density_term(
    compass: nn.Module, prior: nn.Module, inner: torch.Tensor, c: PathOptimizerConfig
) -> torch.Tensor:
    """Σ_k h(log q(z_k)) over interior points inner: (B, T − 1, d) → (B,)."""
    b, n, d = inner.shape
    lq = log_q(compass, prior, inner.reshape(-1, d)).reshape(b, n)
    if c.log_q_threshold is None:
        return -lq.sum(1)
    below = c.log_q_threshold - lq
    if c.hinge_width == 0:
        return below.clamp_min(0).sum(1)
    return (c.hinge_width * F.softplus(below / c.hinge_width)).sum(1)


def _class_term(classifier: nn.Module, z: torch.Tensor) -> torch.Tensor:
    """Σ_k −log(p(ŷ_0 | z_k) + p(ŷ_T | z_k)) over interior points, ŷ the argmax at the endpoints
    (one term when they agree): z (B, T + 1, d) → (B,)."""
    b, n, d = z.shape
    logp = classifier(z.reshape(b * n, d)).log_softmax(-1).view(b, n, -1)
    ends = logp[:, [0, -1]].detach().argmax(-1)  # (B, 2)
    picked = logp[:, 1:-1].gather(2, ends[:, None, :].expand(-1, n - 2, -1))  # (B, T − 1, 2)
    same = (ends[:, 0] == ends[:, 1])[:, None]
    return -torch.where(same, picked[..., 0], picked.logsumexp(-1)).sum(1)


def _jump_term(squared_steps: torch.Tensor, power: float) -> torch.Tensor:
    """(Σ_k Δ_k^p)^{2/p} from squared steps (B, T) → (B,), scaled by the largest step for range."""
    top = squared_steps.detach().amax(1, keepdim=True).clamp_min(1e-12)
    # The largest term is 1, so the sum is ≥ 1 unless every step is 0 (then its gradient is 0
    # and the clamp keeps x^{2/p} away from its infinite slope at 0).
    return (squared_steps / top).pow(power / 2).sum(1).clamp_min(1).pow(2 / power) * top[:, 0]


def path_energy(
    decoder: nn.Module,
    compass: nn.Module,
    prior: nn.Module,
    z: torch.Tensor,
    weight: float | PathOptimizerConfig,
    encoder: nn.Module | None = None,
    classifier: nn.Module | None = None,
) -> torch.Tensor:
    """E per pair for full paths z: (B, T + 1, d) → (B,). ``weight``: λ alone (the first
    version's energy, smoothness − λ·Σ log q) or a full :class:`PathOptimizerConfig`;
    ``encoder`` is needed when the config's cycle weight is > 0, ``classifier`` (z (N, d) →
    logits (N, C)) when its class weight is."""
    c = weight if isinstance(weight, PathOptimizerConfig) else None
    if c is None:
        c = PathOptimizerConfig(steps=max(z.shape[1] - 1, 2), density_weight=float(weight))
    b, n, d = z.shape
    images = decoder(z.reshape(b * n, d))  # (B·(T + 1), *image_shape)
    frames = images.reshape(b, n, -1)
    squared = frames.diff(dim=1).square().sum(2)  # (B, T)
    energy = (n - 1) * squared.sum(1)
    if c.jump_weight > 0:
        energy = energy + c.jump_weight * (n - 1) ** 2 * _jump_term(squared, c.jump_power)
    if c.density_weight > 0 and n > 2:
        energy = energy + c.density_weight * _density_term(compass, prior, z[:, 1:-1], c)
    if c.cycle_weight > 0 and n > 2:
        if encoder is None:
            raise ValueError("cycle_weight > 0 needs the encoder")
        inner = images.view(b, n, *images.shape[1:])[:, 1:-1].flatten(0, 1)
        error = cycle_error(encoder, z[:, 1:-1].reshape(-1, d), inner).view(b, n - 2)
        energy = energy + c.cycle_weight * (error - c.cycle_threshold).clamp_min(0).sum(1)
    if c.class_weight > 0 and n > 2:
        if classifier is None:
            raise ValueError("class_weight > 0 needs a latent classifier")
        energy = energy + c.class_weight * _class_term(classifier, z)
    return energy


def optimize_paths(
    aae: nn.Module,
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    compass: nn.Module,
    config: PathOptimizerConfig | None = None,
    progress: bool = False,
    init: torch.Tensor | None = None,
    classifier: nn.Module | None = None,
) -> LatentPath:
    """z_a, z_b: (B, d) → :class:`LatentPath` (B, T + 1, d); ``corrections`` holds, at every
    interior point, the number of iterations its pair was optimised for. ``init`` (B, T + 1, d):
    the starting path (default SLERP); its endpoints are replaced by z_a, z_b. ``classifier``:
    a latent classifier z (N, d) → logits (N, C), needed when ``config.class_weight`` > 0."""
    c = config or PathOptimizerConfig()
    if z_a.shape != z_b.shape or z_a.ndim != 2:
        raise ValueError(
            f"z_a and z_b must both be (B, d), got {tuple(z_a.shape)}, {tuple(z_b.shape)}"
        )
    if init is not None:
        expected = (z_a.shape[0], c.steps + 1, z_a.shape[1])
        if tuple(init.shape) != expected:
            raise ValueError(f"init must have shape {expected}, got {tuple(init.shape)}")
        if not torch.isfinite(init).all():
            raise ValueError("init contains non-finite values")
    encoder = getattr(aae, "encoder", None) if c.cycle_weight > 0 else None
    if c.cycle_weight > 0 and encoder is None:
        raise ValueError("cycle_weight > 0 needs an AAE with an encoder")
    if c.class_weight > 0 and classifier is None:
        raise ValueError(
            "class_weight > 0 needs a classifier: latent_classifier.fit_latent_classifier"
        )
    classifier = classifier if c.class_weight > 0 else None
    modules = [aae.decoder, compass] + [m for m in (encoder, classifier) if m is not None]
    states = [(m, m.training, [p.requires_grad for p in m.parameters()]) for m in modules]
    for m in modules:
        m.eval().requires_grad_(False)
    try:
        if init is None:
            path = interpolate(z_a.detach(), z_b.detach(), c.steps, "slerp")
        else:
            path = init.detach().to(z_a).clone()
            path[:, 0], path[:, -1] = z_a.detach(), z_b.detach()
        inner = path[:, 1:-1].clone().requires_grad_(True)
        optimizer = torch.optim.Adam([inner], lr=c.lr)
        active = torch.ones(len(z_a), dtype=torch.bool, device=z_a.device)
        iterations = torch.zeros(len(z_a), dtype=torch.int64, device=z_a.device)
        previous = None
        for i in tqdm(range(c.iterations), disable=not progress, desc="optimising paths"):
            if c.lr_decay < 1:
                cosine = 0.5 * (1 + math.cos(math.pi * i / max(c.iterations - 1, 1)))
                optimizer.param_groups[0]["lr"] = c.lr * (c.lr_decay + (1 - c.lr_decay) * cosine)
            full = torch.cat([path[:, :1], inner, path[:, -1:]], 1)
            energy = path_energy(aae.decoder, compass, aae.prior, full, c, encoder, classifier)
            optimizer.zero_grad(set_to_none=True)
            energy.sum().backward()
            with torch.no_grad():  # A pair whose energy or gradient is not finite stops here.
                active &= torch.isfinite(energy) & torch.isfinite(inner.grad).flatten(1).all(1)
            keep = active[:, None, None]  # masks, not indexing: no host sync on CUDA
            inner.grad.copy_(torch.where(keep, inner.grad, torch.zeros_like(inner.grad)))
            before = inner.detach().clone()
            optimizer.step()
            with torch.no_grad():
                inner.copy_(torch.where(keep, inner, before))  # Converged pairs stay put.
                iterations += active.to(torch.int64)
                if previous is not None:
                    change = (previous - energy.detach()).abs() / energy.detach().abs().clamp_min(
                        1e-8
                    )
                    active &= change > c.tol
                previous = energy.detach()
        with torch.no_grad():
            finite = torch.isfinite(inner).flatten(1).all(1)[:, None, None]
            inner = torch.where(finite, inner.detach(), path[:, 1:-1])  # never a non-finite point
            full = torch.cat([path[:, :1], inner, path[:, -1:]], 1)
            d_score = torch.sigmoid(compass(full.flatten(0, 1))).view(full.shape[:2])
    finally:
        for m, training, grads in states:
            m.train(training)
            for p, g in zip(m.parameters(), grads, strict=True):
                p.requires_grad_(g)
    corrections = iterations[:, None].expand(-1, c.steps + 1).clone()
    corrections[:, 0] = corrections[:, -1] = 0
    return LatentPath(
        z=full,
        d_score=d_score,
        corrections=corrections,
        accepted=(d_score - 0.5).abs() < c.eps,
        config=None,
    )
