"""Class-conditional navigation ("class", DESIGN.md §3, §6; issue 14) on a 2-D Gaussian-class
oracle: a wide class 0 around the origin and a narrow class 1 at (0, 2). Between two class-0 points
left and right of the origin, SLERP's arc passes over class 1; the class path must stay in class 0
(≥ 95 % of its points, judged by the exact posterior p(k | z)), with the exact classifier and with
a briefly trained CE-only noisy classifier, with and without the label. With ν = 0 the energy is
the latent path energy alone, whose minimiser is the evenly spaced straight line (known answer).
"""

import pytest
import torch

from latentnav.conditional import (
    ClassifierConfig,
    GaussianClasses,
    NoisyClassifier,
    OracleClassifier,
    fit_classifier,
)
from latentnav.interpolation import interpolate
from latentnav.navigation import METHODS, make_method
from latentnav.navigation.conditional import (
    AtNoiseLevel,
    ClassLikelihood,
    ClassPath,
    LatentSmoothness,
)
from latentnav.navigation.energy import PathContext
from latentnav.sde import VPSDE

SDE_ = VPSDE()
ORACLE = GaussianClasses(torch.tensor([[0.0, 0.0], [0.0, 2.0]]), [1.2, 0.3], [0.8, 0.2])
Z_A = torch.tensor([[-2.2, 0.3], [-2.0, 0.8], [-1.5, 1.6]])
Z_B = torch.tensor([[2.2, 0.3], [1.9, 1.0], [1.5, 1.6]])
T = 16


def classes(z):
    """The exact posterior's argmax at every point: (B, n, 2) → (B, n)."""
    b, n, d = z.shape
    t = torch.full((b * n,), 1e-3)
    return ORACLE.posterior(SDE_, z.reshape(-1, d), t).argmax(1).view(b, n)


@pytest.fixture(scope="module")
def trained():
    z0, labels = ORACLE.sample(4000, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    clf = NoisyClassifier(ClassifierConfig(2, 2, width=32, depth=2, embed_dim=8))
    gen = torch.Generator().manual_seed(1)
    fit_classifier(clf, "ce", None, SDE_, z0, labels, steps=300, generator=gen)
    return clf


def test_the_setting_endpoints_in_class_zero_and_slerp_crossing_class_one():
    assert (classes(torch.stack([Z_A, Z_B], 1)) == 0).all()
    slerp = interpolate(Z_A, Z_B, T, "slerp")
    assert ((classes(slerp) == 0).float().mean(1) < 0.9).all()  # measured 0.82, 0.71, 0.59


@pytest.mark.parametrize("which", ["exact", "trained"])
@pytest.mark.parametrize("label", [0, None])
def test_the_class_path_stays_in_its_class(which, label, trained):
    clf = OracleClassifier(ORACLE, SDE_) if which == "exact" else trained
    method = make_method("class", None, classifier=clf, t=1e-2, label=label, steps=T,
                         iterations=200)  # fmt: skip
    path = method.path(Z_A, Z_B)
    assert torch.equal(path.z[:, 0], Z_A) and torch.equal(path.z[:, -1], Z_B)
    assert ((classes(path.z) == 0).float().mean(1) >= 0.95).all()
    assert path.records["in_class"].float().mean() >= 0.95  # its own classifier agrees
    slerp = interpolate(Z_A, Z_B, T, "slerp")
    slerp_log_p = method.term.log_p(slerp)[0]
    assert (path.records["log_p"][:, 1:-1].sum(1) > slerp_log_p[:, 1:-1].sum(1)).all()
    assert (path.records["energy"] < method.energy(PathContext(slerp, None))).all()


def test_without_the_class_term_the_path_is_the_straight_line():
    clf = OracleClassifier(ORACLE, SDE_)
    method = ClassPath(None, clf, label=0, weight=0.0, t=1e-2, steps=T, iterations=600,
                       lr=0.05, lr_decay=0.01, tol=1e-9)  # fmt: skip
    path = method.path(Z_A, Z_B)
    torch.testing.assert_close(path.z, interpolate(Z_A, Z_B, T, "lerp"), atol=0.02, rtol=0)


def test_terms_have_their_closed_forms():
    z = interpolate(Z_A, Z_B, 4, "lerp")
    context = PathContext(z, None)
    step2 = ((Z_B - Z_A) / 4).square().sum(1)
    torch.testing.assert_close(LatentSmoothness()(context), 4 * 4 * step2)
    clf = OracleClassifier(ORACLE, SDE_)
    reader = AtNoiseLevel(clf, 1e-2)
    term = ClassLikelihood(reader, 2.0, label=1)
    t = torch.full((3 * 5,), 1e-2)
    log_post = ORACLE.posterior(SDE_, z.reshape(-1, 2), t).log()[:, 1].view(3, 5)
    torch.testing.assert_close(term(context), -2.0 * log_post[:, 1:-1].sum(1))
    # Without a label, identical endpoint classes make it the same term with y = 0.
    free, zero = ClassLikelihood(reader, 1.0), ClassLikelihood(reader, 1.0, label=0)
    torch.testing.assert_close(free(context), zero(context))


def test_registered_and_bad_options_are_clear():
    assert METHODS["class"] is ClassPath
    clf = OracleClassifier(ORACLE, SDE_)
    with pytest.raises(ValueError, match="needs a latent classifier: classifier="):
        make_method("class", None)
    with pytest.raises(ValueError, match="smoothness must be one of"):
        ClassPath(None, clf, t=1e-2, smoothness="geodesic")
    with pytest.raises(ValueError, match="needs the AAE's decoder"):
        ClassPath(None, clf, t=1e-2, smoothness="decoded")
    with pytest.raises(ValueError, match="t must be > 0"):
        ClassPath(None, clf, t=0.0)
    with pytest.raises(ValueError, match="label must be None or an int ≥ 0"):
        ClassPath(None, clf, t=1e-2, label=-1)
    with pytest.raises(ValueError, match=r"label must lie in \[0, 2\), got 5"):
        ClassPath(None, clf, t=1e-2, label=5, steps=4, iterations=1).path(Z_A, Z_B)
    noisy = NoisyClassifier(ClassifierConfig(2, 2, width=8, depth=1, embed_dim=8))
    with pytest.raises(ValueError, match="dtype"):
        ClassPath(None, noisy, t=1e-2, steps=4, iterations=1).path(Z_A.double(), Z_B.double())
