import pytest
import torch

from latentnav.checkpoint import CheckpointError, save_tensors
from latentnav.priors import GaussianMixture
from latentnav.ratio_fidelity import (
    MixtureLogRatio,
    diffused_mixture_log_prob,
    evaluate_time_discriminator,
    log_ratio_fidelity,
    mixture_pair,
)
from latentnav.sde import VPSDE
from latentnav.time_discriminator import (
    TIME_SAMPLERS,
    TimeDiscriminator,
    TimeDiscriminatorFitConfig,
    fit_time_discriminator,
)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _disc(d: int, seed: int = 0, **kw) -> TimeDiscriminator:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TimeDiscriminator(d, **kw)


# --- the model and its file -------------------------------------------------------------------


def test_forward_shapes_and_labels():
    disc = _disc(3, hidden=(16, 16), embed_dim=8, num_classes=4)
    z, t = torch.randn(5, 3), torch.rand(5)
    assert disc(z, t).shape == (5,)
    y = torch.tensor([0, 1, 2, 3, 0])
    assert not torch.allclose(disc(z, t, y), disc(z, t))  # the label enters the logit
    assert not torch.allclose(disc(z, t), disc(z, t.flip(0)))  # so does t
    with pytest.raises(ValueError, match="z must have shape"):
        disc(torch.randn(5, 2), t)
    with pytest.raises(ValueError, match="t must have shape"):
        disc(z, torch.rand(4))
    with pytest.raises(ValueError, match="no num_classes"):
        _disc(3, hidden=(8,))(z, t, y)


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"latent_dim": 0}, "latent_dim"),
        ({"hidden": ()}, "hidden"),
        ({"embed_dim": 7}, "embed_dim"),
    ],
)
def test_constructor_rejects_bad_arguments(kw, field):
    args = {"latent_dim": 2, **kw}
    with pytest.raises(ValueError, match=field):
        TimeDiscriminator(**args)


def test_save_load_roundtrip_and_mismatched_files(tmp_path):
    disc = _disc(2, hidden=(16, 8), embed_dim=8, num_classes=3)
    path = disc.save(tmp_path / "d.safetensors")
    loaded = TimeDiscriminator.load(path)
    z, t, y = torch.randn(6, 2), torch.rand(6), torch.tensor([0, 1, 2, 0, 1, 2])
    assert torch.equal(loaded(z, t, y), disc(z, t, y))
    assert loaded.config() == disc.config()
    save_tensors(tmp_path / "other.safetensors", {"w": torch.zeros(1)}, "latentnav.compass/1", {})
    with pytest.raises(CheckpointError, match="expected 'latentnav.time_discriminator/1'"):
        TimeDiscriminator.load(tmp_path / "other.safetensors")
    bad = {**disc.config(), "hidden": [16, 4]}
    save_tensors(
        tmp_path / "bad.safetensors", disc.state_dict(), "latentnav.time_discriminator/1", bad
    )
    with pytest.raises(CheckpointError, match="does not fit"):
        TimeDiscriminator.load(tmp_path / "bad.safetensors")
    save_tensors(
        tmp_path / "cfg.safetensors", {}, "latentnav.time_discriminator/1", {"latent_dim": -1}
    )
    with pytest.raises(CheckpointError, match="invalid TimeDiscriminator config"):
        TimeDiscriminator.load(tmp_path / "cfg.safetensors")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_steps", 0),
        ("batch_size", 1),
        ("lr", 0.0),
        ("eps", 0.0),
        ("holdout_fraction", 1.0),
        ("time_sampler", "log"),
        ("buckets", 0),
    ],
)
def test_fit_config_validation(field, value):
    with pytest.raises(ValueError, match=field):
        TimeDiscriminatorFitConfig(**{field: value})


# --- the closed form ---------------------------------------------------------------------------


def test_diffused_mixture_matches_the_mixture_with_diffused_parameters():
    """p_t = Σ w_k N(m μ_k, (m² σ_k² + s²) I): compare with GaussianMixture.log_prob at one t."""
    data, _ = mixture_pair(2)
    sde, t0 = VPSDE(), 0.3
    m, s = (float(c) for c in sde.marginal(torch.tensor([t0])))
    diffused = GaussianMixture(
        m * data.means, stds=(m**2 * 0.4**2 + s**2) ** 0.5, weights=data.weights
    )
    z = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
    got = diffused_mixture_log_prob(data, sde, z, torch.full((50,), t0))
    assert torch.allclose(got, diffused.log_prob(z), atol=1e-5)


