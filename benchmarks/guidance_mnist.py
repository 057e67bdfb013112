"""Discriminator guidance on MNIST latents (issue 11 §5): a γ sweep of sampler × schedule × weight,
FID / precision / recall / density / coverage of decoded samples in the reference classifier's
feature space (DESIGN.md §7), against unguided sampling from the same seed.

Protocol: the sweep runs on the *dev* reference (the last 10 000 training images); the best weight
and schedule per sampler are chosen there (lowest FID) and only those rows are then measured once
on the *test* reference (the 10 000 test images) with another sampling seed.

    latentnav train --data mnist:../shared/data/mnist.npz --latent-dim 8 --epochs 10 \
        --finetune-epochs 60 --out runs/joint_d8 --no-progress
    latentnav train-guidance --bundle runs/joint_d8/bundle.safetensors \
        --data mnist:../shared/data/mnist.npz --out runs/guidance_d8
    python benchmarks/guidance_mnist.py --bundle runs/joint_d8/bundle.safetensors \
        --discriminator runs/guidance_d8/guidance.safetensors --out runs/guidance_mnist_d8
    python benchmarks/guidance_mnist.py --smoke --out /tmp/guidance_smoke
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from pathlib import Path

import torch
from common import (
    base_parser,
    decode,
    load_splits,
    parse_args,
    reference,
    tiny_aae,
    tiny_diffusion,
    write_json,
)

from latentnav.metrics import fid, precision_recall

SAMPLER_STEPS = {"ode": None, "em": 100, "pc": 100}
SAMPLER_OPTIONS = {"ode": {"rtol": 1e-3, "atol": 1e-3}}  # RESULTS §7.2's best ODE row
INTERVAL = (0.0, 0.5)  # guidance on t ∈ [0, 0.5] (near data), the "interval" schedule's window


def _draw(diffusion, disc, sampler: str, schedule: str | None, weight: float, n: int, seed: int,
          steps: int | None, boost_rounds: int = 0):  # fmt: skip
    """n latents from ``sampler``; ``weight == 0``: the unguided sampler from the same seed."""
    from latentnav.guidance import guided_score, sample_guided
    from latentnav.sampling import SAMPLERS, time_grid

    sde = diffusion.sde
    steps = steps or SAMPLERS[sampler].default_steps or 1
    g = torch.Generator().manual_seed(seed)
    z_T = sde.prior_sample((n, diffusion.latent_dim), generator=g)
    ts = time_grid(sde, steps)
    score = diffusion.score_fn()
    if weight > 0:
        t_min, t_max = INTERVAL if schedule == "interval" else (None, None)
        score = guided_score(
            score, disc, weight, schedule=schedule, t_min=t_min, t_max=t_max, T=sde.T
        )
        return sample_guided(score, sde, z_T, ts, sampler, generator=g, boost_rounds=boost_rounds,
                             **SAMPLER_OPTIONS.get(sampler, {}))  # fmt: skip
    return SAMPLERS[sampler](score, sde, z_T, ts, generator=g, **SAMPLER_OPTIONS.get(sampler, {}))


def _measure(aae, classifier, real_f, z: torch.Tensor) -> dict[str, float]:
    fake_f = classifier.features(decode(aae, z))
    pr = precision_recall(real_f, fake_f, ks=(3,))[3]
    return {
        "fid": fid(real_f, fake_f),
        "precision": pr.precision,
        "recall": pr.recall,
        "density": pr.density,
        "coverage": pr.coverage,
    }


def _rows(args) -> list[tuple[str, str | None, float]]:
    rows = []
    for sampler in args.samplers:
        rows.append((sampler, None, 0.0))
        rows += [(sampler, s, w) for s, w in itertools.product(args.schedules, args.weights)]
    return rows


def _smoke_models(train):
    """A tiny untrained AAE + latent diffusion and a D_ψ fitted for 20 steps on their latents."""
    from latentnav.time_discriminator import (
        TimeDiscriminator,
        TimeDiscriminatorFitConfig,
        fit_time_discriminator,
    )

    aae, diffusion = tiny_aae(4), tiny_diffusion(4)
    with torch.no_grad():
        real = aae.encode(train.images[:512])
    fake = diffusion.sample(512, "em", steps=10, seed=0).z
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        disc = TimeDiscriminator(4, hidden=(32,))
    fit = TimeDiscriminatorFitConfig(max_steps=20, eval_every=10)
    fit_time_discriminator(disc, diffusion.sde, real, fake, fit)
    return aae, diffusion, disc.eval()


def _parzen(args, aae, diffusion, disc, pick, train, test, steps) -> dict:
    """Parzen log-likelihood of decoded samples (RESULTS §7.3: σ on the last 2 000 training
    images, reported on the test images), PC unguided and with the dev choice."""
    from latentnav.metrics.samples import parzen_evaluate

    out = {}
    validation, reference = train.images[-2000:].flatten(1), test.images.flatten(1)
    for name, schedule, weight in [("unguided", None, 0.0), ("guided", pick["schedule"],
                                                            pick["weight"])]:  # fmt: skip
        r = _draw(diffusion, disc, "pc", schedule, weight, args.parzen_samples, args.seed + 2,
                  steps["pc"])  # fmt: skip
        parzen = parzen_evaluate(decode(aae, r.z).flatten(1), validation, reference,
                                 progress=False)  # fmt: skip
        out[name] = {"schedule": schedule, "weight": weight, "log_likelihood": parzen.mean,
                     "std_error": parzen.stderr, "sigma": parzen.sigma}  # fmt: skip
        print("parzen", name, json.dumps(out[name]), flush=True)
    return out


def _joint_ablation(args, diffusion, disc, aae, train, row_of, chosen) -> dict:
    """Post-hoc vs joint D_ψ on the same final score model: a copy of the bundle's model is
    trained ``joint_rounds`` × ``joint_epochs`` more epochs alternating with a fresh D_ψ (joint);
    then another fresh D_ψ is fitted post hoc on that final model's samples. Both guide the
    final model with each sampler's dev choice (dev reference)."""
    import copy

    from latentnav.guidance_joint import JointGuidanceConfig, fit_guidance_jointly
    from latentnav.joint import encode_dataset
    from latentnav.time_discriminator import (
        TimeDiscriminator,
        TimeDiscriminatorFitConfig,
        fit_time_discriminator,
    )

    real = encode_dataset(aae, train.images)
    hidden = tuple(disc.config()["hidden"])
    out = {"seeds": [], "rows": []}
    for s in args.joint_seeds:  # seed 0: every seed at its default (the first measured run)
        model = copy.deepcopy(diffusion)
        model.config = dataclasses.replace(model.config, seed=model.config.seed + s)
        fit = TimeDiscriminatorFitConfig(max_steps=20 if args.smoke else 2000, seed=s)

        def fresh(s=s):
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(s)
                return TimeDiscriminator(aae.latent_dim, hidden=hidden)

        joint_disc = fresh()
        config = JointGuidanceConfig(rounds=args.joint_rounds, score_epochs=args.joint_epochs,
                                     samples=min(10_000, len(real)), seed=100 * s,
                                     disc=fit)  # fmt: skip
        start = time.perf_counter()
        records = fit_guidance_jointly(model, joint_disc, real, config=config)
        joint_seconds = time.perf_counter() - start
        model.eval()
        post_disc = fresh()
        fake = model.sample(config.samples, "ode", seed=config.seed + 100).z
        post = fit_time_discriminator(post_disc, model.sde, real, fake, fit)
        out["seeds"].append({"seed": s, "rounds": records, "joint_seconds": joint_seconds,
                             "post_hoc_accuracy": post.heldout_accuracy})  # fmt: skip
        print("joint seed", s, json.dumps(out["seeds"][-1]), flush=True)
        for sampler, pick in chosen.items():
            if pick is None:
                continue
            w = pick["weight"]
            cases = [("unguided", post_disc, 0.0), ("joint", joint_disc.eval(), w),
                     ("post hoc", post_disc.eval(), w)]  # fmt: skip
            for name, d, weight in cases:
                row = {"seed": s, "d_psi": name,
                       **row_of(sampler, pick["schedule"], weight, args.seed, "dev", model=model,
                                d=d)}  # fmt: skip
                out["rows"].append(row)
                print("joint", json.dumps(row), flush=True)
    return out


