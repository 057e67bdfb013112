"""Sampling from prior draws of a shape (DESIGN.md §4): the front doors over the samplers of
:mod:`latentnav.sampling`. :func:`sample` draws ``shape = (B, d)`` latents with a sampler picked
by name; :func:`sample_chunked` streams a large batch in chunks (bounded memory) with noise per
sample index, so the chunk size does not change the samples; ``pc_sample``,
``annealed_langevin_sample`` and ``ode_sample`` are :func:`sample` with one sampler each.
"""

from __future__ import annotations

import torch

from latentnav._chunks import SAMPLING_CHUNK, IndexNoise, check_chunk_size, map_chunks
from latentnav.sampling import SAMPLERS, Callback, SampleResult, ScoreFn, _prior, time_grid
from latentnav.sde import SDE

__all__ = ["sample", "sample_chunked", "pc_sample", "annealed_langevin_sample", "ode_sample"]


def sample(
    score_fn: ScoreFn,
    sde: SDE,
    shape: tuple[int, int],
    sampler: str = "pc",
    *,
    steps: int | None = None,
    levels: int | None = None,
    eps: float = 1e-3,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    z_T: torch.Tensor | None = None,
    **opts,
) -> SampleResult:
    """Draw ``shape = (B, d)`` samples with the sampler named ``sampler`` (``SAMPLERS``) from
    prior samples (or ``z_T``) over ``time_grid(sde, steps, eps)``; ``levels`` (NCSN's name) is
    the number of grid points, steps + 1. Without either, the sampler's default grid."""
    fn, ts = _grid(sde, sampler, steps, levels, eps, device, dtype)
    shape = _check_shape(shape)
    if z_T is not None:
        if tuple(z_T.shape) != tuple(shape):
            raise ValueError(f"z_T must have shape {tuple(shape)}, got {tuple(z_T.shape)}")
        z = z_T
    else:
        z = _prior(sde, shape, generator, device, dtype)
    return fn(score_fn, sde, z, ts, generator=generator, **opts)


def sample_chunked(
    score_fn: ScoreFn,
    sde: SDE,
    shape: tuple[int, int],
    sampler: str = "pc",
    *,
    seed: int = 0,
    chunk_size: int = SAMPLING_CHUNK,
    steps: int | None = None,
    levels: int | None = None,
    eps: float = 1e-3,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    z_T: torch.Tensor | None = None,
    callback: Callback | None = None,
    **opts,
) -> SampleResult:
    """:func:`sample` of ``shape = (B, d)`` in chunks of at most ``chunk_size`` samples (default
    16384): memory is bounded by the chunk. Sample i's prior draw and noise come from
    ``IndexNoise(seed)`` at row i, so every chunk size gives the same samples where the sampler
    treats samples independently: every predictor, annealed Langevin and a fixed-grid ODE (exact
    up to the rounding of batched matrix products). The Langevin corrector (its step averages
    norms over the batch) and an adaptive ODE solver (one step size per batch) couple the
    samples of a chunk: there chunked and unchunked agree in distribution, not sample by sample.
    ``callback`` sees each chunk's steps in turn, with ``"offset"``, the chunk's first sample;
    ``nfe`` is the most that any chunk spent (per sample, as for :func:`sample`), ``extras`` are
    concatenated. ``sample_chunked(..., chunk_size=B)`` is the unchunked run."""
    fn, ts = _grid(sde, sampler, steps, levels, eps, device, dtype)
    n, d = _check_shape(shape)
    check_chunk_size(chunk_size)
    if z_T is not None and tuple(z_T.shape) != (n, d):
        raise ValueError(f"z_T must have shape {(n, d)}, got {tuple(z_T.shape)}")

    def run(start: int, stop: int) -> SampleResult:
        noise = IndexNoise(seed, start)
        z = (
            z_T[start:stop]
            if z_T is not None
            else _prior(sde, (stop - start, d), noise, device, dtype)
        )
        observe = None if callback is None else (lambda info: callback({**info, "offset": start}))
        return fn(score_fn, sde, z, ts, generator=noise, callback=observe, **opts)

    parts = map_chunks(run, n, chunk_size)
    extras = {k: torch.cat([p.extras[k] for p in parts]) for k in parts[0].extras}
    return SampleResult(torch.cat([p.z for p in parts]), max(p.nfe for p in parts), extras)


def _grid(sde: SDE, sampler: str, steps, levels, eps, device, dtype):
    """The sampler named ``sampler`` and its time grid (``levels`` = steps + 1; default: the
    sampler's own number of steps)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {tuple(SAMPLERS)}, got {sampler!r}")
    fn = SAMPLERS[sampler]
    if levels is not None:
        steps = levels - 1
    steps = steps if steps is not None else (fn.default_steps or 1)
    return fn, time_grid(sde, steps, eps, device=device, dtype=dtype)


def _check_shape(shape: object) -> tuple[int, int]:
    """shape = (B, d) with B, d ints ≥ 1."""
    ok = isinstance(shape, tuple | list) and len(shape) == 2
    ok = ok and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in shape)
    if not ok:
        raise ValueError(f"shape must be (B, d) with ints B, d ≥ 1, got {shape!r}")
    return int(shape[0]), int(shape[1])


def pc_sample(
    score_fn: ScoreFn,
    sde: SDE,
    shape: tuple[int, int],
    predictor: str = "reverse_diffusion",
    corrector: str | None = "langevin",
    steps: int = 1000,
    **kw,
) -> SampleResult:
    """:func:`sample_pc` from prior samples of ``shape`` (:func:`sample`'s options)."""
    return sample(
        score_fn, sde, shape, "pc", predictor=predictor, corrector=corrector, steps=steps, **kw
    )


def annealed_langevin_sample(score_fn, sde, shape, levels: int = 10, **kw) -> SampleResult:
    """:func:`sample_annealed_langevin` over ``levels`` levels from prior samples of ``shape``."""
    if not (isinstance(levels, int) and levels >= 2):
        raise ValueError(f"levels must be an int ≥ 2, got {levels!r}")
    return sample(score_fn, sde, shape, "langevin", levels=levels, **kw)


def ode_sample(score_fn, sde, shape, steps: int | None = None, **kw) -> SampleResult:
    """:func:`sample_ode` from prior samples of ``shape``; ``steps`` sizes a fixed-grid method's
    grid (an adaptive method needs none)."""
    return sample(score_fn, sde, shape, "ode", steps=steps, **kw)