def test_fidelity_of_the_truth_and_of_a_scaled_truth():
    """ℓ* itself: r = 1, zero gradient error; ½ℓ*: r = 1, relative gradient error exactly ½."""
    data, model = mixture_pair(2)
    sde = VPSDE()
    truth = MixtureLogRatio(data, model, sde)
    z0 = data.sample(300, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(1)
    exact = log_ratio_fidelity(truth, sde, truth, z0, 3, generator=g)
    half = log_ratio_fidelity(lambda z, t: 0.5 * truth(z, t), sde, truth, z0, 3, generator=g)
    for row in exact:
        assert row["pearson"] == pytest.approx(1.0, abs=1e-9)
        assert row["grad_rel_error"] == pytest.approx(0.0, abs=1e-9)
    for row in half:
        assert row["pearson"] == pytest.approx(1.0, abs=1e-9)
        assert row["grad_rel_error"] == pytest.approx(0.5, abs=1e-6)


def test_exact_ratio_is_calibrated_per_bucket():
    """D* = σ(ℓ*) is the Bayes posterior of "real", so its reliability bins sit on the diagonal
    (ECE ≈ 0 up to sampling noise, ~ 1/√(points per bin)) and its accuracy falls to ½ at large t."""
    data, model = mixture_pair(2)
    sde, g = VPSDE(), torch.Generator().manual_seed(0)
    truth = MixtureLogRatio(data, model, sde)
    real, fake = [], []
    for mixture, out in ((data, real), (model, fake)):
        z0 = mixture.sample(20_000, g)
        t = 1e-3 + (1 - 1e-3) * torch.rand(len(z0), generator=g)
        out.append(
            torch.cat([sde.perturb(z0, t, torch.randn(z0.shape, generator=g))[0], t[:, None]], 1)
        )
    edges = torch.linspace(1e-3, 1.0, 6, dtype=torch.float64)
    rows = evaluate_time_discriminator(truth, real[0], fake[0], edges, bins=10)
    for row in rows:
        assert row["ece"] < 0.03, row
    assert rows[0]["accuracy"] > 0.6 > rows[-1]["accuracy"]
    assert abs(rows[-1]["accuracy"] - 0.5) < 0.03


# --- training ----------------------------------------------------------------------------------


def test_fit_keeps_the_best_heldout_weights_not_the_last():
    """40 points, a wide net and a large learning rate overfit: held-out BCE turns up, and the
    returned module is the one of the best evaluation."""
    data, model = mixture_pair(2)
    g = torch.Generator().manual_seed(0)
    disc = _disc(2, hidden=(128, 128), embed_dim=16)
    config = TimeDiscriminatorFitConfig(
        max_steps=400, batch_size=64, lr=1e-2, lr_decay=False, eval_every=10, patience=1000
    )
    report = fit_time_discriminator(disc, VPSDE(), data.sample(40, g), model.sample(40, g), config)
    losses = report.history["heldout_loss"]
    assert report.best_step < report.history["step"][-1]
    assert losses[-1] > min(losses)  # it did overfit, so "last" ≠ "best"
    assert report.heldout_loss == pytest.approx(min(losses), rel=1e-6)
    assert report.best_step == report.history["step"][losses.index(min(losses))]


def _fit(d: int, steps: int, hidden: int):
    data, model = mixture_pair(d)
    sde, g = VPSDE(), torch.Generator().manual_seed(0)
    disc = _disc(d, hidden=(hidden, hidden), embed_dim=32)
    config = TimeDiscriminatorFitConfig(max_steps=steps, lr=2e-3, eval_every=100, patience=5)
    report = fit_time_discriminator(disc, sde, data.sample(8000, g), model.sample(8000, g), config)
    truth = MixtureLogRatio(data, model, sde)
    fidelity = log_ratio_fidelity(disc, sde, truth, data.sample(2000, g), 5, generator=g)
    return report, fidelity


@pytest.mark.parametrize("d", [2, 8])
def test_trained_discriminator_tracks_the_true_log_ratio(d):
    """Closed-form check (issue 11 §2) at test size: 1 000 Adam steps of a 64-wide net on 8 000
    points each (~3 s). Measured (seed 0): relative gradient error 0.51 / 0.29 / 0.24 (2-D) and
    0.49 / 0.55 / 0.45 (8-D) in the buckets t < 0.6, where ℓ* spreads ≥ 0.2 nats; r ≥ 0.93.
    Bounds: ℓ ≡ 0 has gradient error exactly 1 and ½ℓ* has 0.5 (test above), so < 0.75 says the
    net recovered most of ∇ℓ*, with ~0.2 margin over the measured figures. For t > 0.6 both
    marginals are ≈ N(0, I) and ℓ* spreads < 0.1 nats, too little to learn from 8 000 points: there
    the net must only not invent structure (centred logit error < 0.1 nats; measured ≤ 0.044). The
    issue's 0.1 target needs more data: benchmarks/time_discriminator_fidelity.py (200 000 points,
    8 000 steps of 2 048) measured 0.15 / 0.10 / 0.10 (2-D) and 0.13 / 0.24 / 0.17 (8-D)."""
    report, fidelity = _fit(d, 1000, 64)
    for row in fidelity:
        if row["t_high"] <= 0.61:
            assert row["truth_std"] > 0.2, row  # the buckets where ℓ* is not negligible
            assert row["pearson"] > 0.85, row
            assert row["grad_rel_error"] < 0.75, row
            assert row["grad_cosine"] > 0.75, row
        else:
            assert row["logit_rmse"] < 0.1, row
    buckets = report.buckets
    assert [b["t_low"] for b in buckets] == pytest.approx(torch.linspace(1e-3, 1, 6)[:-1].tolist())
    assert buckets[0]["accuracy"] > 0.6 and abs(buckets[-1]["accuracy"] - 0.5) < 0.05
    for b in buckets:
        assert b["ece"] < 0.05, b  # calibrated per bucket (measured ≤ 0.026)
        assert b["n_real"] > 0 and b["n_fake"] > 0
    assert report.heldout_loss < 0.69 and report.heldout_accuracy > 0.55


def test_labels_reach_a_class_conditional_discriminator():
    """Real: class 0 at (−1, 0), class 1 at (+1, 0); fake: the classes swapped. The marginals are
    the same (an unconditional D stays at ½), so only through y can D tell them apart: near the data
    the Bayes accuracy is Φ(1/0.3) ≈ 1."""
    g = torch.Generator().manual_seed(0)
    n = 2000
    y_real = torch.randint(2, (n,), generator=g)
    y_fake = torch.randint(2, (n,), generator=g)
    centre = torch.tensor([[-1.0, 0.0], [1.0, 0.0]])
    real = centre[y_real] + 0.3 * torch.randn(n, 2, generator=g)
    fake = centre[1 - y_fake] + 0.3 * torch.randn(n, 2, generator=g)
    disc = _disc(2, hidden=(32, 32), embed_dim=16, num_classes=2)
    config = TimeDiscriminatorFitConfig(max_steps=300, batch_size=256, lr=3e-3, eval_every=50)
    report = fit_time_discriminator(disc, VPSDE(), real, fake, config, real_y=y_real, fake_y=y_fake)
    assert report.buckets[0]["accuracy"] > 0.9
    blind = _disc(2, hidden=(32, 32), embed_dim=16)
    report = fit_time_discriminator(blind, VPSDE(), real, fake, config)
    assert report.buckets[0]["accuracy"] < 0.6
    with pytest.raises(ValueError, match="labels"):
        fit_time_discriminator(disc, VPSDE(), real, fake, config, real_y=y_real)
    with pytest.raises(ValueError, match="labels of real_z0"):
        fit_time_discriminator(
            disc, VPSDE(), real, fake, config, real_y=y_real.float(), fake_y=y_fake
        )


def test_near_data_time_sampler_and_progress_bar(capsys):
    u = torch.rand(100_000, generator=torch.Generator().manual_seed(0))
    t = TIME_SAMPLERS["near_data"](u)
    assert 0 <= t.min() and t.max() <= 1
    assert t.mean() == pytest.approx(1 / 3, abs=0.01)  # E[u²] = ⅓: more draws near the data
    data, model = mixture_pair(2)
    g = torch.Generator().manual_seed(0)
    config = TimeDiscriminatorFitConfig(
        max_steps=20, batch_size=32, eval_every=10, time_sampler="near_data", progress=True
    )
    report = fit_time_discriminator(
        _disc(2, hidden=(8,)), VPSDE(), data.sample(50, g), model.sample(50, g), config,
        val_real=data.sample(30, g), val_fake=model.sample(30, g),
    )  # fmt: skip
    assert report.history["step"] == [10, 20]
    assert "time discriminator" in capsys.readouterr().err
