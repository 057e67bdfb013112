"""Figures reused across latentnav (DESIGN.md §1, §3, §7): image grids, latent scatter, D_z maps
with paths, D along paths, metric-vs-setting curves, decoded path strips.

Every function builds a ``matplotlib.figure.Figure`` directly (no pyplot, no global figure
state, safe under the Agg backend) and returns it; :func:`save_figure` writes PNG or SVG.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

__all__ = [
    "save_figure",
    "image_grid",
    "image_grids",
    "latent_scatter",
    "discriminator_map",
    "path_profile",
    "metric_curves",
    "image_strip",
]

_FORMATS = {".png": "png", ".svg": "svg"}


def save_figure(fig: Figure, path: str | os.PathLike, dpi: int = 150) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix: .png or .svg), atomically.

    Parent folders are created; the figure is rendered to a temporary file in the same folder
    and renamed into place (:class:`latentnav.checkpoint.atomic_path`), so a reader never sees a
    half-written file.
    """
    if not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure, got {type(fig).__name__}")
    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"path must end in .png or .svg, got {str(path)!r}")
    from latentnav.checkpoint import atomic_path  # fsync, the umask's permissions, cleanup

    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        fig.savefig(handle, format=fmt, dpi=dpi, bbox_inches="tight")
    return path


# ----------------------------------------------------------------------------- argument checks


