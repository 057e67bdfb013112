"""Navigation methods: one call and a registry (DESIGN.md §3).

Every method is an object built from an AAE and options, with one call

    method.path(z_a, z_b, *, callback=None, chunk_size=None) -> LatentPath   z_a, z_b: (d,)/(B, d)

that checks its inputs the same way (:func:`check_pair`) and calls ``callback(info: dict)`` at
every step or iteration (the keys are the method's; ``"z"`` is always the current points, of the
chunk whose first pair is ``"offset"``), so a video of the process needs no flags. Pairs are
navigated in chunks of at most ``chunk_size`` (``path(..., chunk_size=)``, else the method's
``chunk_size``, default 1024): memory is bounded by the chunk, and a method whose pairs do not
interact (noise per pair, :class:`~latentnav._chunks.IndexNoise`) gives the same path for any
chunk size. ``make_method(name, aae, **options)`` picks one by name from
``METHODS``; a new method is a new class under ``@register_method(name)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from latentnav._checks import check_latents
from latentnav._chunks import NAVIGATION_CHUNK, check_chunk_size, map_chunks
from latentnav.interpolation import interpolate
from latentnav.navigation.path import LatentPath

__all__ = [
    "METHODS",
    "Callback",
    "Method",
    "register_method",
    "make_method",
    "check_pair",
    "Lerp",
    "Slerp",
]

Callback = Callable[[dict[str, Any]], None]
METHODS: dict[str, type[Method]] = {}


def register_method(name: str) -> Callable[[type[Method]], type[Method]]:
    """Class decorator: ``@register_method("slerp")`` makes the class available by name."""

    def add(cls: type[Method]) -> type[Method]:
        if name in METHODS:
            raise ValueError(f"a navigation method named {name!r} is already registered")
        METHODS[name] = cls
        cls.name = name
        return cls

    return add


def make_method(name: str, aae: nn.Module, **options: Any) -> Method:
    """``METHODS[name](aae, **options)``; the error lists the registered names."""
    if name not in METHODS:
        raise ValueError(f"unknown navigation method {name!r}; registered: {sorted(METHODS)}")
    return METHODS[name](aae, **options)


def check_pair(
    z_a: object, z_b: object, latent_dim: int | None, module: nn.Module | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """z_a, z_b: (d,) or (B, d) → detached (B, d) each, checked alike (floating, finite, B ≥ 1,
    latent dim, same shape, dtype and device, and those of ``module``'s parameters if given)."""
    z_a, z_b = _as_batch(z_a), _as_batch(z_b)
    check_latents(z_a, latent_dim, "z_a")
    check_latents(z_b, latent_dim, "z_b")
    if z_a.shape != z_b.shape:
        raise ValueError(
            f"z_a and z_b must have the same shape, got {tuple(z_a.shape)} and {tuple(z_b.shape)}"
        )
    if z_a.dtype != z_b.dtype or z_a.device != z_b.device:
        raise ValueError(
            f"z_a and z_b must share dtype and device, got {z_a.dtype}/{z_a.device}"
            f" and {z_b.dtype}/{z_b.device}"
        )
    param = next(module.parameters(), None) if module is not None else None
    if param is not None and (param.device != z_a.device or param.dtype != z_a.dtype):
        raise ValueError(
            f"z_a has dtype {z_a.dtype} on {z_a.device} but the model has "
            f"{param.dtype} on {param.device}; move one with .to()"
        )
    return z_a.detach(), z_b.detach()


def _as_batch(z: object) -> object:
    """(d,) → (1, d); anything else is left for :func:`check_latents` to judge."""
    return z[None] if isinstance(z, torch.Tensor) and z.ndim == 1 else z


def _at_offset(callback: Callback, first: int) -> Callback:
    return lambda info: callback({**info, "offset": first})


def check_steps(steps: object) -> int:
    if not (isinstance(steps, int) and not isinstance(steps, bool) and steps >= 1):
        raise ValueError(f"steps (T) must be an int ≥ 1, got {steps!r}")
    return steps


class Method:
    """Base of the navigation methods: ``path`` checks the pair, ``_path`` does the work on
    (B, d) latents. ``model`` is the module whose parameters z must match (dtype, device); the
    latent dim is checked against ``aae.latent_dim`` (when the AAE declares one). ``path``
    splits the pairs into chunks of ``chunk_size`` and calls ``_rows`` on each."""

    name: str = ""
    chunk_size: int = NAVIGATION_CHUNK

    def __init__(self, aae: nn.Module):
        self.aae = aae
        self.latent_dim: int | None = getattr(aae, "latent_dim", None)

    @property
    def model(self) -> nn.Module | None:
        return getattr(self.aae, "decoder", None)

    def config(self) -> dict[str, Any]:
        """The method's settings as plain (JSON-able) data, stored in the LatentPath."""
        return {}

    def path(
        self,
        z_a: torch.Tensor,
        z_b: torch.Tensor,
        *,
        callback: Callback | None = None,
        chunk_size: int | None = None,
    ) -> LatentPath:
        """z_a, z_b: (d,) or (B, d) → :class:`LatentPath` with z (B, T + 1, d), navigated in
        chunks of at most ``chunk_size`` pairs (default ``self.chunk_size``)."""
        z_a, z_b = check_pair(z_a, z_b, self.latent_dim, self.model)
        size = check_chunk_size(self.chunk_size if chunk_size is None else chunk_size)

        def run(start: int, stop: int) -> LatentPath:
            observe = None if callback is None else _at_offset(callback, start)
            return self._rows(z_a[start:stop], z_b[start:stop], observe, start)

        return LatentPath.cat(map_chunks(run, len(z_a), size))

    def _rows(self, z_a: torch.Tensor, z_b: torch.Tensor, callback: Callback | None, first: int):
        """One chunk, the pairs first..first + b − 1 of the call (b = len(z_a)); a method that
        draws noise overrides this to draw it per pair (``IndexNoise(seed, first)``)."""
        return self._path(z_a, z_b, callback)

    def _path(self, z_a: torch.Tensor, z_b: torch.Tensor, callback: Callback | None):
        raise NotImplementedError

    def between_images(self, x_a: torch.Tensor, x_b: torch.Tensor, **kw: Any) -> LatentPath:
        """Encode x_a, x_b: (B, *image_shape) first, then :meth:`path`."""
        with torch.no_grad():
            z_a, z_b = self.aae.encode(x_a), self.aae.encode(x_b)
        return self.path(z_a, z_b, **kw)


class _Straight(Method):
    """The direct path z_k = interp(z_a, z_b, k/T) (DESIGN.md §3, step 1); records nothing;
    ``callback`` sees every point k = 1..T as ``{"k", "z"}``."""

    interpolation = ""

    def __init__(self, aae: nn.Module, steps: int = 32):
        super().__init__(aae)
        self.steps = check_steps(steps)

    def config(self) -> dict[str, Any]:
        return {"steps": self.steps}

    def _path(self, z_a, z_b, callback):
        z = interpolate(z_a, z_b, self.steps, self.interpolation)
        z[:, 0], z[:, -1] = z_a, z_b
        if callback is not None:
            for k in range(1, self.steps + 1):
                callback({"k": k, "z": z[:, k]})
        return LatentPath(z, {}, self.name, self.config())


@register_method("lerp")
class Lerp(_Straight):
    interpolation = "lerp"


@register_method("slerp")
class Slerp(_Straight):
    interpolation = "slerp"
