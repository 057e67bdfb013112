"""Frames under a jump cap (DESIGN.md §3; issue 12, "frames reparameterised"): the T + 1 frames of
a path re-chosen along it so that no decoded step exceeds c times the straight path's longest.

A base method's path (default the optimiser with its default energy) is subdivided into a dense
polyline z_0..z_M (each segment split into ``subdivide`` linear pieces in latent space), decoded
once. Dynamic programming then picks indices 0 = j_0 < j_1 < … < j_T = M minimising

    Σ_{k=1}^{T−1} c(z_{j_k})   subject to   max_k ‖x_{j_{k+1}} − x_{j_k}‖ ≤ max(c·Δ̂, b*)

with c(z) the point terms of an energy (:meth:`~latentnav.navigation.energy.Energy.per_point`:
density, cycle, classes, ink; the endpoints those of the pair; in the default navigator all but the
cycle, :func:`choice_costs`), x = G(z), Δ̂ the largest decoded step
of SLERP between the same endpoints and b* the least largest step any choice of T steps along the
polyline allows (a bottleneck programme run first): the cap binds wherever the polyline allows it,
and where it does not the largest step is as small as the polyline allows. Where the base path's
steps are already within the cap its own frames are candidates, so the choice can only lower the
point terms of a path that keeps to the cap.

With ``mix`` the candidates also hold the interiors of polylines λ · path + (1 − λ) · SLERP,
each point at its position along the path; a step only moves forward in position (the
``order`` of :func:`select_frames`). λ = 0 puts SLERP's own frames among them, so every c ≥ 1
can be held.

Records: ``frame_index`` (B, T + 1) int64 into the candidate points, ``over_cap`` (B,) the largest
step's excess over c·Δ̂ (0 where the cap holds), and the base's per-pair records.
Shapes: z_a, z_b (B, d); paths (B, T + 1, d); dense points (B, M + 1, d).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from latentnav._modules import frozen
from latentnav.interpolation import interpolate
from latentnav.navigation.energy import Cycle, Energy, PathContext, default_energy
from latentnav.navigation.methods import Method, check_steps, make_method, register_method
from latentnav.navigation.path import LatentPath

__all__ = ["select_frames", "CappedFrames", "FastCappedFrames", "capped_optimizer", "choice_costs"]

DEFAULT_RATIO = 1.2  # c and pieces per segment of the default navigator (RESULTS §6.15, dev pairs)
DEFAULT_SUBDIVIDE = 8
DEFAULT_MIX: tuple[float, ...] = ()
DEFAULT_COARSE = 4  # "capped_fast": T / 4 steps, 50 iterations, JumpCap(10, c) (§6.16, dev)
DEFAULT_ITERATIONS = 50
DEFAULT_CAP_WEIGHT = 10.0
DISTANCES = 2**23  # pairwise distances held at once (G · N², G pairs of N points each)


def select_frames(
    frames: torch.Tensor,
    costs: torch.Tensor,
    steps: int,
    cap: torch.Tensor,
    order: torch.Tensor | None = None,
) -> torch.Tensor:
    """Indices (B, T + 1) int64 of the module docstring's programme: ``frames`` (B, N, P)
    decoded candidate points, the first the start and the last the end, ``costs`` (B, N) (those
    of the two ends are ignored), ``steps`` T, ``cap`` (B,) the largest allowed step, ``order``
    (N,) each point's position along the path (default 0..N − 1): a step goes from i to j only
    where order_i < order_j. Computed in the inputs' precision, without gradients (float32 from
    CappedFrames: the programmes only compare and add, but a float32 ``cdist`` over many pixels
    goes through matrix products, about 0.1 % relative error on 784-pixel frames, so a step may
    pass the cap by that much; ``over_cap`` is measured directly on the chosen frames)."""
    with torch.no_grad():
        return _select_frames(frames.detach(), costs.detach(), steps, cap.detach(), order)


def _select_frames(frames, costs, steps, cap, order):
    b, m1 = costs.shape
    order = torch.arange(m1, device=costs.device) if order is None else order.to(costs.device)
    if (
        order.shape != (m1,)
        or not (order[0] < order[1:-1]).all()
        or not (order[1:-1] < order[-1]).all()
    ):
        raise ValueError(f"order must be ({m1},), first least and last greatest, got {order!r}")
    levels = int(torch.unique(order).numel())
    if not (isinstance(steps, int) and 1 <= steps <= levels - 1):
        raise ValueError(
            f"steps must be an int in [1, {levels - 1}] (positions − 1), got {steps!r}"
        )
    if frames.shape[:2] != (b, m1) or cap.shape != (b,):
        raise ValueError(
            f"frames must be (B, N, P) and cap (B,) with B, N = {b}, {m1}; got "
            f"{tuple(frames.shape)} and {tuple(cap.shape)}"
        )
    dtype = torch.promote_types(frames.dtype, costs.dtype)  # the inputs' precision
    x = frames.flatten(2).to(dtype)
    forward = order[None, :] < order[:, None]  # (N_j, N_i): i before j
    dist = torch.cdist(x, x).transpose(1, 2).contiguous()  # (B, N_j, N_i): step i → j
    dist = dist.masked_fill_(~forward, float("inf"))  # forward only
    c = costs.to(dtype).clone()
    c[:, 0] = c[:, -1] = 0
    cap = cap.to(dtype)
    index, total = _cheapest(dist, c, steps, cap)
    over = ~torch.isfinite(total)  # no choice within the cap: bound b* (one host sync)
    if over.any():
        rows = over.nonzero().flatten()
        bound = torch.maximum(cap[rows], _bottleneck(dist[rows], steps))
        index[rows] = _cheapest(dist[rows], c[rows], steps, bound)[0]
    return index


def _bottleneck(dist: torch.Tensor, steps: int) -> torch.Tensor:
    """b* (B,): the least largest step of any T steps from the first point to the last, over
    ``dist`` (B, N_j, N_i) of steps i → j (inf where a step is not allowed)."""
    b, n, _ = dist.shape
    reach = torch.full((b, n), float("inf"), dtype=dist.dtype, device=dist.device)
    reach[:, 0] = 0  # the least largest step to each index; k = 0: at index 0
    work = torch.empty_like(dist)
    for k in range(1, steps + 1):
        reach = torch.maximum(dist, reach[:, None, :], out=work).amin(2)
        if k < steps:
            reach[:, -1] = float("inf")  # the end only as the last frame
    return reach[:, -1]


def _cheapest(dist, c, steps, bound):
    """The least Σ c over T steps each no longer than ``bound`` (B,) → (indices (B, T + 1),
    totals (B,), inf where no choice exists). Each point's allowed predecessors are gathered
    first (W of them at most, in increasing index), so a step of the programme costs B·W·N, not
    B·N²; ties go to the lowest index."""
    b, n, _ = dist.shape
    allowed = dist <= bound[:, None, None]  # (B, N_j, N_i)
    count = allowed.sum(2)  # (B, N_j)
    width = max(int(count.amax()), 1)  # one host sync
    slot = torch.where(allowed, allowed.cumsum(2) - 1, width)  # rank among j's predecessors
    source = torch.arange(n, device=dist.device).expand(b, n, n)
    pred = torch.zeros(b, n, width + 1, dtype=torch.int64, device=dist.device)
    pred = pred.scatter_(2, slot, source)[:, :, :width]  # (B, N, W): predecessors i of j
    invalid = torch.arange(width, device=dist.device) >= count[:, :, None]
    best = torch.full((b, n), float("inf"), dtype=dist.dtype, device=dist.device)
    best[:, 0] = 0  # k = 0: at index 0
    flat, back = pred.reshape(b, -1), []
    for k in range(1, steps + 1):
        spread = best.gather(1, flat).view(b, n, width).masked_fill_(invalid, float("inf"))
        best, arg = spread.min(2)
        best = best + (c if k < steps else 0)
        if k < steps:
            best[:, -1] = float("inf")
        back.append(pred.gather(2, arg[:, :, None])[:, :, 0])
    index = torch.empty(b, steps + 1, dtype=torch.int64, device=dist.device)
    index[:, -1] = n - 1
    for k in range(steps, 0, -1):
        index[:, k - 1] = back[k - 1].gather(1, index[:, k : k + 1])[:, 0]
    return index, best[:, -1]


def _dense(z: torch.Tensor, subdivide: int) -> torch.Tensor:
    """(B, T + 1, d) → (B, T · subdivide + 1, d), each segment split linearly."""
    s = torch.linspace(0, 1, subdivide + 1, dtype=z.dtype, device=z.device)[:-1]
    pieces = z[:, :-1, None] + s[None, None, :, None] * (z[:, 1:, None] - z[:, :-1, None])
    return torch.cat([pieces.flatten(1, 2), z[:, -1:]], 1)


@register_method("capped")
class CappedFrames(Method):
    """``CappedFrames(aae, base=None, ratio=1.2, subdivide=8, mix=(), energy=None)``: ``base`` a
    method (object or name; default the optimiser with its default energy), ``ratio`` c,
    ``subdivide`` the pieces per segment of the dense polyline, ``mix`` weights λ of further
    candidate polylines λ · path + (1 − λ) · SLERP (λ = 0: SLERP itself, with which every c ≥ 1
    can be held), ``energy`` the point costs (default the base's energy). ``callback`` goes to
    the base."""

    def __init__(
        self,
        aae: nn.Module,
        base: Method | str | None = None,
        ratio: float = DEFAULT_RATIO,
        subdivide: int = DEFAULT_SUBDIVIDE,
        mix: tuple[float, ...] = DEFAULT_MIX,
        energy: Energy | None = None,
        steps: int | None = None,
    ):
        super().__init__(aae)
        steps = None if steps is None else check_steps(steps)
        if not ratio > 0:
            raise ValueError(f"ratio (c) must be > 0, got {ratio!r}")
        if not (isinstance(subdivide, int) and subdivide >= 1):
            raise ValueError(f"subdivide must be an int ≥ 1, got {subdivide!r}")
        mix = tuple(float(w) for w in mix)
        if not all(0 <= w < 1 for w in mix):
            raise ValueError(f"mix must hold weights λ in [0, 1), got {mix!r}")
        base = "optimizer" if base is None else base
        self.base = base if isinstance(base, Method) else make_method(base, aae)
        self.energy = energy if energy is not None else getattr(self.base, "energy", None)
        if self.energy is None or not hasattr(self.energy, "per_point"):
            raise ValueError("capped frames need energy= (an Energy) for a base without one")
        self.ratio, self.subdivide, self.mix, self.steps = float(ratio), subdivide, mix, steps

    def config(self) -> dict[str, Any]:
        base = self.base.config()
        steps = self.steps if self.steps is not None else base.get("steps")
        costs = self.energy.config() if hasattr(self.energy, "config") else repr(self.energy)
        return {"steps": steps, "ratio": self.ratio, "subdivide": self.subdivide,
                "mix": list(self.mix), "costs": costs,
                "base": {"name": self.base.name, **base}}  # fmt: skip

    def _path(self, z_a, z_b, callback):
        return self.select(self.base._path(z_a, z_b, callback))

    def select(self, base: LatentPath) -> LatentPath:
        """The capped frames along a given path (``base.z`` (B, T₀ + 1, d), its endpoints kept)."""
        z0 = base.z.detach()
        group = max(1, DISTANCES // self._count(z0.shape[1] - 1) ** 2)
        parts = [self._choose(z0[i : i + group]) for i in range(0, len(z0), group)]
        z, index, over = (torch.cat(p) for p in zip(*parts, strict=True))
        z[:, 0], z[:, -1] = z0[:, 0], z0[:, -1]
        per_pair = {k: v for k, v in base.records.items() if v.shape == (len(z0),)}
        records = {**per_pair, "frame_index": index, "over_cap": over}
        return LatentPath(z, records, self.name, self.config())

    def _count(self, steps: int) -> int:
        """N, the candidate points of :meth:`_candidates` for a base path of ``steps`` steps."""
        return (1 + len(self.mix)) * steps * self.subdivide + 1

    def _candidates(self, path: torch.Tensor, straight: torch.Tensor):
        """(G, T + 1, d) path and SLERP → candidate points (G, N, d) (start first, end last, the
        base polyline's points, then each mixed polyline's interior) and their order (N,)."""
        dense = _dense(path, self.subdivide)
        m = dense.shape[1] - 1
        mixed = [_dense(w * path + (1 - w) * straight, self.subdivide)[:, 1:-1] for w in self.mix]
        z = torch.cat([dense[:, :-1], *mixed, dense[:, -1:]], 1)
        position = torch.arange(m + 1, device=path.device)
        order = torch.cat([position[:-1], *[position[1:-1]] * len(mixed), position[-1:]])
        return z, order

    def _choose(self, path: torch.Tensor):
        """One group of pairs' base path (G, T₀ + 1, d) → (z, frame_index, over_cap), T + 1
        frames (T = ``steps``, default T₀)."""
        base_steps = path.shape[1] - 1
        steps = self.steps if self.steps is not None else base_steps
        modules = self.energy.modules() if hasattr(self.energy, "modules") else []
        with frozen(self.aae.decoder, *modules), torch.no_grad():
            straight = interpolate(path[:, 0], path[:, -1], steps, "slerp")
            along = (
                straight
                if steps == base_steps
                else interpolate(path[:, 0], path[:, -1], base_steps, "slerp")
            )
            dense, order = self._candidates(path, along)
            context = PathContext(dense, self.aae.decoder)
            costs = torch.nn.functional.pad(self.energy.per_point(context), (1, 1))
            cap = self.ratio * PathContext(straight, self.aae.decoder).squared_steps.amax(1).sqrt()
            frames = context.images.view(*dense.shape[:2], -1)
            index = select_frames(frames, costs, steps, cap, order)
            z = dense.gather(1, index[..., None].expand(-1, -1, dense.shape[-1]))
            chosen = frames.gather(1, index[..., None].expand(-1, -1, frames.shape[-1]))
            over = (chosen.diff(dim=1).norm(dim=-1).amax(1) - cap).clamp_min(0)
        return z, index, over

    def modules(self) -> list[nn.Module]:
        return self.base.modules() if hasattr(self.base, "modules") else []


DEFAULT_OPTIMIZER = {"coarse": 4, "iterations": 50, "reparametrize": 1}  # RESULTS §6.17 (dev)


def choice_costs(energy: Energy) -> Energy:
    """The point costs the default frame choice ranks its candidates by: ``energy``'s terms but
    :class:`~latentnav.navigation.energy.Cycle` (density, classes, ink; RESULTS §6.20: as clean on
    300 dev pairs at d = 8, 16 and 32, without an encoder pass over the candidates); ``energy``
    itself when the cycle is all it has."""
    terms = tuple(t for t in energy.terms if not isinstance(t, Cycle))
    return Energy(*terms) if terms else energy


def capped_optimizer(aae: nn.Module, **options: Any) -> CappedFrames:
    """The default navigation method (RESULTS §6.15, §6.17, §6.20): the optimiser coarse to fine
    with its points kept at equal decoded arc length (:data:`DEFAULT_OPTIMIZER`: T / 4 steps, 50
    iterations, reparametrised every iteration), ``options`` its fields (``steps``,
    ``iterations``, ``energy``, ...; ``coarse=1, iterations=100, reparametrize=0`` the plain
    optimiser of §6.15; another ``init`` than SLERP runs at T), its frames re-chosen under the
    default cap by the energy's point terms but the cycle (:func:`choice_costs`)."""
    defaults = dict(DEFAULT_OPTIMIZER)
    if options.get("init", "slerp") != "slerp":  # coarse to fine starts from SLERP
        defaults["coarse"] = 1
    options = {**defaults, **options}
    base = make_method("optimizer", aae, **options)
    return CappedFrames(aae, base=base, energy=choice_costs(base.energy))


@register_method("capped_fast")
class FastCappedFrames(CappedFrames):
    """``FastCappedFrames(aae, ratio=1.2, subdivide=8, **options)``: :class:`CappedFrames` over
    the optimiser coarse to fine (``coarse`` = 4: T / 4 steps where 4 divides T, their point
    terms × 4, see :class:`~latentnav.navigation.optimizer.OptimizerConfig`; 50 iterations;
    :func:`~latentnav.navigation.energy.default_energy` with JumpCap(10, c)): a fifth of §6.15's
    default (RESULTS §6.16); today's default (:func:`capped_optimizer`, reparametrised, no jump
    cap in its energy) costs about the same and is cleaner (§6.17); ``options`` are the
    optimiser's and replace these."""

    def __init__(
        self,
        aae: nn.Module,
        ratio: float = DEFAULT_RATIO,
        subdivide: int = DEFAULT_SUBDIVIDE,
        **options: Any,
    ):
        options = {"coarse": DEFAULT_COARSE, "iterations": DEFAULT_ITERATIONS, **options}
        compass = options.get("compass")
        compass = compass if compass is not None else getattr(aae, "compass", None)
        if options.get("energy") is None and compass is not None:
            options["energy"] = default_energy(
                aae, compass, cap_weight=DEFAULT_CAP_WEIGHT, cap_ratio=float(ratio)
            )
        base = make_method("optimizer", aae, **options)
        super().__init__(aae, base=base, ratio=ratio, subdivide=subdivide)
