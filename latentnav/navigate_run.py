"""``latentnav navigate``: paths between test images with any navigation method (DESIGN.md §3).

Pairs are given as test-set indices (``"3,17 5,9"``), a class pair (``"3:8"``, a few pairs of
those classes), or ``"random:N"`` (N pairs of different classes), all drawn with ``seed``.
Writes ``paths.safetensors`` (a :class:`~latentnav.navigation.LatentPath`), ``strip.png``,
optionally a video of the frames and, with ``report``, the evaluation toolkit's
:class:`~latentnav.metrics.PathReport` of the paths (``report.txt``, ``report.json``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from latentnav.checkpoint import atomic_path

__all__ = ["parse_pairs", "navigate_run"]


def parse_pairs(spec: str, labels: torch.Tensor, seed: int = 0, per_class_pair: int = 4):
    """Index tensors (a, b) of the pairs ``spec`` names among images with ``labels: (N,)``."""
    g = torch.Generator().manual_seed(seed)
    n = len(labels)
    if spec.startswith("random:"):
        count = _count(spec[7:], spec)
        a, b = torch.randint(n, (2, 20 * count + 20), generator=g)
        keep = labels[a] != labels[b]
        if int(keep.sum()) < count:
            raise ValueError(f"--pairs {spec!r}: could not draw {count} pairs of different classes")
        return a[keep][:count], b[keep][:count]
    if ":" in spec:
        left, right = (int(_count(part, spec, minimum=0)) for part in spec.split(":", 1))
        pool_a, pool_b = (labels == left).nonzero()[:, 0], (labels == right).nonzero()[:, 0]
        if len(pool_a) == 0 or len(pool_b) == 0:
            raise ValueError(f"--pairs {spec!r}: no test image of class {left} or {right}")
        pick = lambda pool: pool[torch.randint(len(pool), (per_class_pair,), generator=g)]  # noqa: E731
        return pick(pool_a), pick(pool_b)
    pairs = []
    for item in spec.split():
        parts = item.split(",")
        if len(parts) != 2:
            raise ValueError(f"--pairs: expected 'i,j' pairs, 'A:B' or 'random:N', got {item!r}")
        i, j = (_count(p, spec, minimum=0) for p in parts)
        if max(i, j) >= n:
            raise ValueError(f"--pairs: index {max(i, j)} out of range for {n} test images")
        pairs.append((i, j))
    if not pairs:
        raise ValueError("--pairs is empty")
    a, b = torch.tensor(pairs).T
    return a, b


def _count(text: str, spec: str, minimum: int = 1) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"--pairs {spec!r}: {text!r} is not an integer") from None
    if value < minimum:
        raise ValueError(f"--pairs {spec!r}: {value} must be ≥ {minimum}")
    return value


def navigate_run(
    checkpoint: str | os.PathLike,
    data: str,
    pairs: str,
    out: str | os.PathLike,
    *,
    method: str | None = None,
    steps: int = 32,
    compass: str | os.PathLike | None = None,
    video: str | None = None,
    report: bool = False,
    seed: int = 0,
    graph_data: bool = False,
) -> dict[str, Any]:
    """Navigate the named pairs of ``data``'s test split with an AAE checkpoint or a bundle;
    ``graph_data``: the graph method over ``data``'s training images (``GraphPath(images=)``)."""
    from latentnav.aae import AAE
    from latentnav.checkpoint import checkpoint_format
    from latentnav.compass import load_compass
    from latentnav.data import dataset_splits, load_dataset
    from latentnav.joint import BUNDLE_FORMAT, load_bundle
    from latentnav.navigation import METHODS, Navigator
    from latentnav.viz import image_strip, save_figure

    if method is not None and method not in METHODS:
        raise ValueError(f"--method must be one of {sorted(METHODS)}, got {method!r}")
    options: dict[str, Any] = {"steps": steps}
    if checkpoint_format(checkpoint) == BUNDLE_FORMAT:  # its diffusion model serves "ode"
        aae, diffusion = load_bundle(checkpoint)
        if method == "ode":
            options["diffusion"] = diffusion
    else:
        aae = AAE.load(checkpoint)
    if graph_data:
        if method != "graph":
            raise ValueError(f"--graph-data goes with --method graph, not {method!r}")
        options["images"] = load_dataset(data, "train").images
    if method == "ode" and "diffusion" not in options:
        raise ValueError("--method ode needs a bundle (AAE + latent diffusion), not an AAE file")
    if compass is not None:
        aae.compass = load_compass(compass)
    # The test split; a source with only one split (an image folder) is navigated as it is.
    test = load_dataset(data, "test" if "test" in dataset_splits(data) else "train")
    ia, ib = parse_pairs(pairs, test.labels, seed)
    if method is None and getattr(aae, "compass", None) is None:
        raise ValueError(
            "the default navigator needs a compass: pass --compass compass.safetensors (see "
            "latentnav.compass.fit_compass), or --method slerp / lerp / stepwise"
        )
    with torch.no_grad():
        z_a, z_b = aae.encode(test.images[ia]), aae.encode(test.images[ib])
    path = Navigator(aae, method, **options).path(z_a, z_b)
    out = Path(out)
    path.save(out / "paths.safetensors")
    frames = path.decode(aae).clamp(0, 1)
    name = method or "navigator (default)"
    save_figure(image_strip(frames, max_frames=min(steps + 1, 17), title=name), out / "strip.png")
    summary: dict[str, Any] = {"out": str(out), "method": name, "pairs": len(ia)}
    flags = None
    if report:
        from latentnav.metrics import PathReport, ood_detector, reference_classifier
        from latentnav.metrics.paths import ood_frame_flags, reconstruction_floor

        train = load_dataset(data, "train")
        detector = ood_detector(reference_classifier(train.images, train.labels, progress=False),
                                train.images, test.images)  # fmt: skip
        floor = reconstruction_floor(detector, aae.reconstruct, test.images)
        result = PathReport.from_paths(frames, detector=detector, latents=path.z, floor=floor)
        flags = ood_frame_flags(detector, frames)["union"]
        with atomic_path(out / "report.txt") as tmp:
            tmp.write_text(str(result) + "\n")
        with atomic_path(out / "report.json") as tmp:
            tmp.write_text(json.dumps(result.to_dict(), indent=2))
        summary["ood_union"] = result.ood_rate.get("union")
    if video:
        from latentnav.video import export_video

        export_video(frames, out / video, fps=8, hold=4, flags=flags, columns=min(len(ia), 4))
        summary["video"] = str(out / video)
    return summary
