"""Probe (issue 4, RESULTS 6.5): paths through the latent diffusion model: ODE interpolation
(``ode=t``) and an SDEdit projection of SLERP (``sdedit=t0``: noise to t0 with one noise draw per
pair, probability-flow ODE back).

    python probe_diffusion_paths.py 2 200 dev joint_d8_ft2 ode=1.0 sdedit=0.1
"""

import sys
import time

import torch
from evaluation_baselines import MNIST
from path_optimizer_sweep import OUT, pair_set
from probe_common import show

from latentnav.data import load_mnist
from latentnav.interpolation import interpolate
from latentnav.joint import load_bundle
from latentnav.metrics import ood_detector, reference_classifier
from latentnav.sampling import probability_flow

torch.set_num_threads(int(sys.argv[1]))
n = int(sys.argv[2])
which = sys.argv[3]
aae, diff = load_bundle(OUT / sys.argv[4] / "bundle.safetensors")
sde = diff.sde
train, test = load_mnist(MNIST, "train"), load_mnist(MNIST, "test")
ia, ib = pair_set(test.labels, which, n)
with torch.no_grad():
    za, zb = aae.encode(test.images[ia]), aae.encode(test.images[ib])
det = ood_detector(reference_classifier(train.images, train.labels), train.images, test.images)
EPS = 1e-3


def flow(z, t0, t1):
    return probability_flow(diff.score_fn(True), sde, z, t0, t1, rtol=1e-4, atol=1e-4).z


print("sde", type(sde).__name__, "T", sde.T)
for spec in sys.argv[5:]:
    kind, val = spec.split("=")
    t = time.perf_counter()
    if kind == "ode":  # encode endpoints to time t1, SLERP there, decode
        t1 = float(val)
        ha, hb = flow(za, EPS, t1), flow(zb, EPS, t1)
        mid = interpolate(ha, hb, 32, "slerp")
        z = flow(mid.flatten(0, 1), t1, EPS).view(mid.shape)
    elif kind in (
        "sdedit",
        "sdeditsin",
    ):  # project SLERP points: noise to t0 (shared noise per pair), ODE back
        t0 = float(val)
        base = interpolate(za, zb, 32, "slerp")
        g = torch.Generator().manual_seed(0)
        noise = torch.randn(len(za), 1, za.shape[1], generator=g).expand_as(base)
        m, s = sde.marginal(torch.tensor([t0]))
        zt = m * base + s * noise
        z = flow(zt.flatten(0, 1), t0, EPS).view(base.shape)
    z[:, 0], z[:, -1] = za, zb
    show(spec, z, aae, det)
    print(f"   {time.perf_counter() - t:.0f} s")
