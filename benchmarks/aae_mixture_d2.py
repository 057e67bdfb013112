"""d = 2 AAE with the 10-component circle-mixture prior on the embedded MNIST subset: the effect of
the discriminator's R1 gradient penalty on prior matching.

    python benchmarks/aae_mixture_d2.py GRADIENT_PENALTY EPOCHS OUT_DIR
"""

import json
import sys
import time
from pathlib import Path

import torch

from latentnav.aae import AAEConfig
from latentnav.data import ImageDataModule
from latentnav.runs import aae_figures, build_aae, evaluate_aae
from latentnav.training import TrainConfig, fit_aae

if __name__ == "__main__":
    torch.set_num_threads(1)
    penalty, epochs, out = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    dm = ImageDataModule.from_spec("mnist-embedded", batch_size=100, seed=0)
    dm.setup()
    config = AAEConfig(
        latent_dim=2, hidden=(512, 512), disc_hidden=(256, 256), prior={"name": "mixture", "k": 10}
    )
    aae = build_aae(config, 0)
    start = time.perf_counter()
    fit_aae(aae, dm, TrainConfig(epochs=epochs, gradient_penalty=penalty), "cpu", None, False)
    report = evaluate_aae(aae, dm.test_data)
    aae_figures(aae, dm.test_data, Path(out))
    print(
        json.dumps(
            {
                "gradient_penalty": penalty,
                "epochs": epochs,
                "seconds": round(time.perf_counter() - start),
                **{k: round(v, 3) for k, v in report.items()},
            }
        )
    )
