"""Probe-only terms and frame choices of ``probe_path_scales.py`` (issue 12, RESULTS §6.11–§6.22):
variants measured and not taken into the library."""

from __future__ import annotations

import torch

from latentnav.navigation.energy import EndpointClasses
from latentnav.navigation.frames import CappedFrames
from latentnav.navigation.graph import _nearest, stored_edges


class ScorePull:
    """Probe term: w · Σ_{k=1}^{T−1} −⟨sg[s(t0)² s_θ(z_k, t0)], z_k⟩, whose gradient pulls each
    interior point along the diffusion model's score (a Tweedie step per unit weight); the
    value is a surrogate (only its gradient is the density's)."""

    def __init__(self, diffusion, weight: float, t0: float):
        self.diffusion, self.weight, self.t0 = diffusion, weight, t0

    def __call__(self, context):
        b, n, d = context.z.shape
        inner = context.z[:, 1:-1].reshape(-1, d)
        t = torch.full((len(inner),), self.t0, dtype=inner.dtype)
        with torch.no_grad():
            pull = self.diffusion.sde.marginal(t)[1].square()[:, None] * self.diffusion.score_fn(
                True
            )(inner, t)
        return -self.weight * (pull * inner).sum(1).view(b, n - 2).sum(1)

    def modules(self):
        return [self.diffusion]


class KNNCompass(torch.nn.Module):
    """ℓ(z) = log p(z) − log q̂(z) with q̂ the k-NN density of the checkpoint's data bank, log q̂(z)
    = −d · log r_k(z) + const (r_k: the distance to the k-th nearest bank latent), so that
    ``Density(KNNCompass(...), prior, λ)`` costs λ · d · log r_k at each point (``knn=λ``)."""

    def __init__(self, aae, k: int = 10):
        super().__init__()
        self.bank, self.prior, self.k = stored_edges(aae)[0].float(), aae.prior, int(k)

    def forward(self, z):
        kth = _nearest(z.detach(), self.bank, self.k, skip_self=False)[:, -1]
        r = (z - self.bank[kth]).norm(dim=-1)  # differentiable in z
        return self.prior.log_prob(z) + z.shape[1] * torch.log(r.clamp_min(1e-8))


class Ambiguity(EndpointClasses):
    """Probe term (``labels,conf=ν'``): ν' · Σ_{k=1}^{T−1} [log(p(ŷ_0 | z_k) + p(ŷ_T | z_k)) −
    max(log p(ŷ_0 | z_k), log p(ŷ_T | z_k))] → (B,), 0 where the endpoints agree and at most
    ν' · log 2: a frame costs for being between the endpoints' classes, not only outside both
    (with ν' = ν the class term becomes ν · −max log p)."""

    def _points(self, context):
        b, n, d = context.z.shape
        if n <= 2:
            return context.z.new_zeros(b, 0)
        logp = self.classifier(context.z.reshape(b * n, d)).log_softmax(-1).view(b, n, -1)
        ends = logp[:, [0, -1]].detach().argmax(-1)
        picked = logp[:, 1:-1].gather(2, ends[:, None, :].expand(-1, n - 2, -1))
        same = (ends[:, 0] == ends[:, 1])[:, None]
        return torch.where(same, 0.0, picked.logsumexp(-1) - picked.amax(-1))

    def config(self):
        return {"term": "ambiguity", "weight": self.weight}


class BankFrames(CappedFrames):
    """CappedFrames whose candidates also hold, for each interior point of the dense polyline, its
    ``m`` nearest latents of the checkpoint's data bank (encoded training images), each at that
    point's position along the path (``bank=m``: frames that are the data's own codes)."""

    def __init__(self, aae, base, ratio, subdivide, m, energy=None):
        super().__init__(aae, base, ratio, subdivide, energy=energy)
        self.bank, self.m = stored_edges(aae)[0].float(), int(m)

    def _count(self, steps):
        return (1 + self.m) * steps * self.subdivide + 1

    def _candidates(self, path, straight):
        z, order = super()._candidates(path, straight)
        g, n, d = z.shape
        near = _nearest(z[:, 1:-1].reshape(-1, d), self.bank, self.m, skip_self=False)
        near = self.bank[near].view(g, (n - 2) * self.m, d)
        z = torch.cat([z[:, :-1], near, z[:, -1:]], 1)
        inner_order = order[1:-1].repeat_interleave(self.m)
        return z, torch.cat([order[:-1], inner_order, order[-1:]])
