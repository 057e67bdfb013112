"""The one conditional sampling API (DESIGN.md §6, issue 14): ``model.sample(n, condition, method)``
for the oracle, estimators and classifier guidance, and ``LatentDiffusion.sample(condition=...)``.

Known answer: three Gaussian classes in 2-D under a VP SDE. Sampled with the exact conditional
score by the probability-flow ODE (tolerance 1e-5; the VP prior at T = 1 is off by m(1) ≈ 0.007 of
the means), class k's samples are n = 1000 draws of N(μ_k, σ_k² I) up to solver error, so the
tolerances are four standard errors: σ_k / √n for a mean, σ_k² √(2/n) for a covariance entry
(measured over seeds 0–2: at most 0.029 and 0.026 against 0.063 and 0.045 for σ = 0.5). The
Euler–Maruyama row (300 steps) measured the same size of error (at most 0.033 and 0.013)."""

import math

import pytest
import torch

from latentnav.aae import AAE, AAEConfig
from latentnav.conditional import (
    CDE,
    CMDE,
    VSCMDE,
    CDiffE,
    ClassifierConfig,
    ClassifierGuidance,
    EstimatorModel,
    GaussianClasses,
    Measurement,
    NoisyClassifier,
    OracleClassifier,
    OracleModel,
    RandomMask,
    classifier_guided_score,
    one_hot,
)
from latentnav.diffusion import DiffusionConfig, LatentDiffusion
from latentnav.sampling import sample
from latentnav.score_net import ScoreNetConfig
from latentnav.sde import VPSDE

SDE_ = VPSDE()
MEANS = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]])
STDS = torch.tensor([0.4, 0.5, 0.3])
ORACLE = GaussianClasses(MEANS, STDS)
PRIOR = lambda z, t: ORACLE.score(SDE_, z, t)  # noqa: E731
N_PER_CLASS = 1000


def assert_classes(z, labels):
    """Per class: mean and covariance within four standard errors of N(μ_k, σ_k² I)."""
    for k in labels.unique().tolist():
        zk = z[labels == k]
        n, s = len(zk), float(STDS[k])
        assert torch.allclose(zk.mean(0), MEANS[k], atol=4 * s / math.sqrt(n)), (k, zk.mean(0))
        cov = torch.cov(zk.T)
        target = s**2 * torch.eye(2)
        assert torch.allclose(cov, target, atol=4 * s**2 * math.sqrt(2 / n)), (k, cov)


def gen(seed):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("seed", [0, 1])
def test_the_oracle_through_the_api_samples_each_requested_class(seed):
    labels = torch.arange(3).repeat_interleave(N_PER_CLASS)[torch.randperm(3000, generator=gen(9))]
    z = OracleModel(ORACLE, SDE_).sample(3000, labels, "ode", generator=gen(seed)).z
    assert_classes(z, labels)


def test_one_label_for_the_whole_batch():
    z = OracleModel(ORACLE, SDE_).sample(N_PER_CLASS, 2, "em", steps=300, generator=gen(0)).z
    assert_classes(z, torch.full((N_PER_CLASS,), 2))


def test_exact_classifier_guidance_through_the_api_samples_each_class():
    """s(z, t) + ∇ log p_t(k | z) with the exact posterior is the exact conditional score."""
    labels = torch.arange(3).repeat_interleave(N_PER_CLASS)
    model = ClassifierGuidance(PRIOR, OracleClassifier(ORACLE, SDE_), SDE_, scale=1.0)
    assert_classes(model.sample(3000, labels, "ode", generator=gen(0)).z, labels)


