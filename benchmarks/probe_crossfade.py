"""Probe (issue 4): the chosen path energy plus a label-free "stay like the endpoints" term,

    mode=fade: ν·Σ_k ‖x_k − ((1 − k/T)·x_0 + (k/T)·x_T)‖²       (pull towards the pixel crossfade)
    mode=near: ν·Σ_k min(‖x_k − x_0‖², ‖x_k − x_T‖²)            (pull towards the nearer endpoint)

x_k = G(z_k), so that intermediate frames do not turn into a third digit.

    cd benchmarks && python probe_crossfade.py 1 200 dev fade:0.1 near:0.3   (mode:ν ...)
"""

import sys
import time

import torch
from probe_common import setup, show

import latentnav.path_optimizer as po
from latentnav.path_optimizer import PathOptimizerConfig, optimize_paths

base_energy = po.path_energy
SETTING = {"mode": None, "nu": 0.0}


def energy(decoder, compass, prior, z, weight, encoder=None, classifier=None):
    e = base_energy(decoder, compass, prior, z, weight, encoder, classifier)
    if SETTING["nu"] == 0:
        return e
    b, n, d = z.shape
    x = decoder(z.reshape(b * n, d)).reshape(b, n, -1)
    inner, x0, x1 = x[:, 1:-1], x[:, :1], x[:, -1:]
    if SETTING["mode"] == "fade":
        t = torch.arange(1, n - 1, dtype=x.dtype)[None, :, None] / (n - 1)
        term = (inner - ((1 - t) * x0 + t * x1)).square().sum(2)
    else:
        term = torch.minimum((inner - x0).square().sum(2), (inner - x1).square().sum(2))
    return e + SETTING["nu"] * term.sum(1)


po.path_energy = energy
torch.set_num_threads(int(sys.argv[1]))
aae, compass, train, test, za, zb, det = setup(sys.argv[3], int(sys.argv[2]))
config = PathOptimizerConfig(density_weight=30, cycle_weight=300, jump_weight=0.3, jump_power=16)
for spec in sys.argv[4:]:
    mode, nu = spec.split(":")
    SETTING.update(mode=mode, nu=float(nu))
    start = time.perf_counter()
    path = optimize_paths(aae, za, zb, compass, config)
    show(f"{spec} ({time.perf_counter() - start:.0f} s)", path, aae, det)
