"""Probe (issue 4, RESULTS 6.5): the chosen path energy plus β·Σ_k −log(Σ_j r_j(z_k) m_j + 10⁻³),
r the responsibilities of a K-component Gaussian mixture fitted by EM to encoded training images
and m_j = max(r_j(z_a), r_j(z_b)): stay in the endpoints' modes (passed in through the compass).

    python probe_endpoint_modes.py 1 200 dev 20:10 20:30   (K:β ...)
    python probe_endpoint_modes.py 1 10 dev 10:purity 20:purity 50:purity
"""

import math
import sys
import time

import torch
from probe_common import setup

from latentnav.compass import encode_all
from latentnav.path_optimizer import PathOptimizerConfig, optimize_paths


def fit_gmm(x, k, iters=100, seed=0, reg=1e-4):
    g = torch.Generator().manual_seed(seed)
    n, d = x.shape
    mu = x[torch.randint(n, (1,), generator=g)]
    for _ in range(k - 1):
        d2 = torch.cdist(x, mu).min(1).values ** 2
        mu = torch.cat([mu, x[torch.multinomial(d2 / d2.sum(), 1, generator=g)]])
    cov = torch.eye(d).expand(k, d, d).clone() * x.var(0).mean()
    logw = torch.full((k,), -math.log(k))
    for _ in range(iters):
        lj = comp_logp(x, mu, torch.linalg.cholesky(cov)) + logw
        r = (lj - torch.logsumexp(lj, 1, keepdim=True)).exp()
        nk = r.sum(0) + 1e-10
        mu = (r.T @ x) / nk[:, None]
        diff = x[:, None] - mu[None]
        cov = torch.einsum("nk,nki,nkj->kij", r, diff, diff) / nk[:, None, None] + reg * torch.eye(
            d
        )
        logw = torch.log(nk / n)
    return mu, torch.linalg.cholesky(cov), logw


def comp_logp(x, mu, L):
    d = x.shape[1]
    diff = x[:, None] - mu[None]
    sol = torch.linalg.solve_triangular(
        L[None].expand(len(x), -1, -1, -1), diff[..., None], upper=False
    )[..., 0]
    return (
        -0.5 * sol.square().sum(-1)
        - torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
        - 0.5 * d * math.log(2 * math.pi)
    )


def resp(x, gmm):
    lj = comp_logp(x, gmm[0], gmm[1]) + gmm[2]
    return (lj - torch.logsumexp(lj, 1, keepdim=True)).exp()


class ModeCompass(torch.nn.Module):
    def __init__(self, compass, gmm, m, weight, steps):
        super().__init__()
        self.compass, self.gmm, self.m, self.w, self.steps = compass, gmm, m, weight, steps

    def forward(self, z):
        out = self.compass(z)
        if len(z) == len(self.m) * (self.steps - 1):
            m = self.m.repeat_interleave(self.steps - 1, 0)
            out = out - self.w * torch.log((resp(z, self.gmm) * m).sum(1) + 1e-3)
        return out


torch.set_num_threads(int(sys.argv[1]))
n = int(sys.argv[2])
which = sys.argv[3]
aae, compass, train, test, za, zb, det = setup(which, n)
bank = encode_all(aae, train.images)
gmms = {}
for spec in sys.argv[4:]:
    k, beta = spec.split(":")
    k = int(k)
    if k not in gmms:
        t = time.perf_counter()
        gmms[k] = fit_gmm(bank, k)
        print(f"gmm {k}: {time.perf_counter() - t:.0f} s", flush=True)
    if beta == "purity":  # share of training images in their component's majority class
        with torch.no_grad():
            a, y = resp(bank, gmms[k]).argmax(1), train.labels.long()
        top = sum(int(torch.bincount(y[a == j]).max()) for j in range(k) if (a == j).any())
        print(f"K={k}: label purity {top / len(y):.3f}", flush=True)
        continue
    beta = float(beta)
    with torch.no_grad():
        m = torch.maximum(resp(za, gmms[k]), resp(zb, gmms[k]))
    cfg = PathOptimizerConfig(density_weight=30, jump_weight=0.3, jump_power=16, cycle_weight=300)
    comp = ModeCompass(compass, gmms[k], m, beta / 30, 32)
    t = time.perf_counter()
    p = optimize_paths(aae, za, zb, comp, cfg)
    r = p.report(aae, detector=det)
    print(
        f"K={k} β={beta:g}: union OOD {r.ood_rate['union']:.4f} step mean {r.step_mean:.3f} "
        f"step max {r.step_max:.3f} ≤1 {r.at_most_one_change:.3f} "
        f"changes {r.class_changes:.2f} len {r.length_ratio:.2f} "
        f"({time.perf_counter() - t:.0f} s)",
        flush=True,
    )