ESTIMATORS = {
    "cde": lambda k: CDE(SDE_, k),
    "cdiffe": lambda k: CDiffE(SDE_, k),
    "cmde": lambda k: CMDE(SDE_, k, sde_y=VPSDE(0.1, 1.0)),
    "vs-cmde": lambda k: VSCMDE(SDE_, k),
}


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_an_estimator_samples_through_the_shared_sampler_with_its_bound_score(name):
    """The API is exactly the estimator's score (y_t redrawn from the same generator) on the
    shared sampler head, and labels become the one-hot condition."""
    est = ESTIMATORS[name](3)
    torch.manual_seed(0)
    net = est.make_net(2, width=16, depth=1, embed_dim=8)
    model = EstimatorModel(est, net)
    assert model.latent_dim == 2
    got = model.sample(64, 1, "em", steps=10, generator=gen(4)).z
    g = gen(4)
    direct = sample(est.score(net, one_hot(torch.tensor([1]), 3), g), SDE_, (64, 2), "em",
                    steps=10, generator=g).z  # fmt: skip
    assert torch.equal(got, direct)
    labels = torch.arange(64) % 3
    by_labels = model.sample(64, labels, "em", steps=10, generator=gen(4)).z
    g = gen(4)
    direct = sample(est.score(net, one_hot(labels, 3), g), SDE_, (64, 2), "em", steps=10,
                    generator=g).z  # fmt: skip
    assert torch.equal(by_labels, direct)


def test_a_measurement_is_its_operators_condition_vector():
    op = RandomMask(keep=0.25, seed=0)
    x = torch.rand(8, 1, 4, 4, generator=gen(0))
    est = CDE(SDE_, 16)
    torch.manual_seed(0)
    model = EstimatorModel(est, est.make_net(2, width=16, depth=1, embed_dim=8))
    got = model.sample(8, Measurement(op(x), op), "em", steps=5, generator=gen(1)).z
    vector = model.sample(8, op.condition(x), "em", steps=5, generator=gen(1)).z
    assert torch.equal(got, vector)
    encoded = Measurement(op(x), op, encoder=lambda back: back.flatten(1))
    assert torch.equal(encoded.vector(), op.adjoint(op(x)).flatten(1))


@pytest.fixture(scope="module")
def diffusion():
    torch.manual_seed(1)
    net = ScoreNetConfig(latent_dim=2, width=16, blocks=1, embed_dim=8)
    return LatentDiffusion(DiffusionConfig(net=net)).eval()


@pytest.fixture(scope="module")
def classifier():
    torch.manual_seed(2)
    return NoisyClassifier(ClassifierConfig(2, 3, width=16, depth=1, embed_dim=8))


@pytest.mark.parametrize("sampler,kw", [("em", {"steps": 10}), ("pc", {"steps": 25}), ("ode", {})])
def test_without_a_condition_diffusion_sampling_is_bit_for_bit_unchanged(diffusion, sampler, kw):
    got = diffusion.sample(32, sampler, seed=3, **kw).z
    direct = sample(diffusion.score_fn(), diffusion.sde, (32, 2), sampler, generator=gen(3), **kw)
    assert torch.equal(got, direct.z)


def test_diffusion_delegates_a_condition_to_the_api(diffusion, classifier):
    got = diffusion.sample(32, "em", seed=5, steps=10, condition=2, guidance=classifier, scale=2.0)
    model = ClassifierGuidance(diffusion.score_fn(), classifier, diffusion.sde, scale=2.0)
    assert torch.equal(got.z, model.sample(32, 2, "em", steps=10, generator=gen(5)).z)
    guided = classifier_guided_score(diffusion.score_fn(), classifier, 2, 2.0)
    direct = sample(guided, diffusion.sde, (32, 2), "em", steps=10, generator=gen(5)).z
    assert torch.equal(got.z, direct)
    unguided = diffusion.sample(32, "em", seed=5, steps=10).z
    assert not torch.equal(got.z, unguided)
    est = CDE(SDE_, 3)
    torch.manual_seed(0)
    cde = EstimatorModel(est, est.make_net(2, width=16, depth=1, embed_dim=8))
    labels = torch.arange(32) % 3
    via = diffusion.sample(32, "em", seed=5, steps=10, condition=labels, conditional=cde).z
    assert torch.equal(via, cde.sample(32, labels, "em", steps=10, generator=gen(5)).z)


