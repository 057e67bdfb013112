"""Measurement operators: the adjoint identity ⟨A x, y⟩ = ⟨x, Aᵀ y⟩, known outputs, bad input."""

import pytest
import torch

from latentnav.conditional import Downsample, RandomMask, SquareHole, make_operator

OPERATORS = [RandomMask(0.25, seed=3), SquareHole(4), Downsample(2), Downsample(4)]


@pytest.mark.parametrize("op", OPERATORS, ids=lambda op: f"{op.name}")
def test_adjoint_identity(op):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 2, 16, 12, generator=g, dtype=torch.float64)
    y = torch.randn(op(x).shape, generator=g, dtype=torch.float64)
    lhs = (op(x) * y).sum()
    rhs = (x * op.adjoint(y)).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-10), (lhs, rhs)
    assert op.adjoint(y).shape == x.shape


def test_random_mask_keeps_a_fixed_fraction_from_its_seed():
    x = torch.ones(2, 3, 16, 16)
    a, b, c = RandomMask(0.25, seed=1), RandomMask(0.25, seed=1), RandomMask(0.25, seed=2)
    ya = a(x)
    assert ya.sum().item() == 2 * 3 * 64  # a quarter of 256 pixels, every channel and image
    assert torch.equal(ya[0], ya[1]) and torch.equal(ya[0, 0], ya[0, 2])
    assert torch.equal(ya, b(x))
    assert not torch.equal(ya, c(x))


def test_square_hole_zeroes_a_centred_square():
    y = SquareHole(4)(torch.ones(1, 1, 8, 8))
    assert y.sum().item() == 64 - 16
    assert y[0, 0, 2:6, 2:6].abs().sum().item() == 0
    assert y[0, 0, :2].min().item() == 1


def test_downsample_averages_blocks():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    y = Downsample(2)(x)
    assert y.shape == (1, 1, 2, 2)
    assert torch.allclose(y[0, 0], torch.tensor([[2.5, 4.5], [10.5, 12.5]]))
    assert Downsample(4)(x).item() == pytest.approx(7.5)


def test_condition_vectors():
    x = torch.rand(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    op = Downsample(4)
    assert torch.equal(op.condition(x), op(x).flatten(1))
    assert op.condition(x).shape == (5, 4)
    encoded = op.condition(x, encoder=lambda img: img.mean((1, 2, 3))[:, None])
    assert torch.allclose(encoded[:, 0], x.mean((1, 2, 3)) / 16, atol=1e-6)  # Aᵀ carries 1/f²


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match=r"x must have shape \(B, C, H, W\)"):
        RandomMask()(torch.ones(4, 16))
    with pytest.raises(ValueError, match="divisible by factor=4"):
        Downsample(4)(torch.ones(1, 1, 6, 8))
    with pytest.raises(TypeError, match="floating"):
        SquareHole(2)(torch.ones(1, 1, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="size=9 is larger"):
        SquareHole(9)(torch.ones(1, 1, 8, 8))
    with pytest.raises(ValueError, match="keep must be in"):
        RandomMask(keep=1.5)
    with pytest.raises(ValueError, match="factor must be an int ≥ 2"):
        Downsample(1)
    with pytest.raises(ValueError, match="operator must be one of"):
        make_operator("blur")
    assert isinstance(make_operator("downsample", factor=4), Downsample)
