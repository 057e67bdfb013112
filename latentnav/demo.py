"""``latentnav demo``: the whole job on embedded data, written into one folder with ``report.html``.

Stages: (1) AAE and latent diffusion trained in one run (:func:`latentnav.runs.train_joint_run`);
(2) the compass refitted on the frozen encoder; (3) the reference classifier and OOD detectors of
the evaluation toolkit (DESIGN.md §7); (4) test pairs of different classes navigated by LERP,
SLERP and the default navigator, judged by the same detectors, shown as strips and a side-by-side
video with red borders on flagged frames; (5) latent samples without and with discriminator
guidance (DESIGN.md §5), judged by FID and precision/recall in the reference feature space.
"""

from __future__ import annotations

import html
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from latentnav.checkpoint import atomic_path

__all__ = ["DemoConfig", "run_demo"]


@dataclass(frozen=True)
class DemoConfig:
    """Sizes of the demo; ``quick()`` shrinks every stage to seconds (for tests)."""

    out: str = "latentnav-demo"
    data: str = "mnist-embedded"
    latent_dim: int = 8
    hidden: tuple[int, ...] = (512, 512)
    epochs: int = 6
    finetune_epochs: int = 20
    score_width: int = 256
    compass_hidden: tuple[int, ...] = (256, 256)
    compass_steps: int = 1000
    reference_epochs: int = 2
    pairs: int = 8
    video_pairs: int = 4
    steps: int = 32
    samples: int = 2000
    sample_steps: int = 200
    guidance_steps: int = 1500
    max_images: int | None = None  # a subset of each split (quick mode)
    seed: int = 0
    accelerator: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("latent_dim", "epochs", "finetune_epochs", "compass_steps", "pairs",
                     "video_pairs", "steps", "samples", "sample_steps", "guidance_steps",
                     "reference_epochs", "score_width"):  # fmt: skip
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be an int ≥ 1, got {value!r}")
        if self.steps < 2 or self.samples < 10:
            raise ValueError("steps must be ≥ 2 and samples ≥ 10")

    def full(self) -> DemoConfig:
        """The sizes of the measured runs (RESULTS §3, §6, §7): for full MNIST or a GPU."""
        return replace(
            self, epochs=10, finetune_epochs=60, compass_hidden=(512, 512), compass_steps=6000,
            reference_epochs=3, pairs=32, samples=10_000, sample_steps=500, guidance_steps=4000,
        )  # fmt: skip

    def quick(self) -> DemoConfig:
        return replace(
            self, hidden=(64,), compass_hidden=(64,), epochs=1, finetune_epochs=2,
            score_width=32, compass_steps=100, reference_epochs=1, pairs=4, video_pairs=2,
            steps=8, samples=200, sample_steps=20, guidance_steps=60, max_images=1200,
        )  # fmt: skip


class _Stages:
    """Wall time per stage, printed as one progress line each."""

    def __init__(self, progress: bool):
        self.progress, self.times, self.start = progress, {}, time.perf_counter()

    def __call__(self, name: str):
        self.current, self.t0 = name, time.perf_counter()
        if self.progress:
            print(f"[demo] {name} …", flush=True)
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.times[self.current] = time.perf_counter() - self.t0

    @property
    def total(self) -> float:
        return time.perf_counter() - self.start


