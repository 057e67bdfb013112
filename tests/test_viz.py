"""latentnav.viz: every figure builds, saves as PNG and SVG atomically, and rejects bad shapes."""

from __future__ import annotations

import pytest
import torch
from matplotlib.figure import Figure

from latentnav import viz


class _Gaussian2d:
    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return -0.5 * z.square().sum(-1) - torch.log(torch.tensor(2 * torch.pi))


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _figures() -> dict[str, Figure]:
    g = _gen()
    images = torch.rand(10, 1, 8, 8, generator=g)
    z2, z5 = torch.randn(60, 2, generator=g), torch.randn(60, 5, generator=g)
    labels = torch.randint(0, 4, (60,), generator=g)
    paths = torch.randn(3, 6, 2, generator=g)
    return {
        "grid": viz.image_grid(images, nrow=4, title="grid"),
        "grid_rgb": viz.image_grid(torch.rand(5, 3, 8, 8, generator=g)),
        "scatter2": viz.latent_scatter(z2, labels, prior=_Gaussian2d()),
        "scatter5": viz.latent_scatter(z5, labels),
        "scatter_many": viz.latent_scatter(z2, torch.arange(60)),
        "dmap": viz.discriminator_map(
            lambda z: torch.sigmoid(z[:, 0]), (-3, 3, -3, 3), 40, points=z2, paths=paths
        ),
        "logit_map": viz.discriminator_map(lambda z: z[:, 0] * 3, (-3, 3, -2, 2), 30, levels=[0]),
        "profile": viz.path_profile(torch.rand(7, 11, generator=g), band=(0.45, 0.55)),
        "curves": viz.metric_curves(
            [0.1, 1, 10], {"a": [1, 2, 3], "b": [3, 2, 1]}, "γ", "FID", logx=True
        ),
        "strip": viz.image_strip(
            torch.rand(4, 9, 1, 8, 8, generator=g),
            max_rows=3,
            max_frames=5,
            row_labels=["a", "b", "c", "d"],
        ),
    }


def test_every_function_returns_a_figure_and_saves(tmp_path):
    for name, fig in _figures().items():
        assert isinstance(fig, Figure), name
        for suffix in (".png", ".svg"):
            out = viz.save_figure(fig, tmp_path / "sub" / f"{name}{suffix}")
            assert out.exists() and out.stat().st_size > 0
    png = (tmp_path / "sub" / "grid.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert b"<svg" in (tmp_path / "sub" / "grid.svg").read_bytes()[:2000]
    names = sorted(p.name for p in (tmp_path / "sub").iterdir())
    assert len(names) == 20 and not [n for n in names if n.startswith(".")]


def test_save_figure_rejects_unknown_suffix_and_leaves_nothing(tmp_path):
    fig = viz.metric_curves([1, 2], {"a": [1, 2]}, "x", "y")
    with pytest.raises(ValueError, match="path"):
        viz.save_figure(fig, tmp_path / "f.jpg")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("call", "argument"),
    [
        (lambda: viz.image_grid(torch.rand(4, 8, 8)), "images"),
        (lambda: viz.image_grid(torch.rand(4, 2, 8, 8)), "images"),
        (lambda: viz.image_grid(torch.rand(4, 1, 8, 8) * 3), "images"),
        (lambda: viz.image_grid(torch.rand(4, 1, 8, 8), nrow=0), "nrow"),
        (lambda: viz.latent_scatter(torch.randn(10)), "z"),
        (lambda: viz.latent_scatter(torch.randn(10, 2), torch.zeros(9)), "labels"),
        (lambda: viz.discriminator_map(lambda z: z[:, 0], (1, 0, 0, 1)), "extent"),
        (lambda: viz.discriminator_map(lambda z: z, (0, 1, 0, 1), 10), "fn"),
        (
            lambda: viz.discriminator_map(
                lambda z: z[:, 0], (0, 1, 0, 1), 10, points=torch.rand(5, 3)
            ),
            "points",
        ),
        (
            lambda: viz.discriminator_map(
                lambda z: z[:, 0], (0, 1, 0, 1), 10, paths=torch.rand(5, 2)
            ),
            "paths",
        ),
        (lambda: viz.path_profile(torch.rand(5)), "values"),
        (lambda: viz.path_profile(torch.rand(5, 3), band=(0.6, 0.4)), "band"),
        (lambda: viz.metric_curves([1, 2], {"a": [1, 2, 3]}, "x", "y"), "curves"),
        (lambda: viz.metric_curves([0, 2], {"a": [1, 2]}, "x", "y", logx=True), "x"),
        (lambda: viz.image_strip(torch.rand(4, 1, 8, 8)), "paths"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(call, argument):
    with pytest.raises(ValueError, match=argument):
        call()
