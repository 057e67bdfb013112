"""Discriminator guidance on MNIST latents (issue 11 §5): a γ sweep of sampler × schedule × weight,
FID / precision / recall / density / coverage of decoded samples in the reference classifier's
feature space (DESIGN.md §7), against unguided sampling from the same seed.

Protocol: the sweep runs on the *dev* reference (the last 10 000 training images); the best weight
and schedule per sampler are chosen there (lowest FID) and only those rows are then measured once
on the *test* reference (the 10 000 test images) with another sampling seed.

    latentnav train --data mnist:../shared/data/mnist.npz --latent-dim 8 --epochs 10 \
        --finetune-epochs 60 --out runs/joint_d8
    latentnav train-guidance --bundle runs/joint_d8/bundle.safetensors \
        --data mnist:../shared/data/mnist.npz --out runs/guidance_d8
    python benchmarks/guidance_mnist.py --bundle runs/joint_d8/bundle.safetensors \
        --discriminator runs/guidance_d8/guidance.safetensors --out runs/guidance_mnist_d8
    python benchmarks/guidance_mnist.py --smoke --out /tmp/guidance_smoke
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import torch

from latentnav.checkpoint import atomic_path
from latentnav.metrics import fid, precision_recall, reference_classifier
from latentnav.metrics.reference import ReferenceConfig

DEFAULT_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist.npz"
SAMPLER_STEPS = {"ode": None, "em": 100, "pc": 100}
INTERVAL = (0.0, 0.5)  # guidance on t ∈ [0, 0.5] (near data), the "interval" schedule's window


def _decode(aae, z: torch.Tensor, batch: int = 2000) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([aae.decode(part) for part in z.split(batch)])


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
        return sample_guided(score, sde, z_T, ts, sampler, generator=g, boost_rounds=boost_rounds)
    return SAMPLERS[sampler](score, sde, z_T, ts, generator=g)


def _measure(aae, classifier, real_f, z: torch.Tensor) -> dict[str, float]:
    fake_f = classifier.features(_decode(aae, z))
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


def _smoke_models(n_train: int = 512):
    """A tiny AAE + latent diffusion + D_ψ, briefly trained on embedded MNIST, and the data."""
    from latentnav.aae import AAE, AAEConfig
    from latentnav.data import load_mnist
    from latentnav.diffusion import LatentDiffusion
    from latentnav.joint import default_diffusion_config
    from latentnav.score_net import ScoreNetConfig
    from latentnav.time_discriminator import (
        TimeDiscriminator,
        TimeDiscriminatorFitConfig,
        fit_time_discriminator,
    )

    torch.manual_seed(0)
    train = load_mnist(None, "train")
    aae = AAE(AAEConfig(latent_dim=4, hidden=(32,), disc_hidden=(16,))).eval()
    net = ScoreNetConfig(latent_dim=4, width=32, blocks=1, embed_dim=16)
    diffusion = LatentDiffusion(default_diffusion_config(4, net=net)).eval()
    with torch.no_grad():
        real = aae.encode(train.images[:n_train])
    fake = diffusion.sample(n_train, "em", steps=10, seed=0).z
    disc = TimeDiscriminator(4, hidden=(32,))
    fit_time_discriminator(
        disc, diffusion.sde, real, fake, TimeDiscriminatorFitConfig(max_steps=20, eval_every=10)
    )
    return aae, diffusion, disc.eval(), train, train


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
        parzen = parzen_evaluate(_decode(aae, r.z).flatten(1), validation, reference,
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
    model = copy.deepcopy(diffusion)
    fit = TimeDiscriminatorFitConfig(max_steps=20 if args.smoke else 2000)
    hidden = tuple(disc.config()["hidden"])

    def fresh():
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return TimeDiscriminator(aae.latent_dim, hidden=hidden)

    joint_disc = fresh()
    config = JointGuidanceConfig(rounds=args.joint_rounds, score_epochs=args.joint_epochs,
                                 samples=min(10_000, len(real)), disc=fit)  # fmt: skip
    start = time.perf_counter()
    records = fit_guidance_jointly(model, joint_disc, real, config=config)
    joint_seconds = time.perf_counter() - start
    model.eval()
    post_disc = fresh()
    fake = model.sample(config.samples, "ode", seed=config.seed + 100).z
    fit_time_discriminator(post_disc, model.sde, real, fake, fit)
    out = {"rounds": records, "joint_seconds": joint_seconds, "rows": []}
    for sampler, pick in chosen.items():
        if pick is None:
            continue
        w = pick["weight"]
        cases = [("unguided", post_disc, 0.0), ("joint", joint_disc.eval(), w),
                 ("post hoc", post_disc.eval(), w)]  # fmt: skip
        for name, d, weight in cases:
            row = {"d_psi": name, **row_of(sampler, pick["schedule"], weight, args.seed, "dev",
                                           model=model, d=d)}  # fmt: skip
            out["rows"].append(row)
            print("joint", json.dumps(row), flush=True)
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bundle", help="bundle of `latentnav train` (AAE + latent diffusion)")
    p.add_argument("--discriminator", help="D_ψ of `latentnav train-guidance`")
    p.add_argument("--mnist", default=str(DEFAULT_MNIST))
    p.add_argument("--n", type=int, default=2000, help="samples per row")
    p.add_argument("--samplers", nargs="+", default=list(SAMPLER_STEPS))
    p.add_argument("--schedules", nargs="+", default=["constant", "decreasing", "interval"])
    p.add_argument("--weights", nargs="+", type=float, default=[0.25, 0.5, 1.0, 2.0, 4.0])
    p.add_argument("--seed", type=int, default=0, help="sampling seed of the dev sweep")
    p.add_argument("--test-seed", type=int, default=1, help="sampling seed of the test rows")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument(
        "--parzen-samples",
        type=int,
        default=0,
        help="> 0: Parzen log-likelihood (§7.3 protocol) of that many PC samples, "
        "unguided and with the chosen PC guidance",
    )
    p.add_argument(
        "--joint-rounds",
        type=int,
        default=0,
        help="> 0: the post-hoc vs joint D_ψ ablation with that many rounds",
    )
    p.add_argument("--joint-epochs", type=int, default=5, help="score epochs per joint round")
    p.add_argument("--smoke", action="store_true", help="tiny models, seconds")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    steps = {**SAMPLER_STEPS, **({"em": 10} if args.smoke else {})}
    if args.smoke:
        args.n, args.samplers, args.weights = 64, ["em"], [1.0]
        args.schedules = ["constant"]
        args.parzen_samples, args.joint_rounds, args.joint_epochs = 0, 1, 1
        aae, diffusion, disc, train, test = _smoke_models()
        ref_config, cache = ReferenceConfig(channels=(4, 8), hidden=16, epochs=1), out / "cache"
        dev_images = train.images[-256:]
    else:
        if not (args.bundle and args.discriminator):
            p.error("--bundle and --discriminator are required (or --smoke)")
        from latentnav.data import load_mnist
        from latentnav.joint import load_bundle
        from latentnav.time_discriminator import TimeDiscriminator

        aae, diffusion = load_bundle(args.bundle)
        disc = TimeDiscriminator.load(args.discriminator).eval()
        train, test = load_mnist(args.mnist, "train"), load_mnist(args.mnist, "test")
        ref_config, cache = None, None
        dev_images = train.images[-10_000:]
    diffusion.eval()
    classifier = reference_classifier(
        train.images, train.labels, ref_config, cache_dir=cache, progress=False
    )
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
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "guidance_mnist.json") as tmp:
        tmp.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
