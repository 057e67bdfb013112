"""The diffusion compasses of the navigator (DESIGN.md §3): with the exact score of a two-mode
mixture, "score" and "sde" keep interior points out of the empty region SLERP crosses."""

import pytest
import torch
from test_sampling import mixture_score
from torch import nn

from latentnav.interpolation import interpolate
from latentnav.navigation import make_method
from latentnav.sde import VPSDE


class ExactDiffusion(nn.Module):
    """A stand-in latent diffusion model whose score is the closed-form mixture score of
    tests/test_sampling.py (modes at (−2, 1) and (2, −1), std 0.4)."""

    latent_dim = 2

    def __init__(self):
        super().__init__()
        self.sde = VPSDE()

    def score_fn(self, ema=True):
        return mixture_score(self.sde)


class TwoD(nn.Module):
    latent_dim = 2


CENTERS = torch.tensor([[-2.0, 1.0], [2.0, -1.0]])


def _gap_share(z):
    """Share of interior points farther than 1.0 (2.5 σ) from both modes: where p ≈ 0."""
    inner = z[:, 1:-1]
    distance = (inner[:, :, None, :] - CENTERS).norm(dim=-1).amin(-1)
    return (distance > 1.0).double().mean().item()


@pytest.mark.parametrize(("name", "options"), [
    ("score", {"t0": 0.05, "corrections": 5}),
    ("sde", {"t0": 0.2, "substeps": 20}),
])  # fmt: skip
def test_diffusion_compasses_avoid_the_gap(name, options):
    g = torch.Generator().manual_seed(0)
    z_a = CENTERS[0] + 0.3 * torch.randn(64, 2, generator=g)
    z_b = CENTERS[1] + 0.3 * torch.randn(64, 2, generator=g)
    path = make_method(name, TwoD(), diffusion=ExactDiffusion(), steps=16, **options).path(z_a, z_b)
    assert torch.equal(path.z[:, 0], z_a) and torch.equal(path.z[:, -1], z_b)
    straight = _gap_share(interpolate(z_a, z_b, 16))
    assert straight > 0.2  # SLERP does cross the gap
    assert _gap_share(path.z) < 0.5 * straight, (_gap_share(path.z), straight)
    assert path.records["correction"][:, 1:-1].mean() > 0


def test_bad_options():
    with pytest.raises(ValueError, match="needs the latent diffusion"):
        make_method("score", TwoD())
    with pytest.raises(ValueError, match="t0 must be in"):
        make_method("sde", TwoD(), diffusion=ExactDiffusion(), t0=2.0)
    with pytest.raises(ValueError, match="sampler must be one of"):
        make_method("sde", TwoD(), diffusion=ExactDiffusion(), sampler="heun")