def main(argv: list[str] | None = None) -> dict:
    p = base_parser(__doc__, out_required=True)
    p.add_argument("--bundle", help="bundle of `latentnav train` (AAE + latent diffusion)")
    p.add_argument("--discriminator", help="D_ψ of `latentnav train-guidance`")
    p.add_argument("--n", type=int, default=2000, help="samples per row")
    p.add_argument("--samplers", nargs="+", default=list(SAMPLER_STEPS))
    p.add_argument("--schedules", nargs="+", default=["constant", "decreasing", "interval"])
    p.add_argument("--weights", nargs="+", type=float, default=[0.25, 0.5, 1.0, 2.0, 4.0])
    p.add_argument("--test-seed", type=int, default=1, help="sampling seed of the test rows")
    p.add_argument("--parzen-samples", type=int, default=0,
                   help="> 0: Parzen log-likelihood (§7.3 protocol) of that many PC samples, "
                   "unguided and with the chosen PC guidance")  # fmt: skip
    p.add_argument(
        "--joint-rounds",
        type=int,
        default=0,
        help="> 0: the post-hoc vs joint D_ψ ablation with that many rounds",
    )
    p.add_argument("--joint-epochs", type=int, default=5, help="score epochs per joint round")
    p.add_argument("--joint-seeds", nargs="+", type=int, default=[0],
                   help="seeds of the joint ablation (score training, D_ψ, fakes)")  # fmt: skip
    args = parse_args(p, argv)
    out = Path(args.out)
    steps = {**SAMPLER_STEPS, **({"em": 10, "pc": 20} if args.smoke else {})}
    train, test = load_splits(args)
    if args.smoke:
        args.n, args.samplers, args.weights = 64, ["em", "pc"], [1.0]
        args.schedules = ["constant"]
        args.parzen_samples, args.joint_rounds, args.joint_epochs = 64, 1, 1
        aae, diffusion, disc = _smoke_models(train)
        dev_images = train.images[-256:]
    else:
        if not (args.bundle and args.discriminator):
            p.error("--bundle and --discriminator are required (or --smoke)")
        from latentnav.joint import load_bundle
        from latentnav.time_discriminator import TimeDiscriminator

        aae, diffusion = load_bundle(args.bundle)
        disc = TimeDiscriminator.load(args.discriminator).eval()
        dev_images = train.images[-10_000:]
    diffusion.eval()
    classifier = reference(train, args.smoke)
    references = {"dev": classifier.features(dev_images), "test": classifier.features(test.images)}
    results: dict = {"bundle": args.bundle, "discriminator": args.discriminator, "n": args.n,
                     "interval": INTERVAL, "steps": steps, "dev": [], "test": []}  # fmt: skip
    for sampler, schedule, weight in _rows(args):
        start = time.perf_counter()
        r = _draw(diffusion, disc, sampler, schedule, weight, args.n, args.seed, steps[sampler])
        row = {"sampler": sampler, "schedule": schedule, "weight": weight, "nfe": r.nfe,
               "seconds": time.perf_counter() - start,
               **_measure(aae, classifier, references["dev"], r.z)}  # fmt: skip
        results["dev"].append(row)
        print("dev ", json.dumps(row), flush=True)

    def row_of(sampler, schedule, weight, seed, reference, boost_rounds=0, model=diffusion, d=disc):
        start = time.perf_counter()
        r = _draw(model, d, sampler, schedule, weight, args.n, seed, steps[sampler], boost_rounds)
        return {"sampler": sampler, "schedule": schedule, "weight": weight, "boost": boost_rounds,
                "nfe": r.nfe, "seconds": time.perf_counter() - start,
                **_measure(aae, classifier, references[reference], r.z)}  # fmt: skip

    chosen = {}
    for sampler in args.samplers:
        rows = [r for r in results["dev"] if r["sampler"] == sampler]
        best = min((r for r in rows if r["weight"] > 0), key=lambda r: r["fid"], default=None)
        chosen[sampler] = best
        picks = [(rows[0], 0)] + ([(best, 0), (best, 1)] if best else [])
        for pick, boost in picks:  # unguided, the dev choice, the dev choice with boosting
            row = row_of(sampler, pick["schedule"], pick["weight"], args.test_seed, "test", boost)
            results["test"].append(row)
            print("test", json.dumps(row), flush=True)
    if args.parzen_samples and chosen.get("pc"):
        results["parzen"] = _parzen(args, aae, diffusion, disc, chosen["pc"], train, test, steps)
    if args.joint_rounds:
        results["joint"] = _joint_ablation(args, diffusion, disc, aae, train, row_of, chosen)
    write_json(out / "guidance_mnist.json", results)
    return results


if __name__ == "__main__":
    main()
