"""The stepwise navigator (DESIGN.md §3) on compasses with known answers."""

import pytest
import torch
from torch import nn

from latentnav.interpolation import interpolate
from latentnav.navigation import DensityCompass, DiscriminatorCompass, LatentPath, make_method
from latentnav.navigation.stepwise import Stepwise, StepwiseConfig
from latentnav.priors import StandardNormal


class Compass(nn.Module):
    """logit = fn(z), with one dummy parameter so that device/dtype checks have something to see."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, z):
        return self.fn(z) + 0 * self.weight


class FakeAAE(nn.Module):
    def __init__(self, compass, dim=4):
        super().__init__()
        self.discriminator = compass
        self.prior = StandardNormal(dim)
        self.latent_dim = dim
        self.decoder = nn.Linear(dim, 3)


def nav(aae, compass=None, **fields):
    """The stepwise method on ``aae``; ``compass`` a compass object (default: D_z, logit)."""
    return Stepwise(aae, compass, StepwiseConfig(**fields))


def shell(z):  # ℓ = ‖z‖² − 4: D = 0.5 on the sphere of radius 2, a hole inside, outliers outside.
    return z.square().sum(-1) - 4.0


def pairs(n=16, dim=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = torch.nn.functional.normalize(torch.randn(n, dim, generator=g), dim=-1) * 2
    return a, -a + 0.3 * torch.randn(n, dim, generator=g)


@pytest.mark.parametrize("proposal", ["slerp", "lerp"])
def test_constant_half_reproduces_the_proposal_path(proposal):
    aae = FakeAAE(Compass(lambda z: torch.zeros_like(z[:, 0])))
    a, b = pairs()
    path = nav(aae, steps=12, proposal=proposal).path(a, b)
    baseline = make_method("stepwise", aae, steps=12, proposal=proposal, max_corrections=0)
    assert torch.equal(path.z, baseline.path(a, b).z)  # the baseline, bit for bit
    torch.testing.assert_close(path.z, interpolate(a, b, 12, proposal), atol=1e-4, rtol=1e-4)
    assert path.corrections.sum() == 0 and path.accepted.all()


@pytest.mark.parametrize("objective", ["prob", "logit"])
@pytest.mark.parametrize("control", ["plain", "normalized", "clipped"])
def test_each_correction_lowers_the_objective(objective, control):
    aae = FakeAAE(Compass(shell))
    method = nav(
        aae, DiscriminatorCompass(aae.discriminator, objective), step_control=control, eta=0.3
    )
    z = 0.3 * torch.randn(32, 4, generator=torch.Generator().manual_seed(1))
    loss, logit, grad = method._evaluate(z)
    scale, active = torch.ones(32), torch.ones(32, dtype=torch.bool)
    first = loss.clone()
    for _ in range(15):
        z, new_loss, logit, grad, scale = method._correct(z, loss, logit, grad, scale, active, None)
        assert (new_loss <= loss).all()
        loss = new_loss
    assert (loss < first).float().mean() > 0.9


def test_navigated_points_reach_the_band_and_endpoints_are_exact():
    a, b = pairs()
    path = nav(FakeAAE(Compass(shell)), steps=16, proposal="lerp").path(a, b)
    torch.testing.assert_close(path.z[:, 0], a, rtol=0, atol=0)
    torch.testing.assert_close(path.z[:, -1], b, rtol=0, atol=0)
    straight = interpolate(a, b, 16, "lerp")
    assert (shell(straight[:, 1:-1].flatten(0, 1)).abs() > 1).float().mean() > 0.5
    assert path.accepted[:, 1:-1].float().mean() > 0.95
    assert path.corrections.sum() > 0


@pytest.mark.parametrize("skip", [True, False])
def test_accepted_pairs_are_untouched(skip):
    # ℓ = 5·z₀: pairs whose path keeps z₀ = 0 are always in the band and must stay on SLERP.
    aae = FakeAAE(Compass(lambda z: 5 * z[:, 0]))
    a, b = pairs(8)
    a[:4, 0], b[:4, 0] = 0.0, 0.0
    path = nav(aae, steps=10, skip_accepted=skip).path(a, b)
    baseline = nav(aae, steps=10, max_corrections=0).path(a, b)
    assert torch.equal(path.z[:4], baseline.z[:4])
    assert path.corrections[:4].sum() == 0 and path.corrections[4:].sum() > 0


def test_masked_and_compacted_loops_agree():
    a, b = pairs(24)
    config = dict(steps=10, proposal="lerp")
    masked = nav(FakeAAE(Compass(shell)), skip_accepted=False, **config)
    compact = nav(FakeAAE(Compass(shell)), skip_accepted=True, **config)
    pm, pc = masked.path(a, b), compact.path(a, b)
    torch.testing.assert_close(pm.z, pc.z, atol=1e-5, rtol=1e-5)
    assert torch.equal(pm.corrections, pc.corrections)


def test_batch_matches_single_calls():
    a, b = pairs(12)
    method = nav(FakeAAE(Compass(shell)), steps=8, proposal="lerp")
    batch = method.path(a, b)
    singles = LatentPath.cat([method.path(a[i], b[i]) for i in range(12)])
    close = torch.isclose(batch.z, singles.z, atol=1e-4, rtol=1e-4).all(-1).all(-1)
    assert close.float().mean() >= 11 / 12  # band-edge rounding may flip one accept decision


def test_no_non_finite_output_even_for_huge_steps():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 64), nn.ReLU(), nn.Linear(64, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(20)
    compass = Compass(lambda z: net(z).squeeze(-1))
    a, b = pairs()
    for eta in (1.0, 10.0):
        for control in ("plain", "normalized", "clipped"):
            cfg = dict(steps=8, eta=eta, step_control=control, max_corrections=10)
            path = nav(FakeAAE(compass), **cfg).path(a, b)
            assert torch.isfinite(path.z).all() and torch.isfinite(path.d_score).all()
    assert all(p.grad is None and p.requires_grad for p in net.parameters())


def test_unreachable_band_flags_pairs_without_dropping_them():
    aae = FakeAAE(Compass(lambda z: torch.full_like(z[:, 0], 5.0)))
    a, b = pairs(5)
    path = nav(aae, steps=6, max_corrections=3).path(a, b)
    assert path.batch_size == 5 and path.flagged.all()
    assert (path.corrections[:, 1:-1] == 3).all()


def test_out_of_band_endpoints_alone_do_not_flag_a_pair():
    # ℓ = 5·z₀: endpoints with z₀ = ±1 are out of the band, the z₀ = 0 plane is inside it.
    aae = FakeAAE(Compass(lambda z: 5 * z[:, 0]))
    a, b = torch.zeros(3, 4), torch.zeros(3, 4)
    a[:, 0], b[:, 0], a[:, 1], b[:, 1] = 1.0, -1.0, 1.0, 1.0
    path = nav(aae, steps=8, proposal="lerp").path(a, b)
    assert not path.accepted[:, 0].any() and not path.accepted[:, -1].any()
    assert not path.flagged.any()


def test_langevin_noise_is_deterministic_for_a_seed():
    a, b = pairs()
    aae = FakeAAE(Compass(shell))
    density = DensityCompass(aae.discriminator, aae.prior)
    make = lambda seed: nav(aae, density, steps=6, langevin_noise=0.5, seed=seed).path(a, b)  # noqa: E731
    assert torch.equal(make(1).z, make(1).z)
    assert not torch.equal(make(1).z, make(2).z)


def test_save_and_load_round_trip(tmp_path):
    a, b = pairs(3)
    path = nav(FakeAAE(Compass(shell)), steps=5).path(a, b)
    loaded = LatentPath.load(path.save(tmp_path / "p.safetensors"))
    for key in ("z", "d_score", "corrections", "accepted"):
        assert torch.equal(getattr(loaded, key), getattr(path, key))
    assert loaded.config == path.config and loaded.method == "stepwise"
    assert loaded.config["compass"] == {"name": "discriminator", "objective": "logit"}
    assert path.decode(FakeAAE(Compass(shell))).shape == (3, 6, 3)


def test_bad_inputs_are_rejected_before_any_work():
    method = nav(FakeAAE(Compass(shell)))
    a, b = pairs(2)
    with pytest.raises(ValueError, match="same shape"):
        method.path(a, b[:1])
    with pytest.raises(ValueError, match="latent dim d=4"):
        method.path(a[:, :3], b[:, :3])
    with pytest.raises(ValueError, match="non-finite"):
        method.path(a.clone().fill_(float("nan")), b)
    with pytest.raises(ValueError, match="dtype"):
        method.path(a.double(), b.double())
    with pytest.raises(ValueError, match="steps"):
        StepwiseConfig(steps=0)
    with pytest.raises(ValueError, match="eps"):
        StepwiseConfig(eps=0.0)
    with pytest.raises(ValueError, match="objective"):
        DiscriminatorCompass(Compass(shell), objective="kl")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cpu_and_cuda_agree():
    a, b = pairs(64)
    cpu = nav(FakeAAE(Compass(shell)), steps=8, proposal="lerp").path(a, b)
    aae = FakeAAE(Compass(shell)).cuda()
    gpu = nav(aae, steps=8, proposal="lerp").path(a.cuda(), b.cuda()).to("cpu")
    close = torch.isclose(cpu.z, gpu.z, atol=1e-3, rtol=1e-3).all(-1).all(-1)
    assert close.float().mean() > 0.95


def test_report_aggregates_the_decoded_path():
    aae = FakeAAE(Compass(lambda z: torch.zeros_like(z[:, 0])))
    aae.decoder = nn.Sequential(nn.Linear(4, 4), nn.Sigmoid(), nn.Unflatten(1, (1, 2, 2)))
    a, b = pairs(6)
    report = nav(aae, steps=5).path(a, b).report(aae)
    assert report.n_paths == 6 and report.n_points == 6
    assert report.band_fraction == 1.0 and report.endpoint_error == 0.0
    assert report.step_mean > 0
