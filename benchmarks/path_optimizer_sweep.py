"""Path-level optimiser on MNIST d = 8 (issue 4): energy variants against frame cleanliness and
smoothness, T = 32. Needs the calibrated compass written by navigator_mnist.py.

Each positional argument is one variant: a bare number is λ (the first version's plain −λ·log q
from SLERP, 100 iterations, as in RESULTS 6.4), otherwise comma-separated key=value settings:

    w=λ  tau=P (hinge threshold: the P-th percentile of log q over encoded training images)
    s=hinge width  mu=jump weight μ  p=jump power  it=iterations  lr=learning rate
    decay=final lr fraction (cosine)  tol=convergence tolerance  init=slerp|density
    g=cycle weight γ  kappa=P (cycle tolerance: the P-th percentile of ‖E(G(z)) − z‖² over
    encoded training images)  nu=class weight ν (fits a latent classifier on the training
    labels, seed 0, and uses it: the class term of latentnav.path_optimizer)

``ode`` (or ``ode=t``) is the probability-flow-ODE interpolation of ``--bundle``'s latent diffusion
model (to time t, default T, and back). ``--aae``/``--compass``/``--bundle`` default to the d = 8
models of RESULTS 6.3 and 7; for d = 16 pass those of 6.6.

``--pairs dev`` (default) tunes on test pairs of different classes drawn with seed 1, minus every
pair of the evaluation set; ``--pairs final`` runs the 1 000 seed-0 pairs of RESULTS 6.3
(``--n`` of them). SLERP on the same pairs is the first row unless ``--no-slerp``.

    cd benchmarks
    python path_optimizer_sweep.py --threads 1 --n 200 30 g=300,w=30,mu=0.3,p=16 w=30,tau=5
    python path_optimizer_sweep.py --threads 1 --pairs final --n 1000 g=300,w=30,mu=0.3,p=16
    python path_optimizer_sweep.py --threads 1 --n 100 --diagnose
    python path_optimizer_sweep.py --threads 1 --pairs final --n 1000 --no-slerp ode \
        --bundle out/joint_d8_ft2/bundle.safetensors
"""

from __future__ import annotations

import time

import torch
from common import (  # noqa: F401  (experiments/ import OUT and pair_set from here)
    OUT,
    SMOKE_STEPS,
    base_parser,
    json_path,
    judge,
    load_splits,
    pair_set,
    parse_args,
    tiny_aae,
    tiny_compass,
    tiny_diffusion,
    write_json,
)

from latentnav.aae import AAE
from latentnav.compass import load_compass
from latentnav.interpolation import interpolate
from latentnav.joint import load_bundle
from latentnav.latent_classifier import LatentClassifierConfig, fit_latent_classifier
from latentnav.latent_path import LatentPath
from latentnav.navigator import Navigator, NavigatorConfig
from latentnav.path_optimizer import (
    PathOptimizerConfig,
    cycle_error,
    cycle_threshold,
    log_q,
    log_q_threshold,
    optimize_paths,
)

KEYS = {
    "w": ("density_weight", float),
    "s": ("hinge_width", float),
    "mu": ("jump_weight", float),
    "p": ("jump_power", float),
    "it": ("iterations", int),
    "lr": ("lr", float),
    "decay": ("lr_decay", float),
    "tol": ("tol", float),
    "g": ("cycle_weight", float),
    "nu": ("class_weight", float),
}


def parse(
    spec: str, percentile_to_tau, percentile_to_kappa, steps: int = 32
) -> tuple[PathOptimizerConfig, str]:
    """A variant spec → (config, init), paths of ``steps`` segments."""
    try:
        return PathOptimizerConfig(steps, density_weight=float(spec), iterations=100), "slerp"
    except ValueError:
        pass
    kw, init = {"steps": steps}, "slerp"
    for item in spec.split(","):
        key, value = item.split("=")
        if key == "tau":
            kw["log_q_threshold"] = percentile_to_tau(float(value))
        elif key == "kappa":
            kw["cycle_threshold"] = percentile_to_kappa(float(value))
        elif key == "init":
            init = value
        else:
            name, cast = KEYS[key]
            kw[name] = cast(value)
    return PathOptimizerConfig(**kw), init