def test_sample_images_passes_the_condition(diffusion, classifier):
    torch.manual_seed(0)
    aae = AAE(AAEConfig(image_shape=(6,), latent_dim=2, hidden=(8,), disc_hidden=(8,))).eval()
    images = diffusion.sample_images(
        aae, 12, sampler="em", steps=5, seed=1, condition=0, guidance=classifier
    )
    z = diffusion.sample(12, "em", seed=1, steps=5, condition=0, guidance=classifier).z
    assert images.shape == (12, 6) and torch.equal(images, aae.decode(z))


BAD = [
    (3, ValueError, r"condition labels must lie in \[0, 3\)"),
    (torch.tensor([0, -1, 2, 1]), ValueError, r"condition labels must lie in \[0, 3\)"),
    (torch.tensor([0, 1, 2]), ValueError, r"labels of shape \(4,\) \(n = 4\), got shape \(3,\)"),
    (torch.zeros(4, 1, dtype=torch.long), ValueError, r"labels of shape \(4,\)"),
    (torch.tensor([0.0, 1.0, 2.0, 1.0]), TypeError, "condition labels must have an integer dtype"),
    (True, TypeError, "integer dtype, got bool"),
    ([0, 1, 2, 0], TypeError, "condition must be a class label"),
]


@pytest.mark.parametrize("bad", BAD, ids=[m for _, _, m in BAD])
@pytest.mark.parametrize("kind", ["oracle", "guidance"])
def test_bad_labels_name_the_argument(bad, kind):
    condition, error, message = bad
    model = OracleModel(ORACLE, SDE_)
    if kind == "guidance":
        model = ClassifierGuidance(PRIOR, OracleClassifier(ORACLE, SDE_), SDE_)
    with pytest.raises(error, match=message):
        model.sample(4, condition, "em", steps=2)


def test_bad_conditions_and_options_name_the_argument(diffusion, classifier):
    est = CDE(SDE_, 3)
    model = EstimatorModel(est, est.make_net(2, width=8, depth=1, embed_dim=8))
    with pytest.raises(ValueError, match=r"condition must have shape \(B, 3\), got shape \(4, 5\)"):
        model.sample(4, torch.zeros(4, 5), "em", steps=2)
    with pytest.raises(ValueError, match="condition must have batch size 4"):
        model.sample(4, torch.zeros(3, 3), "em", steps=2)
    with pytest.raises(ValueError, match=r"condition labels must lie in \[0, 3\)"):
        model.sample(4, 7, "em", steps=2)
    op, x = RandomMask(), torch.rand(4, 1, 4, 4)
    with pytest.raises(ValueError, match=r"shape \(B, 3\), got shape \(4, 16\)"):
        model.sample(4, Measurement(op(x), op), "em", steps=2)
    with pytest.raises(TypeError, match="got Measurement"):
        OracleModel(ORACLE, SDE_).sample(4, Measurement(op(x), op), "em", steps=2)
    with pytest.raises(ValueError, match="method must be one of"):
        model.sample(4, 0, "eulr")
    with pytest.raises(ValueError, match="n must be an int ≥ 1"):
        model.sample(0, 0)
    with pytest.raises(ValueError, match="condition is required"):
        model.sample(4, None)
    with pytest.raises(ValueError, match="guidance= and conditional= need condition="):
        diffusion.sample(4, "em", steps=2, guidance=classifier)
    with pytest.raises(ValueError, match="not both"):
        diffusion.sample(4, "em", steps=2, condition=0, guidance=classifier, y=torch.zeros(4))
    with pytest.raises(ValueError, match="exactly one of guidance="):
        diffusion.sample(4, "em", steps=2, condition=0)
    with pytest.raises(ValueError, match="exactly one of guidance="):
        diffusion.sample(4, "em", steps=2, condition=0, guidance=classifier, conditional=model)
    wide = NoisyClassifier(ClassifierConfig(3, 3, width=8, depth=1, embed_dim=8))
    with pytest.raises(ValueError, match="latent dim 3, the diffusion 2"):
        diffusion.sample(4, "em", steps=2, condition=0, guidance=wide)
    with pytest.raises(ValueError, match="scale must be ≥ 0"):
        ClassifierGuidance(PRIOR, classifier, SDE_, scale=-1.0)
    with pytest.raises(TypeError, match="operator must be an Operator"):
        Measurement(x, "mask")
