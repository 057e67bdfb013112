"""Navigator on a 2-D toy with ground truth (issue 4, item 1).

An AAE (data in 2-D, latent dim 2, normal prior) is trained on a toy with holes; 1000 pairs of
training points from different mixture components (so their straight segment crosses a hole) are
encoded and joined by each method; decoded path points are scored by the toy's exact log-density.
Reported: the share of interior path points whose true log-density is below the 1st percentile of
real data's, per method and relative to SLERP; and the D map with paths drawn over it.

    python benchmarks/navigator_toy.py --toy ring8 --out benchmarks/out/nav_toy
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from common import SMOKE_FIT, base_parser, parse_args, write_json
from torch.utils.data import TensorDataset

from latentnav.aae import AAEConfig
from latentnav.compass import CompassConfig, fit_compass
from latentnav.data.toys import toy_distribution
from latentnav.density_ratio import RatioFitConfig
from latentnav.navigator import Navigator, NavigatorConfig
from latentnav.runs import build_aae
from latentnav.training import TrainConfig, fit_aae
from latentnav.viz import discriminator_map, save_figure

SCALE = 6.0  # data x ∈ [−3, 3]² ↔ decoder range [0, 1]²: x01 = x / SCALE + 0.5


def main(argv: list[str] | None = None) -> None:
    p = base_parser(__doc__, out="benchmarks/out/nav_toy", threads=1, data=False)
    p.add_argument("--toy", default="ring8")
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--pairs", type=int, default=1000)
    p.add_argument("--steps", type=int, default=32)
    args = parse_args(p, argv)
    fit = RatioFitConfig(max_steps=4000, batch_size=1024, eval_every=200, patience=5)
    if args.smoke:
        args.n, args.epochs, args.pairs, args.steps, fit = 1000, 1, 20, 6, SMOKE_FIT
    torch.manual_seed(args.seed)  # from_datasets' loaders shuffle with the global generator
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    toy = toy_distribution(args.toy)
    g = torch.Generator().manual_seed(args.seed)
    x = toy.sample(args.n + 4000, g)
    x01 = x / SCALE + 0.5
    train, val = x01[: args.n], x01[args.n :]
    dm = L.LightningDataModule.from_datasets(
        TensorDataset(train, torch.zeros(len(train))),
        TensorDataset(val, torch.zeros(len(val))),
        batch_size=256,
    )
    aae = build_aae(
        AAEConfig(image_shape=(2,), latent_dim=2, hidden=(128, 128), disc_hidden=(128, 128)),
        args.seed,
    )
    fit_aae(
        aae,
        dm,
        TrainConfig(epochs=args.epochs, reconstruction="mse", seed=args.seed),
        "cpu",
        None,
        progress=False,
    )
    compass, report = fit_compass(aae, train, val, CompassConfig(hidden=(128, 128), fit=fit))
    print("compass:", {k: v for k, v in report.items() if "calibration" not in k})

    # Pairs of training points from different components; their segment crosses a hole.
    component = toy.component_log_prob(x[: args.n]).argmax(1)
    ia = torch.randint(args.n, (4 * args.pairs,), generator=g)
    ib = torch.randint(args.n, (4 * args.pairs,), generator=g)
    keep = component[ia] != component[ib]
    ia, ib = ia[keep][: args.pairs], ib[keep][: args.pairs]
    with torch.no_grad():
        za, zb = aae.encode(train[ia]), aae.encode(train[ib])
    threshold = torch.quantile(toy.log_prob(x[: args.n]), 0.01)
    methods = {
        "lerp": (NavigatorConfig(steps=args.steps, proposal="lerp", max_corrections=0), None),
        "slerp": (NavigatorConfig(steps=args.steps, max_corrections=0), None),
        "seed: prob, plain η=0.1, D_z": (
            NavigatorConfig(steps=args.steps, objective="prob", step_control="plain", eta=0.1),
            None,
        ),
        "logit, normalized η=0.05, D_z": (NavigatorConfig(steps=args.steps), None),
        "logit, normalized η=0.05, compass": (NavigatorConfig(steps=args.steps), compass),
        "density, normalized η=0.05, compass": (
            NavigatorConfig(steps=args.steps, compass="density"),
            compass,
        ),
    }
    results, paths = {}, {}
    for name, (config, c) in methods.items():
        path = Navigator(aae, config, compass=c).path(za, zb)
        with torch.no_grad():
            decoded = (path.decode(aae) - 0.5) * SCALE  # (B, T + 1, 2) in data space
        log_density = toy.log_prob(decoded[:, 1:-1].reshape(-1, 2))
        jumps = decoded.diff(dim=1).norm(dim=-1)
        results[name] = {
            "low_density_share": float((log_density < threshold).float().mean()),
            "mean_max_jump": float(jumps.max(1).values.mean()),
            "band_share": float(path.accepted[:, 1:-1].float().mean()),
            "flagged_pairs": float(path.flagged.float().mean()),
        }
        paths[name] = path.z[:25]
    base = results["slerp"]["low_density_share"]
    for name, r in results.items():
        r["relative_to_slerp"] = r["low_density_share"] / base if base > 0 else float("nan")
        print(
            f"{name:38s} low-density points {r['low_density_share']:.4f} "
            f"({r['relative_to_slerp']:.2f}× SLERP), mean max jump {r['mean_max_jump']:.2f}, "
            f"in band {r['band_share']:.3f}"
        )
    with torch.no_grad():
        z_all = aae.encode(train[:2000])
    lo, hi = z_all.min(0).values - 1, z_all.max(0).values + 1
    extent = (float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1]))
    for name in ("slerp", "logit, normalized η=0.05, compass"):
        fig = discriminator_map(
            lambda z: torch.sigmoid(compass(z)).detach(),
            extent,
            points=z_all[:500],
            paths=paths[name],
            label="compass D",
            title=f"{args.toy}: {name}",
        )
        save_figure(fig, out / f"dmap_{'slerp' if name == 'slerp' else 'navigated'}.png")
    write_json(out / "toy.json", {"toy": args.toy, "compass": report, "methods": results})


if __name__ == "__main__":
    main()
