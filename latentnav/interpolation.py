"""Straight proposals between latents: LERP and SLERP (DESIGN.md §3, step 1).

SLERP here is spherical on the directions and linear in the norm,
    slerp(a, b, t) = ((1 − t)‖a‖ + t‖b‖) · [sin((1 − t)Ω) â + sin(tΩ) b̂] / sin Ω,
so that one proposal step composes exactly: slerp(slerp(a, b, s), b, u) = slerp(a, b, s + u(1 − s)).
The navigator's stepwise proposal slerp(z_k, z_b, 1/(T − k)) therefore walks the same points as the
direct path slerp(z_a, z_b, k/T) when nothing corrects it.
"""

from __future__ import annotations

import torch

from latentnav._checks import check_latents

__all__ = ["lerp", "slerp", "interpolate"]


def _check_ends(a: object, b: object) -> None:
    """The public functions' checks (the navigation methods check once, then call the private
    ones in their loops)."""
    check_latents(a, None, "a")
    check_latents(b, None, "b")
    if a.shape != b.shape or a.dtype != b.dtype or a.device != b.device:
        raise ValueError(
            f"a and b must have the same shape, dtype and device, got {tuple(a.shape)} "
            f"{a.dtype} {a.device} and {tuple(b.shape)} {b.dtype} {b.device}"
        )


def lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    """a, b: (B, d) floating, finite; t: scalar or (B,) → (B, d)."""
    _check_ends(a, b)
    return _lerp(a, b, t)


def _lerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | float) -> torch.Tensor:
    t = torch.as_tensor(t, dtype=a.dtype, device=a.device).reshape(-1, 1)
    return a + t * (b - a)


def _norm(x: torch.Tensor) -> torch.Tensor:
    """‖x‖ over the last dim, (…, 1), without overflow: the squares of entries ≈ 1e19 overflow
    float32, so rows whose plain norm is not finite are scaled by their largest entry first
    (other rows keep the plain norm bit for bit)."""
    plain = x.norm(dim=-1, keepdim=True)
    scale = x.abs().amax(-1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)
    return torch.where(torch.isfinite(plain), plain, scale * (x / scale).norm(dim=-1, keepdim=True))


def slerp(
    a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | float, eps: float = 1e-7
) -> torch.Tensor:
    """a, b: (B, d) floating, finite; t: scalar or (B,) → (B, d). Falls back to LERP of
    directions when a ∥ b."""
    _check_ends(a, b)
    return _slerp(a, b, t, eps)


def _slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor | float, eps: float = 1e-7):
    t = torch.as_tensor(t, dtype=a.dtype, device=a.device).reshape(-1, 1)
    norm_a, norm_b = _norm(a), _norm(b)
    unit_a = a / norm_a.clamp_min(eps)
    unit_b = b / norm_b.clamp_min(eps)
    cos = (unit_a * unit_b).sum(-1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.arccos(cos)
    sin = torch.sin(omega)
    near = sin < 1e-4
    safe_sin = torch.where(near, torch.ones_like(sin), sin)
    w_a = torch.where(near, 1 - t, torch.sin((1 - t) * omega) / safe_sin)
    w_b = torch.where(near, t, torch.sin(t * omega) / safe_sin)
    direction = w_a * unit_a + w_b * unit_b
    direction = direction / direction.norm(dim=-1, keepdim=True).clamp_min(eps)
    out = ((1 - t) * norm_a + t * norm_b) * direction
    return torch.where(t >= 1, b, torch.where(t <= 0, a, out))


def interpolate(
    a: torch.Tensor, b: torch.Tensor, steps: int, method: str = "slerp"
) -> torch.Tensor:
    """The direct path at t = k/steps, k = 0..steps: a, b (B, d) → (B, steps + 1, d)."""
    fn = {"slerp": _slerp, "lerp": _lerp}.get(method)
    if fn is None:
        raise ValueError(f"method must be 'slerp' or 'lerp', got {method!r}")
    if not (isinstance(steps, int) and not isinstance(steps, bool) and steps >= 1):
        raise ValueError(f"steps must be an int ≥ 1, got {steps!r}")
    _check_ends(a, b)
    ts = torch.linspace(0, 1, steps + 1, dtype=a.dtype, device=a.device)
    return torch.stack([fn(a, b, t) for t in ts], 1)