@torch.no_grad()
def diagnose(aae, compass, detector, path: torch.Tensor, train_images: torch.Tensor) -> None:
    """Which energy term predicts an OOD frame? SLERP's interior points, binned."""
    inner = path[:, 1:-1].reshape(-1, path.shape[-1])
    frames = aae.decoder(inner)
    flags = detector.flags(frames)["union"].double()
    values = {
        "log q": log_q(compass, aae.prior, inner),
        "cycle error": cycle_error(aae.encoder, inner, frames),
    }
    ps = (5, 50, 90)
    reference = {
        "log q": torch.tensor([log_q_threshold(aae, compass, train_images, p) for p in ps]),
        "cycle error": torch.tensor([cycle_threshold(aae, train_images, p) for p in ps]),
    }
    for name, v in values.items():
        edges = torch.quantile(v.double(), torch.linspace(0, 1, 6, dtype=torch.float64))
        rates = [
            float(flags[(v >= lo) & (v <= hi)].mean())
            for lo, hi in zip(edges[:-1], edges[1:], strict=True)
        ]
        print(
            f"{name}: training 5/50/90th percentiles {reference[name].numpy().round(3)}; "
            f"SLERP interior quintile edges {edges.numpy().round(3)}; "
            f"union OOD rate per quintile {[round(r, 3) for r in rates]}"
        )


# --smoke: every kind of spec (λ alone, hinge + jump + cycle, stepwise init, class term, ODE).
SMOKE_VARIANTS = ("3", "w=30,tau=5,mu=0.3,p=16,g=300,kappa=50,it=3", "init=density,it=0",
                  "nu=1,it=2", "ode")  # fmt: skip


def smoke_models(train_images: torch.Tensor, seed: int):
    """Untrained tiny AAE, a compass fitted for a few steps, a bundle sharing the AAE."""
    aae = tiny_aae(seed=seed)
    compass, _ = tiny_compass(aae, train_images)
    return aae, compass, (aae, tiny_diffusion(aae.latent_dim, seed))