def _pairs(labels: torch.Tensor, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n index pairs (a, b) of test images of different classes, drawn with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    a, b = torch.randint(len(labels), (2, 8 * n), generator=g)
    keep = labels[a] != labels[b]
    return a[keep][:n], b[keep][:n]


def run_demo(config: DemoConfig, progress: bool = True) -> dict[str, Any]:
    """Run every stage and write the output folder; returns the summary of ``report.json``."""
    from latentnav.compass import CompassConfig, save_compass
    from latentnav.data import load_dataset
    from latentnav.joint import default_diffusion_config
    from latentnav.metrics import PathReport, ood_detector, reference_classifier
    from latentnav.metrics.paths import reconstruction_floor
    from latentnav.runs import JointRunConfig, train_joint_run
    from latentnav.score_net import ScoreNetConfig
    from latentnav.training import TrainConfig

    c, out, stage = config, Path(config.out), _Stages(progress)
    train, test = load_dataset(c.data, "train"), load_dataset(c.data, "test")
    if c.max_images is not None:  # the evaluation on a seeded subset of each split
        g = torch.Generator().manual_seed(c.seed)
        train = train.subset(torch.randperm(len(train.images), generator=g)[: c.max_images])
        test = test.subset(torch.randperm(len(test.images), generator=g)[: c.max_images // 2])
    from latentnav.aae import AAEConfig

    with stage("training the AAE and the latent diffusion model, refitting the compass"):
        net = ScoreNetConfig(latent_dim=c.latent_dim, width=c.score_width)
        fit = replace(CompassConfig().fit, max_steps=c.compass_steps, seed=c.seed)
        run = JointRunConfig(
            data=c.data, out_dir=str(out), accelerator=c.accelerator,
            compass=CompassConfig(hidden=c.compass_hidden, fit=fit),
            model=AAEConfig(latent_dim=c.latent_dim, hidden=c.hidden),
            train=TrainConfig(epochs=c.epochs, seed=c.seed),
            diffusion=default_diffusion_config(c.latent_dim, net=net, epochs=c.finetune_epochs),
        )  # fmt: skip
        (aae, diffusion), run_metrics = train_joint_run(run, progress=False, overwrite=True)
        aae, diffusion = aae.cpu(), diffusion.cpu()  # the training's device; the rest on CPU
    save_compass(aae.compass, out / "compass.safetensors")  # also inside the bundle
    compass_report = run_metrics["compass"]
    with stage("reference classifier and OOD detectors"):
        from latentnav.metrics import ReferenceConfig

        reference = reference_classifier(
            train.images, train.labels, ReferenceConfig(epochs=c.reference_epochs, seed=c.seed),
            progress=False,
        )  # fmt: skip
        detector = ood_detector(reference, train.images, test.images)
        floor = reconstruction_floor(detector, aae.reconstruct, test.images)
    navigation = _navigate(c, aae, test, detector, floor, stage, out)
    sampling = _sample(c, aae, diffusion, train, test, reference, stage, out)
    summary = {
        "config": asdict(c),
        "wall_time_s": stage.total,
        "stages_s": stage.times,
        "aae_test": run_metrics["test"],
        "compass_validation_accuracy": compass_report.get("validation_accuracy"),
        "reconstruction_floor": floor,
        "navigation": PathReport.compare_dict(navigation),
        "sampling": sampling,
    }
    with atomic_path(out / "report.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2, default=float))
    _write_html(out, summary)
    return summary


def _navigate(c, aae, test, detector, floor, stage, out) -> dict:
    from latentnav.metrics import PathReport
    from latentnav.metrics.paths import ood_frame_flags
    from latentnav.navigation import Navigator
    from latentnav.video import export_video
    from latentnav.viz import image_strip, save_figure

    ia, ib = _pairs(test.labels, c.pairs, c.seed)
    with torch.no_grad():
        z_a, z_b = aae.encode(test.images[ia]), aae.encode(test.images[ib])
    methods = {
        "LERP": Navigator(aae, "lerp", steps=c.steps),
        "SLERP": Navigator(aae, "slerp", steps=c.steps),
        "navigator (default)": Navigator(aae, steps=c.steps),
    }
    reports, frames, flags = {}, {}, {}
    with stage("navigating test pairs with LERP, SLERP and the default navigator"):
        for name, nav in methods.items():
            path = nav.path(z_a, z_b)
            frames[name] = path.decode(aae).clamp(0, 1)
            reports[name] = PathReport.from_paths(
                frames[name], detector=detector, latents=path.z, floor=floor
            )
            flags[name] = ood_frame_flags(detector, frames[name])["union"]
    with stage("writing strips and the side-by-side video"):
        for name, f in frames.items():
            slug = name.split()[0].lower()
            fig = image_strip(f, max_rows=c.video_pairs, max_frames=min(c.steps + 1, 17),
                              title=f"{name}: test pairs of different classes")  # fmt: skip
            save_figure(fig, out / f"strip_{slug}.png")
        k = min(c.video_pairs, c.pairs)
        panels = torch.stack([frames[m][i] for i in range(k) for m in methods])
        marks = torch.stack([flags[m][i] for i in range(k) for m in methods])
        captions = [f"{i + 1}: {m.split()[0]}" for i in range(k) for m in methods]
        layout = dict(captions=captions, flags=marks, columns=len(methods), hold=4, fps=8)
        export_video(panels, out / "paths.gif", **layout)
        try:
            export_video(panels, out / "paths.mp4", **layout)
        except RuntimeError as err:  # no MP4 encoder: the GIF is there
            print(f"[demo] MP4 skipped: {err}")
    return reports


def _sample(c, aae, diffusion, train, test, reference, stage, out) -> dict:
    from latentnav.guidance import guided_score, sample_guided
    from latentnav.joint import encode_dataset
    from latentnav.metrics import fid, precision_recall
    from latentnav.sampling import SAMPLERS, time_grid
    from latentnav.time_discriminator import (
        TimeDiscriminator,
        TimeDiscriminatorFitConfig,
        fit_time_discriminator,
    )
    from latentnav.viz import image_grids, save_figure

    sde = diffusion.sde
    with stage("training the time-dependent discriminator D_ψ (post hoc)"):
        fake = diffusion.sample(c.samples, "em", steps=c.sample_steps, seed=c.seed + 1).z
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(c.seed)
            disc = TimeDiscriminator(c.latent_dim, hidden=(128, 128))
        config = TimeDiscriminatorFitConfig(max_steps=c.guidance_steps, seed=c.seed)
        d_report = fit_time_discriminator(
            disc, sde, encode_dataset(aae, train.images), fake, config
        )
        disc.save(out / "guidance.safetensors")
    real = reference.features(test.images)
    rows, images = {}, {}
    with stage("sampling without and with guidance"):
        g = torch.Generator().manual_seed(c.seed + 2)
        z_T = sde.prior_sample((c.samples, c.latent_dim), generator=g)
        ts = time_grid(sde, c.sample_steps)
        runs = {
            "EM, unguided": lambda gen: SAMPLERS["em"](diffusion.score_fn(), sde, z_T, ts,
                                                       generator=gen),
            "EM, guided (w = 1)": lambda gen: sample_guided(
                guided_score(diffusion.score_fn(), disc, 1.0), sde, z_T, ts, "em", generator=gen
            ),
        }  # fmt: skip
        with torch.no_grad():
            prior = aae.decode(aae.prior.sample(c.samples, generator=g))
        images["prior p(z)"] = prior
        for name, draw in runs.items():
            result = draw(torch.Generator().manual_seed(c.seed + 3))
            with torch.no_grad():
                images[name] = aae.decode(result.z)
            rows[name] = {"nfe": result.nfe}
        for name, x in images.items():
            feats = reference.features(x)
            prdc = precision_recall(real, feats, ks=(3,))[3]
            rows.setdefault(name, {"nfe": 0}).update(
                fid=fid(real, feats), precision=prdc.precision, recall=prdc.recall
            )
        save_figure(image_grids({k: v[:64] for k, v in images.items()}), out / "samples_demo.png")
    return {"rows": rows, "discriminator": {"heldout_accuracy": d_report.heldout_accuracy,
                                            "buckets": d_report.buckets}}  # fmt: skip


def _table(rows: dict[str, dict[str, float]], keys: list[str] | None = None) -> str:
    keys = keys or sorted({k for r in rows.values() for k in r})
    head = "".join(f"<th>{html.escape(k)}</th>" for k in ["", *keys])
    body = "".join(
        "<tr><th>" + html.escape(name) + "</th>"
        + "".join(f"<td>{_fmt(r.get(k))}</td>" for k in keys) + "</tr>"
        for name, r in rows.items()
    )  # fmt: skip
    return f"<table><tr>{head}</tr>{body}</table>"


def _fmt(value) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else html.escape(str(value))


def _write_html(out: Path, s: dict) -> None:
    nav = s["navigation"]
    keys = ["OOD frames: union", "paths with an OOD frame", "step L2 mean", "step L2 max",
            "length / SLERP"]  # fmt: skip
    methods = list(nav)
    transposed = {m: {k: nav[m].get(k) for k in keys} for m in methods}
    floor = s["reconstruction_floor"].get("union")
    stages = "".join(f"<li>{html.escape(k)}: {v:.1f} s</li>" for k, v in s["stages_s"].items())
    video = '<video src="paths.mp4" controls loop autoplay muted></video>' if (
        out / "paths.mp4").is_file() else '<img src="paths.gif">'  # fmt: skip
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>latentnav demo</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}img,video{{max-width:100%}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}
</style></head><body><h1>latentnav demo</h1>
<p>Everything below was computed by <code>latentnav demo</code> on <code>{
        html.escape(s["config"]["data"])
    }</code> in {s["wall_time_s"]:.0f} s.</p><ul>{stages}</ul>
<h2>1. The autoencoder</h2><p>Test images beside their reconstructions, and the encoded test
set in the latent space: the frames a navigator produces should look like the right-hand
images.</p><img src="reconstructions.png"><img src="latents.png">
<h2>2. Paths between test images of different classes</h2>
<p>Each row is a path between two test images of different classes. A frame is out of
distribution (OOD) when the reference classifier's features, an earlier layer or the pixels are
farther from every training image than 99 % of real test images are; reconstructions of real
test images are flagged at the rate of the floor ({_fmt(floor)}). Lower is cleaner; the step
columns say how smooth the path is.</p>{_table(transposed, keys)}
<p>The same pairs side by side; a red border marks a frame the detectors flag.</p>{video}
{"".join(f'<img src="strip_{m.split()[0].lower()}.png">' for m in methods)}
<h2>3. Samples of the latent diffusion model, without and with guidance</h2>
<p>FID, precision and recall in the reference classifier's feature space against the test
images (lower FID is better). Guidance adds the gradient of a time-dependent discriminator that
tells encoded data from the model's own samples.</p>{_table(s["sampling"]["rows"])}
<img src="samples_demo.png"><p>Raw numbers: <a href="report.json">report.json</a>.</p>
</body></html>"""
    with atomic_path(out / "report.html") as tmp:
        tmp.write_text(page)
