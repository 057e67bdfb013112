"""Probe (issue 4): the chosen path energy plus a label-free "stay like the endpoints" term,

    mode=fade: ν·Σ_k ‖x_k − ((1 − k/T)·x_0 + (k/T)·x_T)‖²       (pull towards the pixel crossfade)
    mode=near: ν·Σ_k min(‖x_k − x_0‖², ‖x_k − x_T‖²)            (pull towards the nearer endpoint)

x_k = G(z_k), so that intermediate frames do not turn into a third digit.

    python probe_crossfade.py 1 200 dev fade:0.1 near:0.3   (mode:ν ...)
"""

import sys
import time

import torch
from probe_common import setup, show

from latentnav.navigation import Energy, PathOptimizer, label_free


class EndpointAnchor:
    """The probe's term, a user-defined energy term (context → (B,)): no monkey-patching."""

    def __init__(self, mode: str, nu: float):
        self.mode, self.nu = mode, nu

    def __call__(self, context) -> torch.Tensor:
        b, n = context.z.shape[:2]
        x = context.images.reshape(b, n, -1)
        inner, x0, x1 = x[:, 1:-1], x[:, :1], x[:, -1:]
        if self.mode == "fade":
            t = torch.arange(1, n - 1, dtype=x.dtype)[None, :, None] / (n - 1)
            term = (inner - ((1 - t) * x0 + t * x1)).square().sum(2)
        else:
            term = torch.minimum((inner - x0).square().sum(2), (inner - x1).square().sum(2))
        return self.nu * term.sum(1)


torch.set_num_threads(int(sys.argv[1]))
aae, compass, train, test, za, zb, det = setup(sys.argv[3], int(sys.argv[2]))
for spec in sys.argv[4:]:
    mode, nu = spec.split(":")
    energy = Energy(*label_free(aae, compass).terms, EndpointAnchor(mode, float(nu)))
    start = time.perf_counter()
    path = PathOptimizer(aae, energy, compass).path(za, zb)
    show(f"{spec} ({time.perf_counter() - start:.0f} s)", path, aae, det)
