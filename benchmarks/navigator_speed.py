"""Navigator speed (issue 4, item 3): pairs × steps per second, batched vs a per-pair Python loop.

Discriminator: d = 16, three 512-wide layers (random weights, fixed seed); the workload is the
stepwise navigator with the logit objective, normalised steps, ε = 0.1, η = 0.05, M = 5.

    python benchmarks/navigator_speed.py --device cpu --batches 1 64 4096 --steps 16 --threads 1
    python benchmarks/navigator_speed.py --device cuda --batches 1 64 4096 65536 --steps 64
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from common import base_parser, parse_args, write_json
from torch import nn

from latentnav.interpolation import slerp
from latentnav.navigator import Navigator, NavigatorConfig
from latentnav.networks import LatentDiscriminator
from latentnav.priors import StandardNormal


class Holder(nn.Module):
    def __init__(self, discriminator: nn.Module, dim: int):
        super().__init__()
        self.discriminator, self.prior, self.latent_dim = discriminator, StandardNormal(dim), dim


def per_pair_loop(disc: nn.Module, z_a: torch.Tensor, z_b: torch.Tensor, c: NavigatorConfig):
    """The same algorithm written one pair and one point at a time (the baseline)."""
    paths = []
    for a, b in zip(z_a, z_b, strict=True):
        z, path = a[None], [a[None]]
        for k in range(c.steps):
            if k == c.steps - 1:
                path.append(b[None])
                break
            z = slerp(z, b[None], 1.0 / (c.steps - k))
            scale = 1.0
            for _ in range(c.max_corrections):
                zr = z.detach().requires_grad_(True)
                logit = disc(zr)
                if abs(torch.sigmoid(logit).item() - 0.5) < c.eps:
                    break
                loss = logit.square().sum()
                (grad,) = torch.autograd.grad(loss, zr)
                candidate = z - c.eta * scale * grad / grad.norm().clamp_min(1e-12)
                with torch.no_grad():
                    if disc(candidate).square().item() < loss.item():
                        z = candidate
                    else:
                        scale *= 0.5
            path.append(z.detach())
        paths.append(torch.cat(path))
    return torch.stack(paths)


def rate(fn, pairs: int, steps: int, device: str, repeats: int = 1) -> float:
    fn()  # warm-up
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
    return pairs * steps * repeats / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    p = base_parser(__doc__, seed=None, data=False)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 64, 4096])
    p.add_argument("--steps", type=int, default=16)
    p.add_argument("--loop-pairs", type=int, default=64, help="pairs timed for the per-pair loop")
    args = parse_args(p, argv)
    if args.smoke:
        args.batches, args.steps, args.loop_pairs = [1, 8], 4, 4
    torch.manual_seed(0)
    dim = 16
    disc = LatentDiscriminator(dim, (512, 512, 512)).to(args.device).eval()
    for q in disc.parameters():
        q.requires_grad_(False)
    holder = Holder(disc, dim).to(args.device)
    g = torch.Generator(args.device).manual_seed(1)
    results = {}
    for skip in (True, False):
        config = NavigatorConfig(steps=args.steps, max_corrections=5, skip_accepted=skip)
        nav = Navigator(holder, config)
        for b in args.batches:
            z_a = torch.randn(b, dim, generator=g, device=args.device)
            z_b = torch.randn(b, dim, generator=g, device=args.device)
            r = rate(lambda n=nav, a=z_a, z=z_b: n.path(a, z), b, args.steps, args.device)
            results[f"batched, skip_accepted={skip}, B={b}"] = r
            print(f"batched skip_accepted={skip!s:5} B={b:6d}: {r:12.0f} pair-steps/s", flush=True)
    config = NavigatorConfig(steps=args.steps, max_corrections=5)
    n = args.loop_pairs
    z_a = torch.randn(n, dim, generator=g, device=args.device)
    z_b = torch.randn(n, dim, generator=g, device=args.device)
    loop = rate(lambda: per_pair_loop(disc, z_a, z_b, config), n, args.steps, args.device)
    results["per-pair loop"] = loop
    print(f"per-pair loop ({n} pairs): {loop:12.0f} pair-steps/s", flush=True)
    reference = Navigator(holder, config).path(z_a, z_b).z
    agree = torch.isclose(per_pair_loop(disc, z_a, z_b, config), reference, atol=1e-4).all(-1)
    print(f"per-pair loop and batched navigator agree on {agree.float().mean():.1%} of points")
    summary = {"device": args.device, "steps": args.steps, "rates": results}
    summary["loop_agreement"] = float(agree.float().mean())
    print(json.dumps(summary, indent=2))
    if args.out:
        write_json(Path(args.out) / "navigator_speed.json", summary)


if __name__ == "__main__":
    main()