def _tensor(x: object, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    x = x.detach().cpu()
    if not x.is_floating_point():
        x = x.double()
    if x.numel() and not torch.isfinite(x).all():
        raise ValueError(f"{name} contains non-finite values (NaN or Inf)")
    return x.double()


def _image_tensor(x: object, ndim: int, shape_doc: str, name: str) -> torch.Tensor:
    x = _tensor(x, name)
    if x.ndim != ndim or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape {shape_doc} with B ≥ 1, got {tuple(x.shape)}")
    if x.shape[-3] not in (1, 3):
        raise ValueError(f"{name} must have C = 1 or 3 channels, got shape {tuple(x.shape)}")
    if x.min() < -1e-3 or x.max() > 1 + 1e-3:
        lo, hi = float(x.min()), float(x.max())
        raise ValueError(f"{name} must lie in [0, 1], got range [{lo:.3g}, {hi:.3g}]")
    return x.clamp(0, 1)


def _tile(images: torch.Tensor, pad: int = 1) -> np.ndarray:
    """images: (R, K, C, H, W) → canvas (R·(H+pad)+pad, K·(W+pad)+pad[, 3]); pad is white."""
    rows, cols, c, h, w = images.shape
    canvas = torch.ones(c, rows * (h + pad) + pad, cols * (w + pad) + pad, dtype=images.dtype)
    for r in range(rows):
        for k in range(cols):
            top, left = pad + r * (h + pad), pad + k * (w + pad)
            canvas[:, top : top + h, left : left + w] = images[r, k]
    out = canvas.numpy()
    return out[0] if c == 1 else out.transpose(1, 2, 0)


def _show_canvas(ax, canvas: np.ndarray) -> None:
    ax.imshow(canvas, cmap="gray" if canvas.ndim == 2 else None, vmin=0, vmax=1)
    ax.set_axis_off()


# ----------------------------------------------------------------------------- image figures


def image_grid(
    images: torch.Tensor, nrow: int | None = None, title: str | None = None, pad: int = 1
) -> Figure:
    """Images ``(N, C, H, W)`` in [0, 1] (C = 1 or 3) tiled ``nrow`` per row (default ≈ √N)."""
    images = _image_tensor(images, 4, "(N, C, H, W)", "images")
    n = images.shape[0]
    if nrow is None:
        nrow = math.ceil(math.sqrt(n))
    if not isinstance(nrow, int) or nrow < 1:
        raise ValueError(f"nrow must be a positive int, got {nrow!r}")
    rows = math.ceil(n / nrow)
    filler = torch.ones(rows * nrow - n, *images.shape[1:], dtype=images.dtype)
    canvas = _tile(torch.cat([images, filler]).view(rows, nrow, *images.shape[1:]), pad)
    scale = 6 / max(canvas.shape[:2])
    fig = Figure(figsize=(max(canvas.shape[1] * scale, 1.5), max(canvas.shape[0] * scale, 1.5)))
    ax = fig.add_subplot()
    _show_canvas(ax, canvas)
    if title:
        ax.set_title(title)
    return fig


def image_grids(groups: dict[str, torch.Tensor], nrow: int = 8, pad: int = 1) -> Figure:
    """Several image sets ``{title: (N, C, H, W)}`` as grids side by side, ``nrow`` per row."""
    if not groups:
        raise ValueError("groups must hold at least one image set")
    fig = Figure(figsize=(5 * len(groups), 5.4), layout="constrained")
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    for ax, (title, images) in zip(axes, groups.items(), strict=True):
        images = _image_tensor(images, 4, "(N, C, H, W)", title)
        rows = math.ceil(len(images) / nrow)
        filler = torch.ones(rows * nrow - len(images), *images.shape[1:], dtype=images.dtype)
        tiles = torch.cat([images, filler]).view(rows, nrow, *images.shape[1:])
        _show_canvas(ax, _tile(tiles, pad))
        ax.set_title(title)
    return fig


def image_strip(
    paths: torch.Tensor,
    max_rows: int = 8,
    max_frames: int | None = None,
    row_labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Decoded paths ``(B, T+1, C, H, W)`` in [0, 1]: one row per path (first ``max_rows``).

    ``max_frames`` keeps that many frames evenly spaced along each path (endpoints included).
    """
    paths = _image_tensor(paths, 5, "(B, T+1, C, H, W)", "paths")
    if max_rows < 1:
        raise ValueError(f"max_rows must be ≥ 1, got {max_rows}")
    paths = paths[:max_rows]
    if max_frames is not None:
        if max_frames < 2:
            raise ValueError(f"max_frames must be ≥ 2, got {max_frames}")
        keep = torch.linspace(0, paths.shape[1] - 1, min(max_frames, paths.shape[1]))
        paths = paths[:, keep.round().long()]
    if row_labels is not None and len(row_labels) < paths.shape[0]:
        raise ValueError(f"row_labels needs ≥ {paths.shape[0]} entries, got {len(row_labels)}")
    canvas = _tile(paths)
    scale = 10 / max(canvas.shape[1], 1)
    fig = Figure(figsize=(10, max(canvas.shape[0] * scale, 1.0) + (0.4 if title else 0)))
    ax = fig.add_subplot()
    _show_canvas(ax, canvas)
    if row_labels is not None:
        ax.set_axis_on()
        ax.set_xticks([])
        h = paths.shape[-2] + 1
        ax.set_yticks([1 + h * r + h / 2 for r in range(paths.shape[0])])
        ax.set_yticklabels(list(row_labels)[: paths.shape[0]])
        for side in ax.spines.values():
            side.set_visible(False)
    if title:
        ax.set_title(title)
    return fig


# ----------------------------------------------------------------------------- latent figures


def _colour_by_label(fig: Figure, ax, xy: np.ndarray, labels: np.ndarray | None) -> None:
    size = float(np.clip(3000 / len(xy), 2, 16))
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=size, alpha=0.6, color="tab:blue", linewidths=0)
        return
    classes = np.unique(labels)
    if len(classes) <= 10:
        for i, c in enumerate(classes):
            sel = labels == c
            ax.scatter(*xy[sel].T, s=size, alpha=0.7, color=f"C{i}", linewidths=0, label=str(c))
        ax.legend(title="class", markerscale=3, fontsize="small", loc="best", framealpha=0.8)
    else:
        sc = ax.scatter(xy[:, 0], xy[:, 1], s=size, alpha=0.7, c=labels, cmap="viridis")
        fig.colorbar(sc, ax=ax, label="class")


def latent_scatter(
    z: torch.Tensor,
    labels: torch.Tensor | None = None,
    prior=None,
    title: str | None = None,
    resolution: int = 150,
) -> Figure:
    """Latents ``z: (N, d)`` coloured by ``labels: (N,)``; d = 2 plotted as is (with the prior's
    log-density contours when ``prior`` has ``log_prob``), d > 2 projected on the first two
    principal components (the axis labels say so)."""
    z = _tensor(z, "z")
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] < 2:
        raise ValueError(f"z must have shape (N, d) with N ≥ 1 and d ≥ 2, got {tuple(z.shape)}")
    lab = None
    if labels is not None:
        if not isinstance(labels, torch.Tensor | np.ndarray):
            raise TypeError(f"labels must be a tensor of shape (N,), got {type(labels).__name__}")
        lab = torch.as_tensor(labels).detach().cpu().numpy()
        if lab.shape != (z.shape[0],):
            raise ValueError(f"labels must have shape ({z.shape[0]},), got {tuple(lab.shape)}")
    fig = Figure(figsize=(6, 5.5))
    ax = fig.add_subplot()
    d = z.shape[1]
    if d == 2:
        xy = z.numpy()
        ax.set_xlabel("$z_1$")
        ax.set_ylabel("$z_2$")
        if prior is not None:
            _prior_contours(ax, prior, xy, resolution)
    else:
        centred = z - z.mean(0)
        _, s, v = torch.linalg.svd(centred, full_matrices=False)
        xy = (centred @ v[:2].T).numpy()
        share = (s**2 / (s**2).sum().clamp_min(1e-30)).numpy()
        ax.set_xlabel(f"PCA 1 of d={d} ({100 * share[0]:.0f}% var.)")
        ax.set_ylabel(f"PCA 2 of d={d} ({100 * share[1]:.0f}% var.)")
    _colour_by_label(fig, ax, xy, lab)
    ax.set_title(title or f"latents (N={z.shape[0]}, d={d})")
    return fig


def _prior_contours(ax, prior, xy: np.ndarray, resolution: int) -> None:
    lo, hi = np.quantile(xy, 0.005, axis=0), np.quantile(xy, 0.995, axis=0)
    span = np.maximum(hi - lo, 1e-3)
    lo, hi = lo - 0.15 * span, hi + 0.15 * span
    gx, gy = np.linspace(lo[0], hi[0], resolution), np.linspace(lo[1], hi[1], resolution)
    grid = torch.tensor(np.stack(np.meshgrid(gx, gy), -1).reshape(-1, 2), dtype=torch.float32)
    with torch.no_grad():
        logp = torch.as_tensor(prior.log_prob(grid)).detach().cpu().double()
    if logp.shape != (grid.shape[0],):
        raise ValueError(f"prior.log_prob must return shape (B,), got {tuple(logp.shape)}")
    logp = logp.numpy().reshape(resolution, resolution)
    finite = logp[np.isfinite(logp)]
    if finite.size == 0:
        return
    top = finite.max()
    levels = np.linspace(max(finite.min(), top - 12), top, 9)[:-1]
    style = dict(levels=levels, cmap="Greys", linewidths=0.8, alpha=0.8)
    cs = ax.contour(gx, gy, np.where(np.isfinite(logp), logp, finite.min()), **style)
    ax.clabel(cs, fontsize=6, fmt="%.0f")


def discriminator_map(
    fn: Callable[[torch.Tensor], torch.Tensor],
    extent: tuple[float, float, float, float],
    resolution: int = 200,
    points: torch.Tensor | None = None,
    paths: torch.Tensor | None = None,
    label: str = "D_z",
    cmap: str = "RdBu_r",
    vmin: float | None = None,
    vmax: float | None = None,
    levels: Sequence[float] | None = None,
    title: str | None = None,
    batch_size: int = 8192,
) -> Figure:
    """Image of ``fn: (B, 2) → (B,)`` (D_z, or log_ratio) on ``extent = (x0, x1, y0, y1)``.

    ``points: (N, 2)`` are scattered, ``paths: (P, T+1, 2)`` drawn as polylines (○ start, ■ end).
    ``levels`` are contour levels; by default 0.5 (the D ≈ 0.5 equilibrium) when the map spans
    it; pass ``()`` for none. Colour range defaults to [0, 1] for values in [0, 1], else symmetric.
    """
    if len(extent) != 4 or not extent[0] < extent[1] or not extent[2] < extent[3]:
        raise ValueError(f"extent must be (x0, x1, y0, y1) with x0 < x1, y0 < y1, got {extent}")
    if resolution < 2:
        raise ValueError(f"resolution must be ≥ 2, got {resolution}")
    gx = torch.linspace(extent[0], extent[1], resolution)
    gy = torch.linspace(extent[2], extent[3], resolution)
    grid = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), -1).reshape(-1, 2)
    values = []
    with torch.no_grad():
        for chunk in grid.split(batch_size):
            out = fn(chunk)
            if not isinstance(out, torch.Tensor) or out.shape != (chunk.shape[0],):
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ValueError(f"fn must map (B, 2) to a tensor of shape (B,), got {got}")
            values.append(out.detach().cpu().double())
    image = torch.cat(values).view(resolution, resolution).numpy()
    if vmin is None or vmax is None:
        if image.min() >= 0 and image.max() <= 1:
            lo, hi = 0.0, 1.0
        else:
            m = float(np.abs(image[np.isfinite(image)]).max(initial=1.0))
            lo, hi = -m, m
        vmin, vmax = (lo if vmin is None else vmin), (hi if vmax is None else vmax)
    fig = Figure(figsize=(6.5, 5.5))
    ax = fig.add_subplot()
    style = dict(origin="lower", aspect="auto", interpolation="bilinear")
    im = ax.imshow(image, extent=extent, cmap=cmap, vmin=vmin, vmax=vmax, **style)
    fig.colorbar(im, ax=ax, label=label)
    if levels is None:
        levels = [0.5] if image.min() < 0.5 < image.max() else []
    if len(levels):
        style = dict(levels=sorted(levels), colors="k", linewidths=1.0, linestyles="--")
        cs = ax.contour(gx.numpy(), gy.numpy(), image, **style)
        ax.clabel(cs, fontsize=7)
    if points is not None:
        pts = _tensor(points, "points")
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ValueError(f"points must have shape (N, 2), got {tuple(pts.shape)}")
        ax.scatter(pts[:, 0], pts[:, 1], s=3, c="k", alpha=0.4, linewidths=0)
    if paths is not None:
        _draw_paths(ax, _tensor(paths, "paths"))
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    ax.set_title(title or f"{label} over the latent plane")
    return fig


def _draw_paths(ax, paths: torch.Tensor) -> None:
    if paths.ndim != 3 or paths.shape[2] != 2 or paths.shape[1] < 2:
        raise ValueError(f"paths must have shape (P, T+1, 2) with T ≥ 1, got {tuple(paths.shape)}")
    for i, p in enumerate(paths.numpy()):
        colour = f"C{i % 10}"
        ax.plot(p[:, 0], p[:, 1], "-", color=colour, lw=1.2, alpha=0.9)
        ax.plot(*p[0], "o", color=colour, mec="k", ms=5)
        ax.plot(*p[-1], "s", color=colour, mec="k", ms=5)


# ----------------------------------------------------------------------------- curves


def path_profile(
    values: torch.Tensor,
    band: tuple[float, float] | None = None,
    ylabel: str = "D_z",
    quantiles: tuple[float, float] = (0.1, 0.9),
    title: str | None = None,
) -> Figure:
    """``values: (B, T+1)`` (e.g. D_z at each path point): mean and a quantile band across the B
    paths against step k = 0..T; ``band = (lo, hi)`` shades a target band (e.g. 0.5 ± ε)."""
    v = _tensor(values, "values")
    if v.ndim != 2 or v.shape[0] == 0 or v.shape[1] < 1:
        raise ValueError(f"values must have shape (B, T+1) with B ≥ 1, got {tuple(v.shape)}")
    if not 0 <= quantiles[0] < quantiles[1] <= 1:
        raise ValueError(f"quantiles must satisfy 0 ≤ q0 < q1 ≤ 1, got {quantiles}")
    if band is not None and not band[0] < band[1]:
        raise ValueError(f"band must be (lo, hi) with lo < hi, got {band}")
    steps = np.arange(v.shape[1])
    q = torch.quantile(v, torch.tensor(quantiles, dtype=v.dtype), dim=0).numpy()
    fig = Figure(figsize=(6.5, 3.8))
    ax = fig.add_subplot()
    if band is not None:
        ax.axhspan(band[0], band[1], color="tab:green", alpha=0.15, label=f"band {band}")
    spread = f"{int(100 * quantiles[0])}–{int(100 * quantiles[1])}% of paths"
    ax.fill_between(steps, q[0], q[1], color="tab:blue", alpha=0.25, label=spread)
    ax.plot(steps, v.mean(0).numpy(), color="tab:blue", lw=2, label=f"mean of {v.shape[0]} paths")
    ax.set_xlabel("path step k")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize="small", loc="best")
    ax.set_title(title or f"{ylabel} along paths")
    ax.grid(alpha=0.3)
    return fig


def metric_curves(
    x: Sequence[float],
    curves: dict[str, Sequence[float]],
    xlabel: str,
    ylabel: str,
    logx: bool = False,
    title: str | None = None,
) -> Figure:
    """One line per entry of ``curves`` (each as long as ``x``): a metric against a setting."""
    xs = np.asarray(x, dtype=float)
    if xs.ndim != 1 or xs.size == 0:
        raise ValueError(f"x must be a non-empty 1-D sequence, got shape {xs.shape}")
    if not curves:
        raise ValueError("curves must hold at least one named curve")
    if logx and (xs <= 0).any():
        raise ValueError("x must be > 0 everywhere when logx=True")
    fig = Figure(figsize=(6.5, 4))
    ax = fig.add_subplot()
    for name, ys in curves.items():
        ys = np.asarray(ys, dtype=float)
        if ys.shape != xs.shape:
            raise ValueError(f"curves[{name!r}] must have shape {xs.shape}, got {ys.shape}")
        ax.plot(xs, ys, "o-", label=name, ms=4)
    if logx:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    if title:
        ax.set_title(title)
    return fig
