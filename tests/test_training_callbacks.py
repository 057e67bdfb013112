"""NonFiniteLoss names the step, phase and value of an injected NaN/inf (manual and automatic
optimisation) or skips exactly that optimiser step; GanBalance warns when D_z's accuracy is
pinned for `patience` epochs, and not otherwise."""

import math
import warnings

import lightning as L
import pytest
import torch

import latentnav.training.aae as training_aae
from latentnav.aae import AAEConfig
from latentnav.data import ImageDataModule
from latentnav.diffusion import LatentDiffusion
from latentnav.joint import default_diffusion_config
from latentnav.runs import build_aae
from latentnav.training import AAETraining, TrainConfig, fit_diffusion, make_trainer
from latentnav.training.callbacks import (
    GanBalance,
    GanImbalanceWarning,
    NonFiniteLoss,
    NonFiniteLossError,
)

BATCHES = 6  # 120 lines images, 12 held out for validation, batches of 18


def fit_aae(callback, epochs: int = 1) -> L.Trainer:
    dm = ImageDataModule.from_spec("lines:size=8,train=120,test=10", batch_size=18, seed=0)
    aae = build_aae(
        AAEConfig(image_shape=(1, 8, 8), latent_dim=2, hidden=(8,), disc_hidden=(8,)), 0
    )
    trainer = make_trainer(epochs, "cpu", None, False, callbacks=[callback])
    trainer.fit(AAETraining(aae, TrainConfig(epochs=epochs, batch_size=18)), datamodule=dm)
    return trainer


def poison(monkeypatch, module, name, at: int, value: float):
    """``module.name`` returns ``value`` (keeping the graph) on its ``at``-th training call."""
    original, calls = getattr(module, name), []

    def wrapped(*args, **kwargs):
        loss = original(*args, **kwargs)
        if torch.is_grad_enabled():  # training, not validation
            calls.append(None)
            if len(calls) == at + 1:
                return loss * 0 + value
        return loss

    monkeypatch.setattr(module, name, wrapped)


@pytest.mark.parametrize(
    "name,at,value,step,phase",
    [
        ("reconstruction_loss", 4, math.nan, 12, "recon"),  # batch 4: steps 12, 13, 14
        ("discriminator_loss", 2, math.inf, 7, "d_loss"),  # batch 2: d_loss is its step 6 + 1
    ],
)
def test_non_finite_loss_names_step_phase_and_value(monkeypatch, name, at, value, step, phase):
    poison(monkeypatch, training_aae, name, at, value)
    with pytest.raises(NonFiniteLossError) as info:
        fit_aae(NonFiniteLoss(every_n_steps=2))
    err = info.value
    assert (err.step, err.epoch, err.phase) == (step, 0, phase)
    assert str(err.value) == str(value) and f"global step {step}" in str(err)


def test_skip_drops_exactly_the_poisoned_optimiser_step(monkeypatch):
    poison(monkeypatch, training_aae, "reconstruction_loss", 4, math.nan)
    callback = NonFiniteLoss(skip=True)
    with pytest.warns(RuntimeWarning, match="global step 12 .*phase recon: nan"):
        trainer = fit_aae(callback, epochs=2)
    assert [(s, p) for s, p, _ in callback.skipped] == [(12, "recon")]
    steps = [{int(state["step"]) for state in opt.state.values()} for opt in trainer.optimizers[:3]]
    assert steps == [{2 * BATCHES - 1}, {2 * BATCHES}, {2 * BATCHES}]  # Adam counted one less
    assert all(torch.isfinite(p).all() for p in trainer.lightning_module.parameters())


def test_automatic_optimisation_phase_is_score(monkeypatch):
    config = default_diffusion_config(2, epochs=2, batch_size=16)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = LatentDiffusion(config)
    poison(monkeypatch, LatentDiffusion, "loss", 3, math.nan)
    z = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(NonFiniteLossError, match="global step 3 .*phase score: nan"):
        fit_diffusion(model, z, accelerator="cpu", progress=False, callbacks=[NonFiniteLoss()])


@pytest.mark.parametrize(
    "accuracies,warned_at",
    [
        ([0.5, 1.0, 0.99, 1.0], 3),  # pinned at 1 for three epochs
        ([1.0, 1.0, 0.0, 0.01, 0.0], 4),  # the side changed: a new streak
        ([1.0, 1.0, 0.5, 1.0, 1.0], None),
        ([0.97] * 6, None),  # outside the margin
    ],
)
def test_gan_balance_warns_once_per_pinned_streak(accuracies, warned_at):
    monitor = GanBalance(patience=3, margin=0.02)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for epoch, accuracy in enumerate(accuracies):
            monitor.observe(accuracy, epoch)
    caught = [w for w in caught if issubclass(w.category, GanImbalanceWarning)]
    if warned_at is None:
        assert caught == []
    else:
        assert len(caught) == 1 and f"up to epoch {warned_at}" in str(caught[0].message)


class PinnedD(L.LightningModule):
    """Logs D_z accuracies like AAETraining: 1 on prior samples, ``fake`` on encoded ones."""

    def __init__(self, fake: float):
        super().__init__()
        self.layer, self.fake = torch.nn.Linear(1, 1), fake

    def training_step(self, batch, batch_idx):
        self.log_dict(
            {"train/d_acc_real": 1.0, "train/d_acc_fake": self.fake}, on_step=False, on_epoch=True
        )
        return self.layer(batch[0]).square().mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


@pytest.mark.parametrize("fake,warns", [(1.0, True), (0.5, False)])
def test_gan_balance_reads_the_logged_epoch_accuracy(fake, warns):
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(8, 1)), 4)
    trainer = make_trainer(4, "cpu", None, False, callbacks=[GanBalance(patience=3)])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(PinnedD(fake), data)
    assert any(issubclass(w.category, GanImbalanceWarning) for w in caught) == warns
