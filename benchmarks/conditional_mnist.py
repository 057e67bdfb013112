"""Class-conditional latent generation on MNIST (issue 14, DESIGN.md §6): on the encoded training
latents of a trained bundle, train the conditional estimators (CDE, CDiffE, CMDE, VS-CMDE) and the
noisy latent classifiers (DLSM' + λ CE, CE-only) against the bundle's frozen score model; sample
``--n`` latents per row (an equal number per class) through the one conditional sampling API,
decode them, and report in the reference classifier's feature space: its accuracy on the samples,
FID, precision / recall / density / coverage (k = 3), class-wise FID (mean over the classes), and
CAS (an MLP trained on the generated images, accuracy on the real test images). Rows "real" (n
training images), "reconstructions" (G(E(x)) of n / 10 training images per class: what a model
that samples q(z | y) exactly reaches through this decoder) and "unconditional" (the bundle's
diffusion) frame the table. Samplers: the
probability-flow ODE (rtol = atol = 1e-3) where the score is deterministic, Euler–Maruyama (200
steps) for CDiffE / CMDE / VS-CMDE, whose y_t is redrawn at every step.

``--inverse random_mask square_hole downsample``: inverse-problem rows instead (a CDE on the
flattened measurement y = A(x), 5 samples per test image, beside encoding A⁺ y directly and the
truth's reconstruction G(E(x))).

    python benchmarks/conditional_mnist.py --threads 1 --mnist ../../shared/data/mnist.npz \
        --bundle /work/runs/joint_d8/bundle.safetensors --out benchmarks/out/conditional_d8
    python benchmarks/conditional_mnist.py --threads 1 --mnist ../../shared/data/mnist.npz \
        --bundle /work/runs/joint_d8/bundle.safetensors --out benchmarks/out/inverse_d8 \
        --inverse random_mask
    python benchmarks/conditional_mnist.py --smoke       # tiny untrained models, seconds

Measured (RESULTS §9.1–9.2, n = 2000): the reference accuracy of the reconstructions G(E(x))
is 0.946 at d = 8 (0.977 at d = 16), the ceiling of a faithful conditional model; CDE reaches
0.837 (defaults) → 0.901 (20000 steps) → 0.915 (width 256) → 0.916 (512) → 0.929 (width 256,
60000 steps), FID 7.6 (reconstructions 7.6); DLSM and CE-only guidance stay at 0.86–0.89, FID
13–16, DLSM never better on FID and equal on CAS; CE-only α = 2 0.99+ with recall 0.56. d = 16:
CDE 0.921, CE-only α = 2 0.951 / FID 6.4. n = 10000, d = 8: CDE 0.924 / FID 6.51 against the
reconstructions' 0.944 / 6.55; DLSM vs CE-only CAS 0.923 vs 0.917, FID 15.15 vs 14.91; d = 16:
CDE 0.931 / 8.87, DLSM α = 2 0.973 / 5.27 vs CE-only α = 2 0.958 / 5.87. Inverse
problems (200 inputs × 5), CDE vs encoding A⁺y: random mask 16.1 vs 11.5 dB, square hole 14.3 vs
11.1, ×4 downsampling 15.6 vs 14.7; VS-CMDE 13.3 / 12.1 / 13.2, CMDE and CDiffE under the
direct encoding (§9.3). ``--sampler pc,steps=300`` (§9.3, n = 10000): CDE 0.968 / FID 6.05 at
d = 16, 0.941 / 6.55 at d = 8; guidance rows are worse with PC than with the ODE (d = 16 DLSM
α = 2 0.853 vs 0.973). ``--score refit``: unconditional FID 31.4 at d = 16 (bundle 35.8),
23.9 at width 512, depth 4 (DLSM α = 1 on it: 0.803 / FID 22.7 vs CE-only 0.782 / 24.4).
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path

import torch
from common import decode, load_splits, reference, tiny_aae, tiny_diffusion
from torch import nn

from latentnav.checkpoint import atomic_path
from latentnav.conditional import (
    CDE,
    CMDE,
    VSCMDE,
    CDiffE,
    ClassifierConfig,
    ClassifierGuidance,
    EstimatorModel,
    NoisyClassifier,
    fit_classifier,
    fit_estimator,
    make_operator,
    one_hot,
)
from latentnav.joint import encode_dataset, load_bundle
from latentnav.metrics import fid, precision_recall
from latentnav.metrics.samples import classifier_accuracy, psnr, ssim
from latentnav.prior_sampling import sample
from latentnav.sampling import SAMPLERS
from latentnav.sde import VPSDE

K = 10
ODE = ("ode", {"rtol": 1e-3, "atol": 1e-3})
EM = ("em", {"steps": 200})  # the joint estimators' scores are random (y_t redrawn): no ODE
# row name → (kind, name, guidance scale α, (sampler, options)); "scaling" is CE-only with α > 1.
ROWS = {
    "real (train images)": ("real", None, None, None),
    "reconstructions": ("reconstruction", None, None, None),
    "unconditional": ("unconditional", None, None, ODE),
    "CDE": ("estimator", "cde", None, ODE),
    "CDiffE": ("estimator", "cdiffe", None, EM),
    "CMDE (β_y ≤ 1)": ("estimator", "cmde", None, EM),
    "VS-CMDE (σ_y 1 → 0.05)": ("estimator", "vs-cmde", None, EM),
    "DLSM α=1": ("guidance", "dlsm", 1.0, ODE),
    "DLSM α=2": ("guidance", "dlsm", 2.0, ODE),
    "CE-only α=1": ("guidance", "ce", 1.0, ODE),
    "scaling: CE-only α=2": ("guidance", "ce", 2.0, ODE),
    "scaling: CE-only α=4": ("guidance", "ce", 4.0, ODE),
}


def make_estimator(name: str, sde, k: int = K):
    """The estimator ``name`` of the table for a condition of ``k`` dimensions."""
    return {
        "cde": lambda: CDE(sde, k),
        "cdiffe": lambda: CDiffE(sde, k),
        "cmde": lambda: CMDE(sde, k, sde_y=VPSDE(0.1, 1.0)),
        "vs-cmde": lambda: VSCMDE(sde, k, sigma_start=1.0, sigma_target=0.05, rate=0.01),
    }[name]()


def sampler_spec(text: str) -> tuple[str, dict]:
    """ "pc,steps=300,snr=0.16" → ("pc", {"steps": 300, "snr": 0.16}) for ``--sampler``."""
    name, *pairs = text.split(",")
    if name not in SAMPLERS:
        raise argparse.ArgumentTypeError(f"unknown sampler {name!r}; known: {list(SAMPLERS)}")
    opts = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {pair!r}")
        opts[key] = int(value) if value.lstrip("-").isdigit() else float(value)
    return name, opts


def per_class(labels: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the first ``count`` items of each class, class 0 first: (K · count,)."""
    picked = [torch.nonzero(labels == k).flatten()[:count] for k in range(K)]
    short = [k for k, idx in enumerate(picked) if len(idx) < count]
    if short:
        raise ValueError(f"classes {short} have fewer than {count} training images")
    return torch.cat(picked)


