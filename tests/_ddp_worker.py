"""Worker of tests/test_ddp.py: a tiny AAE and latent diffusion model trained jointly
(:class:`JointTraining`: the AAE's three phases and the score step) on fixed images, with
``make_trainer(devices=W, strategy="ddp")`` on CPU processes (gloo). Every rank writes its weights
to ``OUT/rank{r}.safetensors``.

``python tests/_ddp_worker.py OUT --devices 2``: Lightning's "ddp" strategy re-runs this command
for the other ranks. The test imports :func:`build`, :func:`images` and :func:`global_order`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import lightning as L
import torch
from torch.utils.data import DataLoader, DistributedSampler, TensorDataset

from latentnav.aae import AAEConfig
from latentnav.checkpoint import save_tensors
from latentnav.diffusion import DiffusionConfig, LatentDiffusion
from latentnav.runs import build_aae
from latentnav.score_net import ScoreNetConfig
from latentnav.training import JointTraining, TrainConfig, make_trainer

N_IMAGES, LOCAL_BATCH, EPOCHS = 64, 8, 2  # 2 processes: global batch 16, 4 steps per epoch
FORMAT = "latentnav.test-ddp/1"


def images() -> tuple[torch.Tensor, torch.Tensor]:
    """``(N, 1, 8, 8)`` images in [0, 1] and ``(N,)`` labels from a fixed seed."""
    g = torch.Generator().manual_seed(0)
    return torch.rand(N_IMAGES, 1, 8, 8, generator=g), torch.randint(0, 3, (N_IMAGES,), generator=g)


def build(seed: int = 1) -> JointTraining:
    """The module with initial weights from ``seed`` only (global RNG state left alone)."""
    aae = build_aae(
        AAEConfig(image_shape=(1, 8, 8), latent_dim=2, hidden=(32,), disc_hidden=(16,)), seed
    )
    net = ScoreNetConfig(latent_dim=2, width=32, blocks=1, embed_dim=16)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 7)
        diffusion = LatentDiffusion(DiffusionConfig(net=net, grad_clip=1.0))
    return JointTraining(aae, diffusion, TrainConfig(epochs=EPOCHS, batch_size=LOCAL_BATCH))


def global_order(world_size: int, local_batch: int = LOCAL_BATCH) -> torch.Tensor:
    """Image order of one process whose step k sees rank 0's k-th batch, then rank 1's, …: the
    unshuffled ``DistributedSampler`` gives rank r the images r, r + W, r + 2W, …"""
    block = torch.arange(world_size * local_batch).view(local_batch, world_size).T.reshape(-1)
    steps = torch.arange(0, N_IMAGES, world_size * local_batch)
    return (steps[:, None] + block[None, :]).reshape(-1)


class Unshuffled(L.LightningDataModule):
    """:func:`images` split by an unshuffled ``DistributedSampler`` (Lightning's own one would
    shuffle the training set), built once the process group is up."""

    def train_dataloader(self) -> DataLoader:
        dataset = TensorDataset(*images())
        sampler = DistributedSampler(dataset, shuffle=False)
        return DataLoader(dataset, batch_size=LOCAL_BATCH, sampler=sampler)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path)
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--max-steps", type=int, default=-1)
    args = parser.parse_args(argv)
    module = build()
    trainer = make_trainer(
        EPOCHS, "cpu", None, False, args.devices, strategy="ddp", max_steps=args.max_steps
    )
    trainer.fit(module, datamodule=Unshuffled())
    state = {k: v for k, v in module.state_dict().items()}
    save_tensors(args.out / f"rank{trainer.global_rank}.safetensors", state, FORMAT, {})


if __name__ == "__main__":
    main(sys.argv[1:])
