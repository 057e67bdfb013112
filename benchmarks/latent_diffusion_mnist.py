"""Latent diffusion on MNIST (issue 5): decoded prior samples vs decoded latent-diffusion samples
(FID / precision / recall in the reference classifier's feature space, against the 10 000 test
images), a sampler × steps × NFE × FID × wall-time table, NLL of test latents under the model, and
the Parzen log-likelihood of the AAE paper's protocol.

    latentnav train --data mnist:../shared/data/mnist.npz --latent-dim 8 --epochs 10 \
        --finetune-epochs 60 --out benchmarks/out/joint_d8
    python benchmarks/latent_diffusion_mnist.py --threads 1 \
        --bundle benchmarks/out/joint_d8/bundle.safetensors --out benchmarks/out/ld_d8
"""

from __future__ import annotations

import math
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

from latentnav.joint import encode_dataset, load_bundle
from latentnav.likelihood import bits_per_dim
from latentnav.metrics import fid, precision_recall
from latentnav.metrics.samples import parzen_evaluate
from latentnav.viz import image_grids, save_figure

ROWS = {
    "prior p(z)": None,
    "EM, 100 steps": ("em", {"steps": 100}),
    "EM, 1000 steps": ("em", {"steps": 1000}),
    "PC, 100 steps": ("pc", {"steps": 100}),
    "PC, 1000 steps": ("pc", {"steps": 1000}),
    "reverse diffusion, 1000 steps": ("reverse_diffusion", {"steps": 1000}),
    "ODE, rtol = atol = 1e-3": ("ode", {"rtol": 1e-3, "atol": 1e-3}),
    "ODE, rtol = atol = 1e-5": ("ode", {"rtol": 1e-5, "atol": 1e-5}),
}
# --smoke: every sampler of ROWS at 20 steps (the fewest the VP discretisation allows), tiny sets.
SMOKE_ROWS = {
    name: (row if row is None or "steps" not in row[1] else (row[0], {"steps": 20}))
    for name, row in ROWS.items()
}
SMOKE_SIZES = {"n": 100, "parzen_samples": 100, "nll_points": 20}


def main(argv: list[str] | None = None) -> None:
    p = base_parser(__doc__, out_required=True)
    p.add_argument("--bundle", help="trained bundle (unless --smoke: an untrained tiny one)")
    p.add_argument("--n", type=int, default=3000, help="samples per row")
    p.add_argument("--rows", nargs="*", default=list(ROWS), help="subset of the rows")
    p.add_argument("--parzen-samples", type=int, default=10_000)
    p.add_argument("--parzen-sampler", default="PC, 100 steps")
    p.add_argument("--nll-points", type=int, default=1000)
    args = parse_args(p, argv)
    rows = SMOKE_ROWS if args.smoke else ROWS
    out = Path(args.out)
    if args.smoke:
        vars(args).update(SMOKE_SIZES)
        aae = tiny_aae(seed=args.seed)
        diffusion = tiny_diffusion(aae.latent_dim, args.seed)
    elif args.bundle:
        aae, diffusion = load_bundle(args.bundle)
    else:
        p.error("--bundle is required (unless --smoke)")
    train, test = load_splits(args)
    classifier = reference(train, args.smoke)
    real_f = classifier.features(test.images)
    results: dict = {"bundle": args.bundle, "n": args.n, "rows": {}}

    def draw(name: str, n: int, seed: int) -> tuple[torch.Tensor, int, float]:
        start = time.perf_counter()
        if rows[name] is None:
            g = torch.Generator().manual_seed(seed)
            z, nfe = aae.prior.sample(n, generator=g), 0
        else:
            sampler, kw = rows[name]
            r = diffusion.sample(n, sampler, seed=seed, **kw)
            z, nfe = r.z, r.nfe
        return z, nfe, time.perf_counter() - start

    floor_f = classifier.features(train.images[: args.n])
    floor_pr = precision_recall(real_f, floor_f, ks=(3,))[3]
    results["floor (train images)"] = {
        "fid": fid(real_f, floor_f),
        "precision@3": floor_pr.precision,
        "recall@3": floor_pr.recall,
    }
    print("floor", results["floor (train images)"], flush=True)
    images = {}
    for name in args.rows:
        z, nfe, seconds = draw(name, args.n, args.seed)
        x = decode(aae, z)
        fake_f = classifier.features(x)
        pr = precision_recall(real_f, fake_f, ks=(3,))[3]
        row = {
            "fid": fid(real_f, fake_f),
            "precision@3": pr.precision,
            "recall@3": pr.recall,
            "nfe": nfe,
            "seconds": seconds,
            "samples_per_s": args.n / seconds if seconds > 0 else math.inf,
        }
        results["rows"][name] = row
        images[name] = x[:64]
        print(f"{name:>32}: " + "  ".join(f"{k} {v:.4g}" for k, v in row.items()), flush=True)

    # NLL of held-out latents: the model's q_θ against the prior p(z) it replaces.
    z_test = encode_dataset(aae, test.images[: args.nll_points])
    start = time.perf_counter()
    ll = diffusion.log_likelihood(z_test, rtol=1e-5, atol=1e-5).log_prob
    nll_seconds = time.perf_counter() - start
    hutch = diffusion.log_likelihood(
        z_test[:200], divergence="hutchinson", generator=torch.Generator().manual_seed(0)
    ).log_prob
    prior_ll = aae.prior.log_prob(z_test)
    d = aae.latent_dim
    results["nll"] = {
        "n": len(z_test),
        "model_nats": float(-ll.mean()),
        "model_stderr": float(ll.std() / math.sqrt(len(ll))),
        "model_bits_per_dim": float(bits_per_dim(ll, d).mean()),
        "model_first200_exact_nats": float(-ll[:200].mean()),
        "model_first200_hutchinson_nats": float(-hutch.mean()),
        "prior_nats": float(-prior_ll.mean()),
        "prior_bits_per_dim": float(bits_per_dim(prior_ll, d).mean()),
        "seconds": nll_seconds,
    }
    print("nll", results["nll"], flush=True)

    validation = train.images[-2000:].flatten(1)
    for name in ("prior p(z)", args.parzen_sampler):
        z, _, _ = draw(name, args.parzen_samples, args.seed + 1)
        samples = decode(aae, z).flatten(1)
        parzen = parzen_evaluate(samples, validation, test.images.flatten(1), progress=False)
        results.setdefault("parzen", {})[name] = {
            "log_likelihood": parzen.mean,
            "std_error": parzen.stderr,
            "sigma": parzen.sigma,
            "n_samples": args.parzen_samples,
        }
        print("parzen", name, str(parzen), flush=True)
    results["parzen_paper_aae"] = "340 ± 2 (Makhzani et al. 2015, Table 1)"
    write_json(out / "latent_diffusion.json", results)
    best = min(results["rows"], key=lambda k: results["rows"][k]["fid"])
    shown = {"prior p(z)": images["prior p(z)"]} if "prior p(z)" in images else {}
    save_figure(image_grids({**shown, best: images[best]}), out / "samples.png")


if __name__ == "__main__":
    main()
