"""Interpolation and denoising videos: MP4 (H.264, yuv420p), GIF (one shared palette) or PNG frames.

A video is a grid of panels that advance together: ``frames: (P, N, C, H, W)`` in [0, 1], P panels
(methods side by side for one pair, or many pairs) of N frames each; ``(N, C, H, W)`` is one panel.
Each panel is upscaled by an integer nearest-neighbour factor, framed by a border that turns red on
the frames ``flags: (P, N)`` marks (e.g. an OOD detector's verdicts, DESIGN.md §7), captioned, and
optionally drawn above a trace ``(P, N)`` (D(z) or log q along the path) whose current value is
marked. Writes are atomic: a temp file (or folder) beside the target, renamed on success.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from latentnav.checkpoint import atomic_path

__all__ = ["export_video", "compose_frames", "TrajectoryRecorder", "decode_trajectory"]

_BORDER, _CAPTION, _TRACE = 2, 14, 28
_RED, _GREY, _WHITE = (220, 30, 30), (90, 90, 90), (255, 255, 255)


class TrajectoryRecorder:
    """A sampler or navigator callback keeping ``info[key]`` every ``every`` steps: ``z`` then
    stacks them to ``(S, B, d)`` (e.g. for a denoising video, :func:`decode_trajectory`). A call
    navigated in chunks reports each chunk's first pair as ``info["offset"]``: the chunks are
    recorded apart and joined along B in order."""

    def __init__(self, key: str = "z_mean", every: int = 1):
        if not (isinstance(every, int) and every >= 1):
            raise ValueError(f"every must be an int ≥ 1, got {every!r}")
        self.key, self.every = key, every
        self._chunks: dict[int, list[torch.Tensor]] = {}
        self._steps: dict[int, int] = {}

    @property
    def steps(self) -> int:
        return max(self._steps.values(), default=0)

    def __call__(self, info: dict) -> None:
        offset = int(info.get("offset", 0))
        step = self._steps.get(offset, 0)
        if step % self.every == 0:
            self._chunks.setdefault(offset, []).append(info[self.key].detach().clone())
        self._steps[offset] = step + 1

    @property
    def z(self) -> torch.Tensor:
        if not self._chunks:
            raise ValueError("the recorder has seen no step yet: pass it as callback= first")
        parts = [torch.stack(self._chunks[k]) for k in sorted(self._chunks)]
        if len({len(part) for part in parts}) > 1:
            raise ValueError(
                "the chunks of this call recorded different numbers of steps "
                f"{[len(part) for part in parts]}: record with chunk_size ≥ B"
            )
        return torch.cat(parts, 1)


@torch.no_grad()
def decode_trajectory(decoder: torch.nn.Module, z: torch.Tensor, batch_size: int = 4096):
    """Latents ``(B, N, d)`` (a path) → frames ``(B, N, C, H, W)`` decoded in batches."""
    if z.ndim != 3:
        raise ValueError(f"z must have shape (B, N, d), got {tuple(z.shape)}")
    flat = z.flatten(0, 1)
    frames = torch.cat([decoder(chunk) for chunk in flat.split(batch_size)])
    return frames.view(*z.shape[:2], *frames.shape[1:])


def _panels(frames: torch.Tensor | np.ndarray) -> np.ndarray:
    """(P, N, C, H, W) or (N, C, H, W), C ∈ {1, 3}, values in [0, 1] → uint8 (P, N, H, W, 3)."""
    x = torch.as_tensor(frames).detach().cpu().float()
    if x.ndim == 4:
        x = x[None]
    if x.ndim != 5 or x.shape[2] not in (1, 3) or x.shape[1] == 0 or x.shape[0] == 0:
        raise ValueError(
            f"frames must have shape (P, N, C, H, W) or (N, C, H, W) with C = 1 or 3, "
            f"got {tuple(x.shape)}"
        )
    if not torch.isfinite(x).all():
        raise ValueError("frames contain non-finite values")
    x = (x.clamp(0, 1) * 255).round().to(torch.uint8).expand(-1, -1, 3, -1, -1)
    return x.permute(0, 1, 3, 4, 2).numpy()


def _per_panel(values, shape: tuple[int, int], name: str) -> np.ndarray | None:
    if values is None:
        return None
    v = torch.as_tensor(values).detach().cpu()
    v = v[None] if v.ndim == 1 else v
    if tuple(v.shape) != shape:
        raise ValueError(f"{name} must have shape {shape} (panels, frames), got {tuple(v.shape)}")
    return v.numpy()


def compose_frames(
    frames,
    *,
    scale: int | None = None,
    columns: int | None = None,
    captions: Sequence[str] | None = None,
    flags=None,
    trace=None,
    hold: int = 0,
):
    """Yield the composed video frames as uint8 arrays (H', W', 3), even H' and W'.

    frames: (P, N, C, H, W) or (N, C, H, W) in [0, 1]; scale: nearest-neighbour factor (default:
    the smallest making a panel ≥ 128 px high); columns: panels per row (default ≤ 8 per row);
    captions: P strings; flags: (P, N) bool, a red border; trace: (P, N) floats drawn under each
    panel; hold: repeat the first and last frame that many extra times."""
    x = _panels(frames)
    p, n, h, w, _ = x.shape
    flags = _per_panel(flags, (p, n), "flags")
    trace = _per_panel(trace, (p, n), "trace")
    if captions is not None and len(captions) != p:
        raise ValueError(f"captions must hold {p} strings (one per panel), got {len(captions)}")
    if scale is None:
        scale = max(1, math.ceil(128 / h))
    if not (isinstance(scale, int) and scale >= 1):
        raise ValueError(f"scale must be an int ≥ 1, got {scale!r}")
    if not (isinstance(hold, int) and hold >= 0):
        raise ValueError(f"hold must be an int ≥ 0, got {hold!r}")
    columns = columns or min(p, 8)
    rows = math.ceil(p / columns)
    ph, pw = h * scale, w * scale
    cell_h = ph + 2 * _BORDER + (_CAPTION if captions else 0) + (_TRACE if trace is not None else 0)
    cell_w = pw + 2 * _BORDER
    height, width = rows * cell_h, columns * cell_w
    height, width = height + height % 2, width + width % 2  # yuv420p needs even sizes
    if trace is not None:
        finite = trace[np.isfinite(trace)]
        low, high = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
        span = (high - low) or 1.0
    order = [0] * hold + list(range(n)) + [n - 1] * hold
    for k in order:
        canvas = Image.new("RGB", (width, height), _WHITE)
        draw = ImageDraw.Draw(canvas)
        for i in range(p):
            top, left = (i // columns) * cell_h, (i % columns) * cell_w
            if captions:
                draw.text((left + _BORDER, top), captions[i][: pw // 6], fill=(0, 0, 0))
                top += _CAPTION
            colour = _RED if flags is not None and flags[i, k] else _GREY
            draw.rectangle([left, top, left + cell_w - 1, top + ph + 2 * _BORDER - 1], fill=colour)
            panel = x[i, k].repeat(scale, 0).repeat(scale, 1)
            canvas.paste(Image.fromarray(panel), (left + _BORDER, top + _BORDER))
            if trace is not None:
                base = top + ph + 2 * _BORDER
                ys = base + _TRACE - 3 - (trace[i] - low) / span * (_TRACE - 6)
                xs = left + _BORDER + np.linspace(0, pw - 1, n)
                points = [(float(a), float(b)) for a, b in zip(xs, ys, strict=True)]
                if n > 1:
                    draw.line(points, fill=_GREY, width=1)
                cx, cy = points[k]
                draw.ellipse([cx - 2, cy - 2, cx + 2, cy + 2], fill=_RED)
        yield np.asarray(canvas)


def _write_mp4(frames, path: Path, fps: float) -> None:
    try:
        import imageio_ffmpeg
    except ImportError as err:  # pragma: no cover - a dependency, but installs can be partial
        raise RuntimeError(
            "MP4 export needs imageio-ffmpeg (pip install imageio-ffmpeg); GIF and PNG "
            "export work without it"
        ) from err
    writer = None
    try:
        for frame in frames:
            if writer is None:
                h, w = frame.shape[:2]
                writer = imageio_ffmpeg.write_frames(
                    str(path), (w, h), fps=fps, codec="libx264", pix_fmt_out="yuv420p",
                    macro_block_size=2, output_params=["-f", "mp4"],
                )  # fmt: skip
                writer.send(None)
            writer.send(np.ascontiguousarray(frame).tobytes())
    finally:
        if writer is not None:
            writer.close()


def _shared_palette(images: list[Image.Image]) -> Image.Image:
    """One palette for every frame: the border/caption colours, then 252 colours by median cut
    of a mosaic of (up to 16) frames. Per-frame palettes make flat backgrounds flicker."""
    sample = images[:: max(1, len(images) // 16)][:16]
    mosaic = Image.new("RGB", (sample[0].width, sample[0].height * len(sample)))
    for i, im in enumerate(sample):
        mosaic.paste(im, (0, i * im.height))
    fitted = mosaic.quantize(colors=252, method=Image.Quantize.MEDIANCUT).getpalette()[: 3 * 252]
    fixed = [c for colour in (_RED, _GREY, _WHITE, (0, 0, 0)) for c in colour]
    palette = Image.new("P", (1, 1))
    palette.putpalette(fixed + fitted + [0] * (768 - len(fixed) - len(fitted)))
    return palette


def _gif_frame_ms(fps: float) -> int:
    """GIF stores delays in whole centiseconds, and browsers slow delays under 20 ms."""
    return 10 * max(2, round(100 / fps))


def _write_gif(frames, path: Path, fps: float) -> None:
    images = [Image.fromarray(f) for f in frames]
    palette = _shared_palette(images)
    quantized = [im.quantize(palette=palette, dither=Image.Dither.NONE) for im in images]
    quantized[0].save(
        path, format="GIF", save_all=True, append_images=quantized[1:], loop=0,
        duration=_gif_frame_ms(fps), optimize=False, palette=bytes(palette.getpalette()),
    )  # fmt: skip


def _write_pngs(frames, folder: Path) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        for i, frame in enumerate(frames):
            Image.fromarray(frame).save(staging / f"frame_{i:05d}.png")
        backup = None
        if folder.exists():
            backup = folder.with_name(f".{folder.name}.old-{os.getpid()}")
            os.replace(folder, backup)
        os.replace(staging, folder)
        if backup is not None:
            shutil.rmtree(backup)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def export_video(
    frames,
    path: str | os.PathLike,
    *,
    fps: float = 8.0,
    progress: bool = False,
    **layout,
) -> Path:
    """Write ``frames`` (see :func:`compose_frames` for the shapes and ``layout`` options:
    scale, columns, captions, flags, trace, hold) to ``path``: ``.mp4`` (H.264, yuv420p,
    browser-playable), ``.gif`` (one shared palette, loops), or any other path: a folder of PNG
    frames. Atomic: the previous file stays intact if anything fails."""
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    path = Path(path)
    composed = compose_frames(frames, **layout)
    total = torch.as_tensor(frames).shape[-4] + 2 * layout.get("hold", 0)
    composed = tqdm(composed, total=total, disable=not progress, desc="video", leave=False)
    suffix = path.suffix.lower()
    if suffix in (".mp4", ".gif"):
        with atomic_path(path) as tmp:
            (_write_mp4 if suffix == ".mp4" else _write_gif)(composed, tmp, fps)
    else:
        _write_pngs(composed, path)
    return path
