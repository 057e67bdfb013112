"""Continue fine-tuning a bundle's score model on its frozen encoder (issue 5, §7.2 of RESULTS):
the held-out score loss was still falling after `latentnav train`'s fine-tune stage.

    python benchmarks/finetune_more.py --bundle benchmarks/out/joint_d8/bundle.safetensors \
        --epochs 100 --lr 3e-4 --out benchmarks/out/joint_d8_ft2 --threads 1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch
from evaluation_baselines import MNIST

from latentnav.data import ImageDataModule
from latentnav.joint import encode_dataset, load_bundle, save_bundle
from latentnav.training import fit_diffusion


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--bundle", required=True)
    p.add_argument("--mnist", default=str(MNIST))
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--seed", type=int, default=0, help="the training run's seed (same splits)")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    aae, diffusion = load_bundle(args.bundle)
    data = ImageDataModule.from_spec(f"mnist:{args.mnist}", batch_size=100, seed=args.seed)
    data.setup()
    z = encode_dataset(aae, data.train_data.images)
    z_val = encode_dataset(aae, data.val_data.images)
    diffusion.config = dataclasses.replace(diffusion.config, lr=args.lr, epochs=args.epochs)
    diffusion.train()
    start = time.perf_counter()
    metrics = fit_diffusion(diffusion, z, z_val, "cpu", log_dir=args.out, progress=False)
    metrics["seconds"] = time.perf_counter() - start
    save_bundle(Path(args.out) / "bundle.safetensors", aae, diffusion)
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
