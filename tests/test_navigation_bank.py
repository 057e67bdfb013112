"""The bank of a data graph (latentnav.navigation.bank): decoder inversion against least squares."""

import pytest
import torch
from torch import nn

from latentnav.navigation.bank import data_bank, invert, reconstruction_errors


class LinearAAE(nn.Module):
    """G(z) = A z (A: 5 × 3, full column rank): argmin_z ‖G(z) − x‖ is the least-squares z."""

    latent_dim = 3

    def __init__(self):
        super().__init__()
        self.decoder = nn.Linear(3, 5, bias=False)
        with torch.no_grad():
            self.decoder.weight.copy_(torch.randn(5, 3, generator=torch.Generator().manual_seed(0)))

    def decode(self, z):
        return self.decoder(z)


class TornAAE(nn.Module):
    """x = (a, b, f): E(x) = (a + 5f, b), G(z) = (z₁, z₂, 0). E is exact where f = 0 and off by
    5f elsewhere; the best latent of any x is (a, b), with error |f|."""

    latent_dim = 2

    def __init__(self):
        super().__init__()
        self.decoder = nn.Identity()

    def encode(self, x):
        return torch.stack([x[:, 0] + 5 * x[:, 2], x[:, 1]], 1)

    def decode(self, z):
        return torch.cat([z, torch.zeros_like(z[:, :1])], 1)


def test_invert_finds_the_least_squares_latent_and_never_makes_one_worse():
    aae = LinearAAE()
    g = torch.Generator().manual_seed(1)
    truth = torch.randn(6, 3, generator=g)
    x = aae.decode(truth).detach()
    start = truth + 0.5 * torch.randn(6, 3, generator=g)
    found = invert(aae, x, start, steps=1000, lr=0.02)
    torch.testing.assert_close(found, truth, atol=2e-3, rtol=0)
    assert torch.equal(invert(aae, x, truth, steps=20), truth)  # already optimal: kept
    assert all(p.requires_grad for p in aae.parameters())  # the decoder is left as it was


def test_data_bank_inverts_only_the_worst_reconstructed_latents():
    aae = TornAAE()
    x = torch.tensor([[float(i), -float(i), 0.0] for i in range(10)])
    x[[2, 5, 7], 2] = torch.tensor([0.1, 0.2, 0.3])  # three images the encoder misplaces
    encoded = aae.encode(x)
    plain = data_bank(aae, x)
    assert torch.equal(plain, encoded)
    bank = data_bank(aae, x, invert_above=0.5)  # the median error is 0: the three are above it
    others = torch.ones(10, dtype=torch.bool)
    others[[2, 5, 7]] = False
    assert torch.equal(bank[others], encoded[others])
    torch.testing.assert_close(bank[~others], x[~others, :2], atol=2e-3, rtol=0)
    errors = reconstruction_errors(aae, x, bank)
    torch.testing.assert_close(errors[~others], x[~others, 2], atol=2e-3, rtol=0)  # |f|: the best


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda a, x: data_bank(a, x, invert_above=1.0), r"invert_above must be a quantile in \[0"),
        (lambda a, x: invert(a, x, a.encode(x)[:3]), "images and z must pair up, got 4 and 3"),
        (lambda a, x: invert(a, x, a.encode(x), steps=0), "steps must be an int ≥ 1"),
    ],
)
def test_bad_options_name_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call(TornAAE(), torch.zeros(4, 3))
