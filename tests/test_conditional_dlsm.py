"""DLSM (DESIGN.md §6, seed 003): the kernel score's sign and scale by finite differences, the
guided score of an exact classifier is the exact conditional score, DLSM' is minimised by the exact
likelihood score, and a test-sized DLSM classifier guides closer to the exact conditional score
than a CE-only one (with the exact unconditional score as the frozen prior)."""

import math

import pytest
import torch
from torch import nn

from latentnav.conditional import (
    ClassifierConfig,
    GaussianClasses,
    NoisyClassifier,
    classifier_guided_score,
    dlsm_loss,
    fit_classifier,
    kernel_score,
    score_error_by_time,
)
from latentnav.sde import VESDE, VPSDE

SDE_ = VPSDE()
ORACLE = GaussianClasses(torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]]), [0.4, 0.5, 0.3])
PRIOR = lambda z, t: ORACLE.score(SDE_, z, t)  # noqa: E731
MID = slice(2, 6)  # t = 0.2 … 0.7, where conditional and unconditional scores differ
TIMES = torch.tensor([0.02, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9])


class ExactClassifier(nn.Module):
    """Logits log w_k + log p_t(z | k) of the oracle, tempered by ``temperature``."""

    def __init__(self, temperature: float = 1.0):
        super().__init__()
        self.config = ClassifierConfig(2, 3)
        self.temperature = temperature

    def forward(self, z, t):
        return self.temperature * ORACLE._log_joint(SDE_, z, t)[0]


@pytest.mark.parametrize("sde", [VPSDE(), VESDE(0.01, 10.0)], ids=["vp", "ve"])
def test_kernel_score_matches_finite_differences_of_the_log_kernel(sde):
    g = torch.Generator().manual_seed(0)
    z0 = torch.randn(16, 2, generator=g, dtype=torch.float64)
    t = torch.rand(16, generator=g, dtype=torch.float64) * 0.8 + 0.1
    z_t, _ = sde.perturb(z0, t, torch.randn(16, 2, generator=g, dtype=torch.float64))
    m, s = sde.marginal(t)

    def log_kernel(x):  # log N(x; m z0, s² I)
        sq = (x - m[:, None] * z0).square().sum(1)
        return -0.5 * sq / s**2 - 2 * torch.log(s) - math.log(2 * math.pi)

    h = 1e-5
    fd = torch.stack(
        [(log_kernel(z_t + h * e) - log_kernel(z_t - h * e)) / (2 * h) for e in torch.eye(2)], 1
    )
    assert torch.allclose(kernel_score(sde, z_t, z0, t), fd, rtol=1e-6, atol=1e-6)
    # It points from z̃ back towards the kernel's centre m z0.
    assert ((kernel_score(sde, z_t, z0, t) * (m[:, None] * z0 - z_t)).sum(1) > 0).all()


def test_exact_classifier_guides_to_the_exact_conditional_score_under_no_grad():
    g = torch.Generator().manual_seed(1)
    z, t = 2 * torch.randn(64, 2, generator=g), torch.rand(64, generator=g) * 0.9 + 0.05
    for k in range(3):
        with torch.no_grad():
            guided = classifier_guided_score(PRIOR, ExactClassifier(), k)(z, t)
        exact = ORACLE.conditional_score(SDE_, z, t, k)
        assert torch.allclose(guided, exact, atol=1e-4)
    labels = torch.tensor([0, 1, 2]).repeat_interleave(22)[:64]
    guided = classifier_guided_score(PRIOR, ExactClassifier(), labels)(z, t)
    assert torch.allclose(guided, ORACLE.conditional_score(SDE_, z, t, labels), atol=1e-4)


def test_dlsm_objective_is_minimised_by_the_exact_likelihood_score():
    z0, labels = ORACLE.sample(20000, torch.Generator().manual_seed(2))

    def value(temperature):
        gen = torch.Generator().manual_seed(3)
        return dlsm_loss(
            ExactClassifier(temperature), PRIOR, SDE_, z0, labels, generator=gen, lam=0
        )

    exact = value(1.0).item()
    assert exact < value(0.5).item() and exact < value(2.0).item()


@pytest.fixture(scope="module")
def guided_errors():
    z0, labels = ORACLE.sample(4000, torch.Generator().manual_seed(0))
    errors = {}
    for loss in ("ce", "dlsm"):
        torch.manual_seed(1)
        clf = NoisyClassifier(ClassifierConfig(2, 3, width=64))
        gen = torch.Generator().manual_seed(1)
        fit_classifier(clf, loss, PRIOR, SDE_, z0, labels, steps=600, lr=3e-3, generator=gen)
        for scale in (1.0, 2.0):
            per_class = []
            for k in range(3):
                zk, _ = ORACLE.sample(
                    1000, torch.Generator().manual_seed(10 + k), torch.full((1000,), k)
                )
                per_class.append(
                    score_error_by_time(
                        classifier_guided_score(PRIOR, clf, k, scale),
                        lambda z, t, k=k: ORACLE.conditional_score(SDE_, z, t, k),
                        SDE_,
                        zk,
                        TIMES,
                        torch.Generator().manual_seed(3),
                    )
                )
            errors[loss, scale] = torch.stack(per_class).mean(0)
    return errors


def test_dlsm_guidance_beats_ce_only_and_scaling(guided_errors):
    """Measured (seeds 0–2, 600 steps): mean s²-scaled error over t ∈ [0.02, 0.9] DLSM ≈ 0.003,
    CE-only ≈ 0.006, CE-only with α = 2 ≈ 0.2; the unconditional score ≈ 0.19."""
    dlsm, ce, scaling = (
        guided_errors[k][MID].mean() for k in [("dlsm", 1.0), ("ce", 1.0), ("ce", 2.0)]
    )
    assert dlsm < ce < scaling
    assert ce < 0.1 * scaling  # α = 1 is the Bayes weight; α = 2 over-sharpens the posterior


def test_bad_input():
    clf = NoisyClassifier(ClassifierConfig(2, 3))
    z0 = torch.zeros(4, 2)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        dlsm_loss(clf, PRIOR, SDE_, z0, torch.tensor([0, 1, 2, 3]))
    with pytest.raises(ValueError, match="labels must have batch size 4"):
        dlsm_loss(clf, PRIOR, SDE_, z0, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"y labels must lie in \[0, 3\)"):
        classifier_guided_score(PRIOR, clf, 5)
    with pytest.raises(ValueError, match="scale must be ≥ 0"):
        classifier_guided_score(PRIOR, clf, 1, scale=-1.0)
    guided = classifier_guided_score(PRIOR, clf, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="y must have batch size 4"):
        guided(z0, torch.ones(4))
    with pytest.raises(ValueError, match="num_classes must be an int ≥ 2"):
        ClassifierConfig(2, 1)
    with pytest.raises(ValueError, match="loss must be one of"):
        fit_classifier(clf, "hinge", PRIOR, SDE_, z0, torch.zeros(4).long())
