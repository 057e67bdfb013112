"""EMA of weights in the conditional fitting loops (``latentnav.conditional.fit``): the average
follows LatentDiffusion's warm-up formula, β = 0 leaves training bit for bit as without it, and
β > 0 ends training on the averaged weights."""

import pytest
import torch
from torch import nn

from latentnav.conditional import CDE, fit_classifier, fit_estimator, one_hot
from latentnav.conditional.dlsm import ClassifierConfig, NoisyClassifier
from latentnav.conditional.fit import _EMA
from latentnav.sde import VPSDE

SDE_ = VPSDE()


def test_ema_follows_the_warm_up_formula():
    net = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(0.0)
    ema = _EMA(net, 0.9)
    expected = 0.0
    for k, value in enumerate([1.0, 2.0, 3.0, 4.0, 5.0]):
        with torch.no_grad():
            net.weight.fill_(value)
        ema.update()
        decay = min(0.9, (1 + k) / (10 + k))
        expected = decay * expected + (1 - decay) * value
    ema.copy_to()
    assert net.weight.item() == pytest.approx(expected, rel=1e-6)
    assert net.weight.item() < 5.0  # the average lags the last weights


def _fit(ema):
    gen = torch.Generator().manual_seed(0)
    z0 = torch.randn(64, 2, generator=gen)
    labels = torch.randint(3, (64,), generator=gen)
    est = CDE(SDE_, 3)
    torch.manual_seed(0)
    net = est.make_net(2, width=16)
    losses = fit_estimator(est, net, z0, one_hot(labels, 3), steps=20, batch=16, ema=ema,
                           generator=torch.Generator().manual_seed(1))  # fmt: skip
    return losses, [p.detach().clone() for p in net.parameters()]


def test_ema_zero_is_plain_training_and_positive_ends_on_the_average():
    losses0, params0 = _fit(0.0)
    losses_ema, params_ema = _fit(0.99)
    assert losses0 == losses_ema  # the average never feeds back into training
    assert any(not torch.equal(a, b) for a, b in zip(params0, params_ema, strict=True))


def test_classifier_ema_and_bad_decay():
    gen = torch.Generator().manual_seed(0)
    z0, labels = torch.randn(64, 2, generator=gen), torch.randint(3, (64,), generator=gen)
    clf = NoisyClassifier(ClassifierConfig(2, 3, width=16))
    fit_classifier(clf, "ce", None, SDE_, z0, labels, steps=5, batch=16, ema=0.5, generator=gen)
    with pytest.raises(ValueError, match="ema must be in"):
        fit_classifier(clf, "ce", None, SDE_, z0, labels, steps=5, ema=1.0)
    with pytest.raises(ValueError, match="ema must be in"):
        fit_estimator(CDE(SDE_, 3), CDE(SDE_, 3).make_net(2), z0, one_hot(labels, 3), ema=-0.1)
