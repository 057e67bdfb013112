"""Probe (issue 14): why CDE stays under its accuracy ceiling. One CDE (the benchmark's MLP, or
``--variant every``: the condition and time embedding concatenated to every hidden layer's input)
trained once on a bundle's encoded training latents, then sampled with several samplers of the
shared registry; reports the reference classifier's accuracy and FID of the decoded samples.

    cd experiments; PYTHONPATH=../benchmarks python probe_cde_samplers.py \
        --bundle /work/runs/joint_d16/bundle.safetensors --data ../../shared/data/mnist.npz \
        --samplers ode em,steps=500 pc,steps=300 pc,steps=1000

Measured (RESULTS §9.2, d = 16, width 256, 20 000 steps, n = 2000): ODE 0.930, EM 500 steps
0.950, PC 300 steps 0.965, PC 1000 steps 0.980 (the reconstructions' ceiling: 0.977).
"""

import argparse
import time

import torch
from common import decode, load_splits, reference
from conditional_mnist import sampler_spec
from torch import nn

from latentnav.conditional import CDE, EstimatorModel, fit_estimator, one_hot
from latentnav.conditional.net import NoiseNet, NoiseNetConfig
from latentnav.joint import encode_dataset, load_bundle
from latentnav.metrics import fid
from latentnav.metrics.samples import classifier_accuracy
from latentnav.score_net import time_embedding


class EveryLayer(NoiseNet):
    """NoiseNet with [c, e(t)] concatenated to the input of every hidden layer."""

    def __init__(self, config: NoiseNetConfig):
        nn.Module.__init__(self)
        self.config = c = config
        extra = c.cond_dim + c.embed_dim
        self.layers = nn.ModuleList(
            [nn.Linear((c.dim if i == 0 else c.width) + extra, c.width) for i in range(c.depth)]
        )
        self.out = nn.Linear(c.width, c.dim)

    def forward(self, x, t, cond, c_in):
        e = torch.cat([cond, time_embedding(t, self.config.embed_dim)], 1)
        h = c_in * x
        for layer in self.layers:
            h = nn.functional.silu(layer(torch.cat([h, e], 1)))
        return self.out(h)


def sampler_options(spec: str) -> tuple[str, dict]:
    """``--sampler`` of conditional_mnist.py, with its table's ODE tolerances by default."""
    name, opts = sampler_spec(spec)
    return name, ({"rtol": 1e-3, "atol": 1e-3} | opts) if name == "ode" else opts


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--bundle", required=True)
    p.add_argument("--data", default="../../shared/data/mnist.npz")
    p.add_argument("--variant", choices=("plain", "every"), default="plain")
    p.add_argument("--steps", type=int, default=20000)
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--samplers", nargs="*", default=["ode"])
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    args.smoke = False
    aae, diffusion = load_bundle(args.bundle)
    train, test = load_splits(args)
    ref = reference(train, False)
    real_f = ref.features(test.images)
    z0 = encode_dataset(aae, train.images)
    est = CDE(diffusion.sde, 10)
    torch.manual_seed(0)
    config = NoiseNetConfig(aae.latent_dim, 10, width=args.width)
    net = NoiseNet(config) if args.variant == "plain" else EveryLayer(config)
    g = torch.Generator().manual_seed(1)
    start = time.perf_counter()
    losses = fit_estimator(
        est, net, z0, one_hot(train.labels, 10), steps=args.steps, lr=args.lr, generator=g
    )
    print(
        f"{args.variant}, width {args.width}, {args.steps} steps: {time.perf_counter() - start:.0f}"
        f" s, mean loss of the last 1000 steps {sum(losses[-1000:]) / 1000:.4f}",
        flush=True,
    )
    wanted = torch.arange(10).repeat_interleave(args.n // 10)
    model = EstimatorModel(est, net.requires_grad_(False))
    for spec in args.samplers:
        name, opts = sampler_options(spec)
        g.manual_seed(2)
        start = time.perf_counter()
        r = model.sample(len(wanted), wanted, name, generator=g, **opts)
        x = decode(aae, r.z).clamp(0, 1)
        acc = classifier_accuracy(ref.logits, x, wanted)
        score = fid(real_f, ref.features(x))
        print(
            f"  {spec:24s} accuracy {acc:.4f}  FID {score:.2f}  NFE {r.nfe}"
            f"  {time.perf_counter() - start:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()
