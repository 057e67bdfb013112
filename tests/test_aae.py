"""AAE: shapes, regions, a short training run, checkpoints (fresh process), bad inputs."""

import subprocess
import sys

import pytest
import torch

from latentnav.aae import AAE, AAEConfig, Region
from latentnav.checkpoint import CheckpointError
from latentnav.data import ImageDataModule, load_embedded_mnist
from latentnav.runs import build_aae, evaluate_aae
from latentnav.training import TrainConfig, fit_aae, reconstruction_loss

SMALL = dict(hidden=(64,), disc_hidden=(32, 32), channels=(8, 16, 16))


@pytest.mark.parametrize(
    "family,shape",
    [("mlp", (1, 28, 28)), ("conv", (1, 28, 28)), ("conv", (3, 32, 32)), ("mlp", (5,))],
)
def test_shapes_and_dtypes(family, shape):
    if family == "conv" and len(shape) != 3:
        pytest.skip("conv needs images")
    aae = build_aae(AAEConfig(image_shape=shape, latent_dim=3, family=family, **SMALL), seed=0)
    x = torch.rand(4, *shape)
    z = aae.encode(x)
    assert z.shape == (4, 3) and z.dtype == torch.float32
    x_hat = aae.decode(z)
    assert x_hat.shape == x.shape and 0 <= x_hat.min() and x_hat.max() <= 1
    d, logit = aae.discriminate(z), aae.log_ratio(z)
    assert d.shape == logit.shape == (4,)
    torch.testing.assert_close(d, torch.sigmoid(logit))
    assert aae.region(z).dtype == torch.int64
    assert aae.prior.sample(5).shape == (5, 3)


def test_region_thresholds():
    aae = build_aae(AAEConfig(image_shape=(4,), latent_dim=1, region_band=(0.2, 0.8), **SMALL), 0)

    class Identity(torch.nn.Module):
        def forward(self, z):
            return z[:, 0]

    aae.discriminator = Identity()  # logit = z, so D = σ(z)
    z = torch.tensor([[-3.0], [0.0], [3.0], [1.0]])  # D ≈ 0.05, 0.5, 0.95, 0.73
    expected = [Region.OUTLIER, Region.EQUILIBRIUM, Region.HOLE, Region.EQUILIBRIUM]
    assert aae.region(z).tolist() == [int(r) for r in expected]


def test_same_seed_same_weights():
    a = build_aae(AAEConfig(**SMALL), seed=3)
    b = build_aae(AAEConfig(**SMALL), seed=3)
    c = build_aae(AAEConfig(**SMALL), seed=4)
    x = torch.rand(2, 1, 28, 28)
    torch.testing.assert_close(a.encode(x), b.encode(x))
    assert not torch.allclose(a.encode(x), c.encode(x))


def test_short_training_lowers_reconstruction_loss(tmp_path):
    data = load_embedded_mnist("train").subset(slice(0, 600))
    dm = ImageDataModule(data, batch_size=50, seed=0)
    dm.setup()
    aae = build_aae(AAEConfig(latent_dim=4, hidden=(128,), disc_hidden=(32, 32)), seed=0)
    x = dm.val_data.images
    with torch.no_grad():
        before = float(reconstruction_loss(aae.reconstruct(x), x, "bce"))
    metrics = fit_aae(aae, dm, TrainConfig(epochs=3, seed=0), "cpu", str(tmp_path), progress=False)
    with torch.no_grad():
        after = float(reconstruction_loss(aae.reconstruct(x), x, "bce"))
    assert after < 0.8 * before, (before, after)
    assert {"val/recon", "val/d_acc", "val/mmd2"} <= set(metrics)
    assert (tmp_path / "metrics.csv").is_file()
    report = evaluate_aae(aae, dm.test_data)
    assert 0 <= report["d_acc"] <= 1 and report["recon_bce_per_image"] > 0