def main(argv: list[str] | None = None) -> None:
    parser_ = base_parser(__doc__.split("\n\n")[0], threads=1)
    parser_.add_argument("variants", nargs="*")
    parser_.add_argument("--pairs", choices=("dev", "final"), default="dev")
    parser_.add_argument("--n", type=int, default=200)
    parser_.add_argument("--aae", default=str(OUT / "aae_d8" / "aae.safetensors"))
    parser_.add_argument("--compass", default=str(OUT / "nav_d8_cal" / "compass.safetensors"))
    parser_.add_argument("--bundle", default=str(OUT / "joint_d8_ft2" / "bundle.safetensors"))
    parser_.add_argument("--json", help="write the rows here (as --out FILE.json)")
    parser_.add_argument("--no-slerp", action="store_true", help="leave out the SLERP row")
    parser_.add_argument(
        "--diagnose",
        action="store_true",
        help="OOD rate of SLERP's interior frames by log q and by cycle error, then stop",
    )
    args = parse_args(parser_, argv)
    train, test = load_splits(args)
    if args.smoke:
        args.n, args.variants = 4, args.variants or list(SMOKE_VARIANTS)
        aae, compass, bundle = smoke_models(train.images, args.seed)
    else:
        aae = AAE.load(args.aae).eval()
        compass = load_compass(args.compass)
    steps = SMOKE_STEPS if args.smoke else 32
    ia, ib = pair_set(test.labels, args.pairs, args.n)
    with torch.no_grad():
        za, zb = aae.encode(test.images[ia]), aae.encode(test.images[ib])
    _, detector = judge(train, test, args.smoke)
    taus: dict[float, float] = {}

    def percentile_to_tau(p: float) -> float:
        if p not in taus:
            taus[p] = log_q_threshold(aae, compass, train.images, p)
            print(f"τ = {p:g}th percentile of log q over encoded training images: {taus[p]:.3f}")
        return taus[p]

    kappas: dict[float, float] = {}

    def percentile_to_kappa(p: float) -> float:
        if p not in kappas:
            kappas[p] = cycle_threshold(aae, train.images, p)
            print(f"κ = {p:g}th percentile of the training cycle error: {kappas[p]:.4f}")
        return kappas[p]

    inits: dict[str, torch.Tensor] = {"slerp": interpolate(za, zb, steps)}

    def initial(name: str) -> torch.Tensor:
        if name not in inits:  # the stepwise density-compass navigator (RESULTS 6.3)
            nav = Navigator(aae, NavigatorConfig(steps=steps, compass="density"), compass=compass)
            inits[name] = nav.path(za, zb).z
        return inits[name]

    def constant(z: torch.Tensor) -> LatentPath:
        return LatentPath(z, {}, method="given")

    if args.diagnose or args.smoke:
        diagnose(aae, compass, detector, inits["slerp"], train.images)
    if args.diagnose:
        return
    runs = {} if args.no_slerp else {"slerp": lambda: constant(inits["slerp"])}

    def ode(t: float | None) -> LatentPath:
        bundle_aae, diffusion = bundle if args.smoke else load_bundle(args.bundle)
        if not all(
            torch.equal(a, b)
            for a, b in zip(
                bundle_aae.state_dict().values(), aae.state_dict().values(), strict=True
            )
        ):
            raise SystemExit(f"{args.bundle}'s AAE is not {args.aae}")
        return constant(diffusion.interpolate(za, zb, steps, t=t, rtol=1e-4, atol=1e-4))

    classifiers: list[torch.nn.Module] = []

    def classifier() -> torch.nn.Module:
        if not classifiers:
            start = time.perf_counter()
            small = LatentClassifierConfig(hidden=(16,), epochs=1) if args.smoke else None
            fitted, report = fit_latent_classifier(
                aae, train.images, train.labels, (test.images, test.labels), small
            )
            print(
                f"latent classifier: test accuracy {report['validation_accuracy']:.4f} "
                f"({time.perf_counter() - start:.0f} s)"
            )
            classifiers.append(fitted)
        return classifiers[0]

    for spec in args.variants:
        if spec.split("=")[0] == "ode":
            runs[spec] = lambda t=(float(spec[4:]) if "=" in spec else None): ode(t)
            continue
        config, init = parse(spec, percentile_to_tau, percentile_to_kappa, steps)
        if config.iterations == 0:
            runs[spec] = lambda i=init: constant(initial(i))
        else:
            runs[spec] = lambda c=config, i=init: optimize_paths(
                aae,
                za,
                zb,
                compass,
                c,
                init=initial(i),
                classifier=classifier() if c.class_weight > 0 else None,
            )
    rows = {}
    print(f"{args.pairs} pairs: {len(za)}, threads {args.threads}")
    for name, run in runs.items():
        start = time.perf_counter()
        path = run()
        seconds = time.perf_counter() - start
        report = path.report(aae, detector=detector)
        with torch.no_grad():
            inner = path.z[:, 1:-1].reshape(-1, path.z.shape[-1])
            lq = log_q(compass, aae.prior, inner)
        row = {
            "union OOD": report.ood_rate["union"],
            "step mean": report.step_mean,
            "step max": report.step_max,
            "≤1 class change": report.at_most_one_change,
            "class changes": report.class_changes,
            "length / SLERP": report.length_ratio,
            "log q p5 (interior)": float(torch.quantile(lq.double(), 0.05)),
            "seconds": seconds,
        }
        rows[name] = row
        print(
            f"{name:40s} union OOD {row['union OOD']:.4f}  step mean {row['step mean']:.3f}"
            f"  step max {row['step max']:.3f}  ≤1 change {row['≤1 class change']:.3f}"
            f"  changes {row['class changes']:.2f}  len {row['length / SLERP']:.2f}"
            f"  ({seconds:.0f} s)",
            flush=True,
        )
    if args.json or args.out:
        target = args.json or json_path(args.out, "path_optimizer_sweep.json")
        write_json(target, {"pairs": args.pairs, "rows": rows})


if __name__ == "__main__":
    main()
