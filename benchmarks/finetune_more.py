"""Continue fine-tuning a bundle's score model on its frozen encoder (issue 5, §7.2 of RESULTS):
the held-out score loss was still falling after `latentnav train`'s fine-tune stage.

    python benchmarks/finetune_more.py --bundle benchmarks/out/joint_d8/bundle.safetensors \
        --epochs 100 --lr 3e-4 --out benchmarks/out/joint_d8_ft2 --threads 1
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from common import base_parser, data_path, parse_args, smoke_mnist, tiny_aae, tiny_diffusion

from latentnav.data import ImageDataModule
from latentnav.joint import encode_dataset, load_bundle, save_bundle
from latentnav.training import fit_diffusion


def main(argv: list[str] | None = None) -> None:
    p = base_parser(__doc__, out_required=True)
    p.add_argument("--bundle", help="trained bundle (unless --smoke: an untrained tiny one)")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--lr", type=float, default=3e-4)
    args = parse_args(p, argv)
    if args.smoke:
        aae = tiny_aae(seed=args.seed)
        diffusion, args.epochs = tiny_diffusion(aae.latent_dim, args.seed), 1
    elif args.bundle:
        aae, diffusion = load_bundle(args.bundle)
    else:
        p.error("--bundle is required (unless --smoke)")
    source = smoke_mnist(args.out) if args.smoke else data_path(args.data)
    # --seed: the training run's seed, so the same train/validation split
    data = ImageDataModule.from_spec(f"mnist:{source}", seed=args.seed)
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
