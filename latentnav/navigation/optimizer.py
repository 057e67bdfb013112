"""Path-level navigation (DESIGN.md §3): all T − 1 interior points of all pairs optimised at once.

The energy E(z_1..z_{T−1}) is an :class:`~latentnav.navigation.energy.Energy` (a sum of terms;
default :func:`~latentnav.navigation.energy.default_energy`). Endpoints stay exact.
Initialised from SLERP (or another method's path, e.g. the stepwise navigator's), Adam with an
optional cosine learning-rate decay and a per-pair convergence mask: a pair stops once its energy
changes by less than ``tol`` relatively. Masks, not indexing, so there is no host synchronisation
inside the loop on CUDA. A pair whose energy or gradient turns non-finite stops where it is; a
non-finite point is never returned.

Records: ``energy`` (B,) of the returned path, ``iterations`` (B,) int64 the pair was optimised for;
with a compass ℓ also ``d_score`` σ(ℓ) and ``accepted`` |σ(ℓ) − 0.5| < ε, (B, T + 1).
Shapes: z_a, z_b (B, d); paths (B, T + 1, d); energies (B,).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch import nn

from latentnav._modules import frozen
from latentnav.interpolation import _slerp, interpolate
from latentnav.navigation.energy import Energy, PathContext, default_energy
from latentnav.navigation.methods import Callback, Method, make_method, register_method
from latentnav.navigation.path import LatentPath

__all__ = ["OptimizerConfig", "PathOptimizer", "optimize", "resample", "equal_arc"]


@dataclass(frozen=True, kw_only=True)
class OptimizerConfig:
    """steps: T (≥ 2); iterations: Adam iterations at most (0 returns the initial path); lr: Adam
    learning rate (latent units); tol: a pair stops once |ΔE| / |E| < tol; lr_decay: cosine from lr
    down to lr · lr_decay (1: constant); smoothing: α of the path preconditioner, the gradient
    replaced by (I + α L)⁻¹ ∇ with L the second difference along the path (CHOMP's covariant
    step, Ratliff et al. 2009; 0: the plain gradient); smooth: what the preconditioner acts on,
    ``"gradient"`` (before Adam) or ``"step"`` (Adam's step, so its per-coordinate scaling does
    not undo the kernel); coarse: k > 1 optimises a path of T₀ steps instead, T₀ the largest
    divisor of T with 2 ≤ T₀ ≤ ⌈T / k⌉ (none, e.g. T prime or T ≤ 3: the plain optimiser), its point
    terms × T / T₀ (:meth:`~latentnav.navigation.energy.Energy.with_point_scale`: their sum is
    the same integral with fewer points; MaxJump is not rescaled), then resamples it to T steps
    by SLERP along its segments, every coarse point kept; only from SLERP (``path``, not
    ``from_start``); refine: with ``coarse``, then this many iterations at T from the resampled
    path under the unscaled energy (0: the resampled path as it is); compact: evaluate only the
    pairs still active (those not yet within ``tol``), so converged pairs cost nothing (a host
    sync per iteration; None: on CPU only, masks on other devices); reparametrize: every this
    many iterations the interior points are moved to equal decoded arc length along the path
    (:func:`equal_arc`, with the decoded steps of that iteration's evaluation), so the points
    optimised are the evenly spaced frames a viewer sees (the string method, E, Ren and
    Vanden-Eijnden 2002; 0: never); eps: band of the ``accepted`` record (reporting only)."""

    steps: int = 32
    iterations: int = 100
    lr: float = 0.05
    tol: float = 1e-4
    lr_decay: float = 1.0
    smoothing: float = 0.0
    smooth: str = "gradient"
    coarse: int = 1
    refine: int = 0
    reparametrize: int = 0
    compact: bool | None = None
    eps: float = 0.1

    def __post_init__(self) -> None:
        if not (isinstance(self.steps, int) and self.steps >= 2):
            raise ValueError(f"steps must be an int ≥ 2, got {self.steps!r}")
        if not (isinstance(self.iterations, int) and self.iterations >= 0):
            raise ValueError(f"iterations must be an int ≥ 0, got {self.iterations!r}")
        for name in ("lr", "tol", "eps"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not (math.isfinite(self.smoothing) and self.smoothing >= 0):
            raise ValueError(f"smoothing must be a finite float ≥ 0, got {self.smoothing!r}")
        if not (isinstance(self.coarse, int) and self.coarse >= 1):
            raise ValueError(f"coarse must be an int ≥ 1, got {self.coarse!r}")
        for name in ("refine", "reparametrize"):
            if not (isinstance(getattr(self, name), int) and getattr(self, name) >= 0):
                raise ValueError(f"{name} must be an int ≥ 0, got {getattr(self, name)!r}")
        if self.compact not in (None, True, False):
            raise ValueError(f"compact must be None, True or False, got {self.compact!r}")
        if self.smooth not in ("gradient", "step"):
            raise ValueError(f"smooth must be 'gradient' or 'step', got {self.smooth!r}")
        if not 0 < self.lr_decay <= 1:
            raise ValueError(f"lr_decay must be in (0, 1], got {self.lr_decay}")


def optimize(
    energy: Energy,
    decoder: nn.Module,
    start: torch.Tensor,
    config: OptimizerConfig,
    callback: Callback | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Minimise ``energy`` over the interior of ``start`` (B, T + 1, d), modules already frozen
    → (path (B, T + 1, d), energy (B,) of that path, iterations (B,) int64). ``callback`` sees
    ``{"i", "z", "energy", "active"}`` at every iteration (energy before that iteration's step)."""
    c, device = config, start.device
    inner = start[:, 1:-1].clone().requires_grad_(True)
    optimizer = torch.optim.Adam([inner], lr=c.lr)
    active = torch.ones(len(start), dtype=torch.bool, device=device)
    iterations = torch.zeros(len(start), dtype=torch.int64, device=device)
    previous = None
    smoother = _smoother(start.shape[1] - 2, c.smoothing, start) if c.smoothing > 0 else None
    reference = PathContext(start, decoder)  # the start path: terms measure against it
    compact = c.compact if c.compact is not None else device.type == "cpu"
    rows, part_reference = len(start), reference  # compacting: the active pairs and their start
    lengths = reference.squared_steps.sqrt() if c.reparametrize else None  # (B, T), decoded
    for i in range(c.iterations):
        if c.lr_decay < 1:
            cosine = 0.5 * (1 + math.cos(math.pi * i / max(c.iterations - 1, 1)))
            optimizer.param_groups[0]["lr"] = c.lr * (c.lr_decay + (1 - c.lr_decay) * cosine)
        full = torch.cat([start[:, :1], inner, start[:, -1:]], 1)
        optimizer.zero_grad(set_to_none=True)
        if compact and previous is not None and not bool(active.all()):
            index = active.nonzero()[:, 0]
            if len(index) != rows:  # active pairs only ever leave: a new count, a new set
                rows, part_reference = len(index), reference.subset(index)
            value = previous.clone()
            if rows:
                context = PathContext(full[index], decoder, part_reference)
                part = energy(context)
                part.sum().backward()
                value[index] = part.detach()
                if lengths is not None:
                    lengths[index] = context.squared_steps.detach().sqrt()
            if inner.grad is None:  # nothing was evaluated
                inner.grad = torch.zeros_like(inner)
        else:
            context = PathContext(full, decoder, reference)
            value = energy(context)
            value.sum().backward()
            if lengths is not None:
                lengths = context.squared_steps.detach().sqrt()
        with torch.no_grad():  # A pair whose energy or gradient is not finite stops here.
            active &= torch.isfinite(value) & torch.isfinite(inner.grad).flatten(1).all(1)
        keep = active[:, None, None]  # masks, not indexing: no host sync on CUDA
        grad = inner.grad
        if smoother is not None and c.smooth == "gradient":
            grad = torch.einsum("ij,bjd->bid", smoother, grad)
        inner.grad.copy_(torch.where(keep, grad, torch.zeros_like(grad)))
        before = inner.detach().clone()
        optimizer.step()
        with torch.no_grad():
            if smoother is not None and c.smooth == "step":
                inner.copy_(before + torch.einsum("ij,bjd->bid", smoother, inner - before))
            if lengths is not None and (i + 1) % c.reparametrize == 0:
                moved = torch.cat([start[:, :1], inner, start[:, -1:]], 1)
                inner.copy_(equal_arc(moved, lengths, moved.shape[1] - 1)[:, 1:-1])
            inner.copy_(torch.where(keep, inner, before))  # Converged pairs stay put.
            iterations += active.to(torch.int64)
            if callback is not None:
                callback({"i": i, "z": full.detach(), "energy": value.detach(), "active": active})
            if previous is not None:
                change = (previous - value.detach()).abs() / value.detach().abs().clamp_min(1e-8)
                active &= change > c.tol
            previous = value.detach()
    with torch.no_grad():
        finite = torch.isfinite(inner).flatten(1).all(1)[:, None, None]
        inner = torch.where(finite, inner.detach(), start[:, 1:-1])  # never a non-finite point
        full = torch.cat([start[:, :1], inner, start[:, -1:]], 1)
        final = energy(PathContext(full, decoder, reference))
    return full, final, iterations


def equal_arc(z: torch.Tensor, lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """Polylines z (B, M, d) with decoded segment lengths (B, M − 1) → (B, T + 1, d), T =
    ``steps``: the points at equal decoded arc length, linear in latent space on each segment
    (the ends kept)."""
    b, m, d = z.shape
    lengths = lengths.to(z)
    cum = torch.cat([lengths.new_zeros(b, 1), lengths.cumsum(1)], 1)  # (B, M)
    target = cum[:, -1:] * torch.linspace(0, 1, steps + 1, dtype=z.dtype, device=z.device)
    j = (torch.searchsorted(cum, target.contiguous(), right=True) - 1).clamp(0, m - 2)
    alpha = (target - cum.gather(1, j)) / lengths.gather(1, j).clamp_min(1e-12)
    alpha = alpha.clamp(0, 1)[..., None]
    left = z.gather(1, j[..., None].expand(-1, -1, d))
    right = z.gather(1, (j + 1)[..., None].expand(-1, -1, d))
    out = left + alpha * (right - left)
    out[:, 0], out[:, -1] = z[:, 0], z[:, -1]
    return out


def coarse_steps(steps: int, coarse: int) -> int | None:
    """T₀ of ``OptimizerConfig.coarse``: the largest divisor of T in [2, ⌈T / k⌉], else None."""
    if coarse <= 1:
        return None
    top = math.ceil(steps / coarse)
    return next((t for t in range(min(top, steps - 1), 1, -1) if steps % t == 0), None)


def resample(z: torch.Tensor, steps: int) -> torch.Tensor:
    """A path (B, T₀ + 1, d) → (B, T + 1, d), T = ``steps``: the points at s = j·T₀/T of its
    index, each by SLERP on its segment (T a multiple of T₀ keeps every node)."""
    b, n, d = z.shape
    j = torch.arange(steps + 1, device=z.device) * (n - 1)  # s = j / T, exact in integers
    k = (j // steps).clamp(max=n - 2)
    t = ((j - k * steps).to(z) / steps).repeat(b)
    a, c = z[:, k].reshape(-1, d), z[:, k + 1].reshape(-1, d)
    return _slerp(a, c, t).view(b, steps + 1, d)


def _smoother(n: int, alpha: float, like: torch.Tensor) -> torch.Tensor:
    """(I + α L)⁻¹ (n, n), L = tridiag(−1, 2, −1): the path's second difference, ends fixed."""
    eye = torch.eye(n, dtype=torch.float64)
    laplacian = 2 * eye - torch.diag(torch.ones(n - 1, dtype=torch.float64), 1)
    laplacian = laplacian - torch.diag(torch.ones(n - 1, dtype=torch.float64), -1)
    return torch.linalg.inv(eye + alpha * laplacian).to(like)


@register_method("optimizer")
class PathOptimizer(Method):
    """``PathOptimizer(aae, energy, compass, init, config, **fields)``. ``energy`` defaults to
    ``default_energy(aae, compass)`` (``with_classes`` on the AAE's stored label-free classes,
    else ``label_free``); ``compass`` (logit module ℓ) defaults to ``aae.compass`` and
    gives the ``d_score``/``accepted`` records; ``init``: the starting path, ``"slerp"`` (default)
    or any method (object or registered name); ``fields`` override those of ``config``."""

    def __init__(
        self,
        aae: nn.Module,
        energy: Energy | None = None,
        compass: nn.Module | None = None,
        init: Method | str = "slerp",
        config: OptimizerConfig | None = None,
        **fields: Any,
    ):
        super().__init__(aae)
        self.settings = replace(config or OptimizerConfig(), **fields)
        self.compass = compass if compass is not None else getattr(aae, "compass", None)
        if energy is None:
            if self.compass is None:
                raise ValueError(
                    "the path optimiser's default energy needs a compass: fit one with "
                    "latentnav.compass.fit_compass(aae, images), attach it as aae.compass "
                    "(or pass compass=), or pass energy="
                )
            energy = default_energy(aae, self.compass)
        self.energy = energy
        self.init = init if isinstance(init, Method) or init == "slerp" else make_method(init, aae)

    def config(self) -> dict[str, Any]:
        init = self.init if isinstance(self.init, str) else self.init.name
        energy = self.energy.config() if hasattr(self.energy, "config") else repr(self.energy)
        return {**asdict(self.settings), "energy": energy, "init": init}

    def _start(self, z_a: torch.Tensor, z_b: torch.Tensor) -> torch.Tensor:
        if self.init == "slerp":
            return interpolate(z_a, z_b, self.settings.steps, "slerp")
        start = self.init.path(z_a, z_b).z.detach()
        if start.shape[1] != self.settings.steps + 1:
            raise ValueError(
                f"init's path has {start.shape[1] - 1} steps, the optimiser {self.settings.steps}"
            )
        return start

    def _path(self, z_a, z_b, callback):
        coarse = coarse_steps(self.settings.steps, self.settings.coarse)
        if coarse is not None:
            return self._coarse_path(z_a, z_b, coarse, callback)
        with frozen(*self.modules()):
            start = self._start(z_a, z_b)
        return self.from_start(start, z_a, z_b, callback)

    def _coarse_path(self, z_a, z_b, coarse, callback):
        """The ``coarse`` option: optimise T₀ = ``coarse`` steps, resample to T, then ``refine``
        iterations at T; the records: ``energy`` that of the returned path under the unscaled
        energy after a refine, else that of the T₀ path under the scaled energy (the same
        integral with fewer points, as optimised: no decoder pass over the T + 1 points), and
        the iterations of both runs; ``callback`` sees the coarse iterations, then the fine
        ones."""
        if self.init != "slerp":
            raise ValueError("coarse > 1 starts from SLERP; pass init='slerp' or coarse=1")
        steps, refine = self.settings.steps, self.settings.refine
        with frozen(*self.modules()):
            start = interpolate(z_a, z_b, coarse, "slerp")
            energy = self.energy.with_point_scale(steps / coarse)
            settings = replace(self.settings, steps=coarse)
            z0, value, iterations = optimize(energy, self.aae.decoder, start, settings, callback)
            z = resample(z0, steps)
            z[:, 0], z[:, -1] = z_a, z_b
            if refine:
                fine = replace(self.settings, iterations=refine)
                z, value, more = optimize(self.energy, self.aae.decoder, z, fine, callback)
                iterations = iterations + more
            return self._finish(z, {"energy": value, "iterations": iterations})

    def from_start(
        self,
        start: torch.Tensor,
        z_a: torch.Tensor,
        z_b: torch.Tensor,
        callback: Callback | None = None,
    ) -> LatentPath:
        """Optimise from a given path ``start`` (B, T + 1, d) whose endpoints are replaced by the
        checked z_a, z_b (B, d)."""
        with frozen(*self.modules()):
            start = start.detach().to(z_a).clone()
            start[:, 0], start[:, -1] = z_a, z_b
            z, energy, iterations = optimize(
                self.energy, self.aae.decoder, start, self.settings, callback
            )
            return self._finish(z, {"energy": energy, "iterations": iterations})

    def _finish(self, z: torch.Tensor, records: dict[str, torch.Tensor]) -> LatentPath:
        if self.compass is not None:
            with torch.no_grad():
                d_score = torch.sigmoid(self.compass(z.flatten(0, 1))).view(z.shape[:2])
            records["d_score"] = d_score
            records["accepted"] = (d_score - 0.5).abs() < self.settings.eps
        return LatentPath(z, records, self.name, self.config())

    def modules(self) -> list[nn.Module]:
        """The decoder, every module of the energy and the compass: frozen while optimising."""
        found = [self.aae.decoder, *self.energy_modules()]
        return found + ([self.compass] if self.compass is not None else [])

    def energy_modules(self) -> list[nn.Module]:
        return self.energy.modules() if hasattr(self.energy, "modules") else []