def cas(images, labels, test, epochs: int, seed: int) -> float:
    """Classification accuracy score: an MLP (784-256-10) trained on ``images`` (N, 1, 28, 28)
    with ``labels``, accuracy on the real test images."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, K))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(images), generator=g).split(128):
            loss = nn.functional.cross_entropy(net(images[idx]), labels[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        pred = torch.cat([net(x).argmax(1) for x in test.images.split(2000)])
    return float((pred == test.labels).double().mean())


def metrics(x, labels, ref, real_f, test, args) -> dict:
    fake_f = ref.features(x)
    pr = precision_recall(real_f, fake_f, ks=(3,))[3]
    per_class = [fid(real_f[test.labels == k], fake_f[labels == k]) for k in range(K)]
    return {
        "accuracy": classifier_accuracy(ref.logits, x, labels),
        "fid": fid(real_f, fake_f),
        "precision": pr.precision,
        "recall": pr.recall,
        "density": pr.density,
        "coverage": pr.coverage,
        "class_fid": sum(per_class) / K,
        "cas": cas(x, labels, test, args.cas_epochs, args.seed),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bundle", help="bundle of `latentnav train` (required unless --smoke)")
    p.add_argument("--data", "--mnist", dest="data", default=None,
                   help="MNIST .npz (default: see benchmarks/common.py)")  # fmt: skip
    p.add_argument("--n", type=int, default=2000, help="samples per row (n / 10 per class)")
    p.add_argument("--rows", nargs="*", default=list(ROWS), help="subset of the rows")
    p.add_argument("--steps", type=int, default=4000, help="training steps per estimator")
    p.add_argument("--classifier-steps", type=int, default=2000)
    p.add_argument(
        "--sampler",
        type=sampler_spec,
        default=None,
        metavar="NAME[,KEY=VALUE...]",
        help="one sampler for every generated row and inverse problem instead of the table's "
        "(ODE for CDE and guidance, EM 200 for the diffused-condition estimators), e.g. "
        "pc,steps=300",
    )
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--width", type=int, default=128)
    p.add_argument("--depth", type=int, default=3, help="hidden layers of estimators / classifiers")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (cosine decay)")
    p.add_argument(
        "--ema",
        type=float,
        default=0.0,
        help="EMA decay of estimator / classifier weights (0: off)",
    )
    p.add_argument(
        "--score",
        choices=("bundle", "refit"),
        default="bundle",
        help="frozen unconditional score of the unconditional and guided rows: the "
        "bundle's diffusion, or one refitted on the final latents by DSM with "
        "the estimators' net, steps and EMA (a CDE on a constant zero condition, "
        "whose input column gets no gradient: exactly unconditional)",
    )
    p.add_argument("--cas-epochs", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--inverse", nargs="*", default=[], metavar="OPERATOR",
                   help="inverse-problem rows instead: random_mask (25 %% kept), square_hole, "
                        "downsample (×4)")  # fmt: skip
    estimator_rows = [r for r, v in ROWS.items() if v[0] == "estimator"]
    p.add_argument(
        "--inverse-rows",
        nargs="*",
        default=["CDE"],
        choices=estimator_rows,
        metavar="ROW",
        help=f"estimators per inverse problem, of {estimator_rows}",
    )
    p.add_argument("--inputs", type=int, default=200, help="test images per inverse problem")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the script runs")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    table = dict(ROWS)
    if args.smoke:
        args.n, args.steps, args.classifier_steps = 200, 30, 30
        args.cas_epochs, args.width = 1, 32
        table.update({k: (*v[:3], ("em", {"steps": 10})) for k, v in ROWS.items() if v[3]})
        args.inputs = 20
    elif args.sampler:
        table.update({k: (*v[:3], args.sampler) for k, v in ROWS.items() if v[3]})
    elif not args.bundle:
        p.error("--bundle is required (or --smoke)")
    torch.set_num_threads(args.threads)
    unknown = set(args.rows) - set(table)
    if unknown:
        raise SystemExit(f"unknown rows {sorted(unknown)}; known: {list(ROWS)}")
    if args.smoke:
        aae, diffusion = tiny_aae(4), tiny_diffusion(4)
    else:
        aae, diffusion = load_bundle(args.bundle)
    train, test = load_splits(args)
    images, labels = train.images, train.labels
    ref = reference(train, args.smoke)
    real_f = ref.features(test.images)
    z0 = encode_dataset(aae, images)
    d, sde = aae.latent_dim, diffusion.sde
    if args.inverse:
        return inverse_rows(aae, sde, z0, images, test, ref, real_f, args)
    wanted = torch.arange(K).repeat_interleave(args.n // K)
    n = len(wanted)
    results: dict = {"bundle": args.bundle, "args": vars(args), "rows": {}}
    classifiers: dict[str, NoisyClassifier] = {}

    @functools.cache
    def base_score():
        """The frozen unconditional score of ``--score``, built on first use."""
        if args.score == "bundle":
            return diffusion.score_fn()
        est, zero = CDE(sde, 1), torch.zeros(len(z0), 1)
        torch.manual_seed(args.seed)
        net = est.make_net(d, width=args.width, depth=args.depth)
        start = time.perf_counter()
        g2 = torch.Generator().manual_seed(args.seed + 2)
        fit_estimator(est, net, z0, zero, steps=args.steps, batch=args.batch, lr=args.lr,
                      ema=args.ema, generator=g2)  # fmt: skip
        print(f"refitted unconditional score: {time.perf_counter() - start:.0f} s", flush=True)
        return est.score(net.requires_grad_(False), zero[:1])

    def draw(kind, name, scale, sampling) -> tuple[torch.Tensor, dict]:
        g = torch.Generator().manual_seed(args.seed + 1)
        info: dict = {}
        if kind == "real":
            return images[:n], {}
        if kind == "reconstruction":  # G(E(x)): the ceiling of any model through this decoder
            return decode(aae, z0[per_class(labels, n // K)]).clamp(0, 1), {}
        sampler, opts = sampling
        if kind == "unconditional" and args.score == "bundle":
            r = diffusion.sample(n, sampler, seed=args.seed + 1, **opts)
        elif kind == "unconditional":
            g.manual_seed(args.seed + 1)
            r = sample(base_score(), sde, (n, d), sampler, generator=g, **opts)
        elif kind == "estimator":
            est = make_estimator(name, sde)
            torch.manual_seed(args.seed)
            net = est.make_net(d, width=args.width, depth=args.depth)
            start = time.perf_counter()
            losses = fit_estimator(est, net, z0, one_hot(labels, K), steps=args.steps,
                                   batch=args.batch, lr=args.lr, ema=args.ema,
                                   generator=g)  # fmt: skip
            info |= {"train_s": time.perf_counter() - start, "final_loss": losses[-1]}
            r = EstimatorModel(est, net).sample(n, wanted, sampler, generator=g, **opts)
        else:
            if name not in classifiers:
                torch.manual_seed(args.seed)
                clf = NoisyClassifier(ClassifierConfig(d, K, width=args.width, depth=args.depth))
                start = time.perf_counter()
                fit_classifier(clf, name, base_score(), sde, z0, labels, generator=g,
                               steps=args.classifier_steps, batch=args.batch,
                               lr=args.lr, ema=args.ema)  # fmt: skip
                classifiers[name] = clf.eval().requires_grad_(False)
                info["train_s"] = time.perf_counter() - start
            if args.score == "bundle":
                r = diffusion.sample(n, sampler, seed=args.seed + 1, condition=wanted,
                                     guidance=classifiers[name], scale=scale, **opts)  # fmt: skip
            else:
                g.manual_seed(args.seed + 1)
                model = ClassifierGuidance(base_score(), classifiers[name], sde, scale)
                r = model.sample(n, wanted, sampler, generator=g, **opts)
        return decode(aae, r.z).clamp(0, 1), {**info, "nfe": r.nfe, "sampler": sampler}

    for row in args.rows:
        kind, name, scale, sampling = table[row]
        start = time.perf_counter()
        x, info = draw(kind, name, scale, sampling)
        row_labels = labels[:n] if kind == "real" else wanted
        values = metrics(x, row_labels, ref, real_f, test, args)
        if kind == "unconditional":  # no requested class: no accuracy, class-wise FID or CAS
            values.pop("accuracy"), values.pop("class_fid"), values.pop("cas")
        results["rows"][row] = {**values, **info, "seconds": time.perf_counter() - start}
        cells = [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in
                 results["rows"][row].items()]  # fmt: skip
        print(f"{row:>24}: " + "  ".join(cells), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "conditional.json") as tmp:
        tmp.write_text(json.dumps(results, indent=2))
    print_table(results["rows"])


OPERATORS = {"random_mask": {"keep": 0.25}, "square_hole": {"size": 14},
             "downsample": {"factor": 4}}  # fmt: skip
SAMPLES_PER_INPUT = 5


def pseudo_inverse(op, y: torch.Tensor) -> torch.Tensor:
    """A⁺ y = Aᵀ (A Aᵀ)⁻¹ y for the diagonal A Aᵀ of masks and average pooling: the masked image,
    or the nearest-neighbour upsampled one."""
    gram = op(op.adjoint(torch.ones_like(y)))
    return op.adjoint(y / gram.clamp_min(1e-12))


def inverse_rows(aae, sde, z0, images, test, ref, real_f, args) -> None:
    """Per operator: each estimator of ``--inverse-rows`` (default CDE) trained on (E(x), A(x)
    flattened) and sampled with its table sampler, 5 samples for each of ``--inputs``
    test images, beside encoding the back-projected measurement directly, G(E(A⁺ y)), and the
    reconstruction of the truth, G(E(x)), as the PSNR / SSIM this decoder allows. PSNR, SSIM
    against the truth, consistency ‖y − A(x̂)‖² per image, diversity (pixel std over the 5
    samples), FID (reference features) of all samples."""
    results: dict = {"bundle": args.bundle, "args": vars(args), "rows": {}}
    truth = test.images[: args.inputs]
    ceiling = decode(aae, encode_dataset(aae, truth)).clamp(0, 1)
    ceiling = ceiling.repeat_interleave(SAMPLES_PER_INPUT, 0)
    for op_name in args.inverse:
        op = make_operator(op_name, **OPERATORS[op_name])
        cond = torch.cat([op.condition(x) for x in images.split(5000)])
        y = op(truth)
        reps = truth.repeat_interleave(SAMPLES_PER_INPUT, 0)
        vector = op.condition(truth).repeat_interleave(SAMPLES_PER_INPUT, 0)
        samples, info = {}, {}
        for row in args.inverse_rows:
            _, name, _, (sampler, opts) = ROWS[row]
            if args.smoke or args.sampler:
                sampler, opts = ("em", {"steps": 10}) if args.smoke else args.sampler
            est = make_estimator(name, sde, cond.shape[1])
            torch.manual_seed(args.seed)
            net = est.make_net(aae.latent_dim, width=args.width, depth=args.depth)
            g = torch.Generator().manual_seed(args.seed + 1)
            start = time.perf_counter()
            fit_estimator(est, net, z0, cond, steps=args.steps, batch=args.batch, lr=args.lr,
                          ema=args.ema, generator=g)  # fmt: skip
            train_s = time.perf_counter() - start
            r = EstimatorModel(est, net).sample(len(reps), vector, sampler, generator=g, **opts)
            samples[row] = decode(aae, r.z).clamp(0, 1)
            info[row] = {"train_s": train_s, "nfe": r.nfe, "sampler": sampler}
        baseline = decode(aae, encode_dataset(aae, pseudo_inverse(op, y))).clamp(0, 1)
        samples["encode A⁺y"] = baseline.repeat_interleave(SAMPLES_PER_INPUT, 0)
        samples["G(E(x)) ceiling"] = ceiling  # the truth encoded: what the decoder allows
        for name, x in samples.items():
            spread = x.view(len(truth), SAMPLES_PER_INPUT, -1).std(1).mean()
            row = {
                "psnr": float(psnr(x, reps).mean()),
                "ssim": float(ssim(x, reps).mean()),
                "consistency": float((op(x) - op(reps)).flatten(1).square().sum(1).mean()),
                "diversity": float(spread),
                "fid": fid(real_f, ref.features(x)),
            }
            row |= info.get(name, {})
            results["rows"][f"{op_name}: {name}"] = row
            print(f"{op_name}: {name}: " + "  ".join(f"{k} {v:.4g}" if isinstance(v, float)
                                                     else f"{k} {v}" for k, v in row.items()),
                  flush=True)  # fmt: skip
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "inverse.json") as tmp:
        tmp.write_text(json.dumps(results, indent=2))
    print_table(results["rows"], ["psnr", "ssim", "consistency", "diversity", "fid"])


def print_table(rows: dict, cols: list[str] | None = None) -> None:
    cols = cols or ["accuracy", "fid", "precision", "recall", "density", "coverage", "class_fid",
                    "cas"]  # fmt: skip
    print("\n| row | " + " | ".join(cols) + " |")
    print("|---|" + "---:|" * len(cols))
    for name, row in rows.items():
        cells = [f"{row[c]:.3f}" if c in row else "–" for c in cols]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
