"""Regularisation learning rates of the AAE on the embedded MNIST subset (d = 8, 512-wide MLPs).

python benchmarks/aae_lr_sweep.py LR_RECONSTRUCTION LR_DISCRIMINATOR LR_GENERATOR EPOCHS
python benchmarks/aae_lr_sweep.py 1e-3 5e-4 5e-4 8
"""

import json
import sys
import time

import torch

from latentnav.aae import AAEConfig
from latentnav.data import ImageDataModule
from latentnav.runs import build_aae, evaluate_aae
from latentnav.training import TrainConfig, fit_aae

if __name__ == "__main__":
    torch.set_num_threads(1)
    lr_r, lr_d, lr_g = map(float, sys.argv[1:4])
    epochs = int(sys.argv[4])
    dm = ImageDataModule.from_spec("mnist-embedded", batch_size=100, seed=0)
    dm.setup()
    aae = build_aae(AAEConfig(latent_dim=8, hidden=(512, 512), disc_hidden=(256, 256)), 0)
    start = time.perf_counter()
    train = TrainConfig(
        epochs=epochs,
        lr_reconstruction=lr_r,
        lr_discriminator=lr_d,
        lr_generator=lr_g,
        # As measured for RESULTS.md §2, before the cosine decay and R1 penalty became defaults.
        lr_schedule="constant",
        gradient_penalty=0.0,
    )
    fit_aae(aae, dm, train, "cpu", None, progress=False)
    report = evaluate_aae(aae, dm.test_data)
    print(
        json.dumps(
            {
                "lr": sys.argv[1:4],
                "epochs": epochs,
                "seconds": round(time.perf_counter() - start),
                **{k: round(v, 3) for k, v in report.items()},
            }
        )
    )