def test_checkpoint_round_trip_in_fresh_process(tmp_path):
    config = AAEConfig(
        latent_dim=2, prior={"name": "mixture", "k": 10}, disc_spectral_norm=True, **SMALL
    )
    aae = build_aae(config, seed=1).eval()
    path = aae.save(tmp_path / "aae.safetensors")
    x = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    torch.save(x, tmp_path / "x.pt")
    with torch.no_grad():
        expected = torch.cat(
            [
                aae.reconstruct(x).flatten(1),
                aae.log_ratio(aae.encode(x))[:, None],
                aae.prior.log_prob(aae.encode(x))[:, None],
            ],
            1,
        )
    code = (
        "import sys, torch; from latentnav.aae import AAE\n"
        f"m = AAE.load({str(path)!r}); x = torch.load({str(tmp_path / 'x.pt')!r})\n"
        "with torch.no_grad():\n"
        "    out = torch.cat([m.reconstruct(x).flatten(1), m.log_ratio(m.encode(x))[:, None],"
        " m.prior.log_prob(m.encode(x))[:, None]], 1)\n"
        f"torch.save(out, {str(tmp_path / 'out.pt')!r})\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    torch.testing.assert_close(torch.load(tmp_path / "out.pt"), expected)
    assert not list(tmp_path.glob("*.tmp"))


def test_checkpoint_errors(tmp_path):
    aae = build_aae(AAEConfig(**SMALL), seed=0)
    path = aae.save(tmp_path / "a.safetensors")
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        AAE.load(tmp_path / "missing.safetensors")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(CheckpointError, match="corrupt.safetensors"):
        AAE.load(corrupt)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError):
        AAE.load(garbage)
    # Same format, weights of another architecture: the error names the mismatching keys.
    other = build_aae(AAEConfig(**{**SMALL, "hidden": (32,)}), seed=0)
    from latentnav.checkpoint import load_into

    tensors = other.state_dict()
    with pytest.raises(CheckpointError, match="shape mismatch"):
        load_into(aae, tensors, path)
    from latentnav.checkpoint import save_tensors

    save_tensors(tmp_path / "kind.safetensors", {"w": torch.zeros(1)}, "other/1", {})
    with pytest.raises(CheckpointError, match="expected 'latentnav.aae/1'"):
        AAE.load(tmp_path / "kind.safetensors")


def test_bad_inputs_name_the_problem():
    aae = build_aae(AAEConfig(latent_dim=4, **SMALL), seed=0)
    with pytest.raises(ValueError, match="latent dim d=4"):
        aae.decode(torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"shape \(B, 1, 28, 28\)"):
        aae.encode(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match="non-finite"):
        aae.log_ratio(torch.tensor([[float("nan"), 0, 0, 0]]))
    with pytest.raises(ValueError, match="empty batch"):
        aae.encode(torch.zeros(0, 1, 28, 28))
    with pytest.raises(TypeError, match="floating"):
        aae.encode(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match="latent_dim"):
        AAEConfig(latent_dim=0)
    with pytest.raises(ValueError, match="region_band"):
        AAEConfig(region_band=(0.6, 0.9))
    with pytest.raises(ValueError, match="divisible by 4"):
        AAE(AAEConfig(image_shape=(1, 30, 30), family="conv", **SMALL))


def test_a_stored_compass_comes_back_and_serves_the_default_navigator(tmp_path):
    from latentnav.navigation import Navigator
    from latentnav.networks import LatentDiscriminator

    torch.manual_seed(0)
    aae = AAE(AAEConfig(image_shape=(1, 8, 8), latent_dim=2, hidden=(16,), disc_hidden=(8,)))
    aae.compass = LatentDiscriminator(2, (8, 8))
    aae.save(tmp_path / "a.safetensors")
    again = AAE.load(tmp_path / "a.safetensors")
    for a, b in zip(aae.compass.state_dict().values(), again.compass.state_dict().values(),
                    strict=True):  # fmt: skip
        assert torch.equal(a, b)
    assert again.compass.hidden == (8, 8)
    z = torch.randn(3, 2, generator=torch.Generator().manual_seed(1))
    path = Navigator(again, steps=4, iterations=2).path(z, -z)  # no compass argument needed
    assert (
        path.method == "capped"
        and path.config["base"]["name"] == "optimizer"
        and path.z.shape == (3, 5, 2)
    )
    del aae.compass
    aae.save(tmp_path / "b.safetensors")
    assert getattr(AAE.load(tmp_path / "b.safetensors"), "compass", None) is None
