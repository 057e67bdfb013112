"""Training pieces with known answers: losses, R1 penalty, the learning-rate schedule."""

import lightning as L
import pytest
import torch

from latentnav.aae import AAEConfig
from latentnav.data import ImageDataModule, load_embedded_mnist
from latentnav.runs import build_aae
from latentnav.training import (
    AAETraining,
    TrainConfig,
    discriminator_loss,
    r1_penalty,
    reconstruction_loss,
)


def test_r1_penalty_of_a_linear_logit_is_half_squared_slope():
    a = torch.tensor([3.0, -4.0])
    z = torch.randn(64, 2, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    logit = z @ a + 1.0
    torch.testing.assert_close(r1_penalty(logit, z), torch.tensor(12.5))


def test_discriminator_loss_at_chance_is_two_log_two():
    zeros = torch.zeros(10)
    torch.testing.assert_close(discriminator_loss(zeros, zeros), torch.tensor(2 * 0.6931472))


def test_reconstruction_loss_kinds():
    x = torch.full((2, 1, 2, 2), 0.5)
    x_hat = torch.full((2, 1, 2, 2), 0.25)
    torch.testing.assert_close(reconstruction_loss(x_hat, x, "mse"), torch.tensor(4 * 0.0625))
    assert reconstruction_loss(x, x, "bce") < reconstruction_loss(x_hat, x, "bce")
    with pytest.raises(ValueError, match="reconstruction"):
        reconstruction_loss(x_hat, x, "l1")


@pytest.mark.parametrize("schedule,expected", [("cosine", 0.05), ("constant", 1.0)])
def test_learning_rate_schedule(schedule, expected):
    data = load_embedded_mnist().subset(slice(0, 100))
    dm = ImageDataModule(data, batch_size=50, seed=0)
    aae = build_aae(AAEConfig(latent_dim=2, hidden=(16,), disc_hidden=(8,)), 0)
    config = TrainConfig(epochs=3, lr_schedule=schedule, gradient_penalty=1.0)
    module = AAETraining(aae, config)
    trainer = L.Trainer(
        max_epochs=3,
        logger=False,
        enable_progress_bar=False,
        enable_checkpointing=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=dm)
    rates = [opt.param_groups[0]["lr"] for opt in module.optimizers()]
    initial = [config.lr_reconstruction, config.lr_discriminator, config.lr_generator]
    torch.testing.assert_close(torch.tensor(rates), expected * torch.tensor(initial))
