"""Sampler speed (issue 5): samples per second at batch 10 000 for each sampler, latentnav's loops
against a plain per-step reference loop written the way score_sde's samplers are (``vec_t`` rebuilt
each step, global RNG, batch-mean norms; the ODE through scipy's solve_ivp with a NumPy round trip
per evaluation, as score_sde's ``get_ode_sampler``). Same seed → same samples is checked too.

    python benchmarks/diffusion_speed.py --bundle benchmarks/out/joint_d16/bundle.safetensors \
        --batch 10000 --steps 20 --threads 2
    python benchmarks/diffusion_speed.py --width 512 --blocks 4 --latent-dim 16 --device cuda

Without ``--bundle`` a freshly initialised score network of the given size is timed (its ODE NFE
then says nothing about a trained model's). SDE samplers are timed over ``--steps`` steps; the cost
of a 1000-step run is that per-step time × 1000 (every step costs the same).
"""

from __future__ import annotations

import json
import time

import numpy as np
import torch
from common import base_parser, json_path, parse_args, write_json
from scipy import integrate

from latentnav.diffusion import DiffusionConfig, LatentDiffusion
from latentnav.joint import load_bundle
from latentnav.score_net import ScoreNetConfig


def plain_pc(model, shape, steps, snr, eps, device, corrector=True):
    """Reverse-diffusion predictor (+ Langevin corrector), score_sde style."""
    sde, score_fn = model.sde, model.ema
    with torch.no_grad():
        x = torch.randn(*shape, device=device) * sde.prior_std()
        dt = (sde.T - eps) / steps
        timesteps = torch.linspace(sde.T, eps + dt, steps, device=device)
        for i in range(steps):
            vec_t = torch.ones(shape[0], device=device) * timesteps[i]
            if corrector:
                grad = score_fn(x, vec_t)
                noise = torch.randn_like(x)
                grad_norm = torch.norm(grad.reshape(grad.shape[0], -1), dim=-1).mean()
                noise_norm = torch.norm(noise.reshape(noise.shape[0], -1), dim=-1).mean()
                alpha = 1 - sde.beta(vec_t) * dt
                step_size = (snr * noise_norm / grad_norm) ** 2 * 2 * alpha
                step_size = torch.minimum(step_size, sde.marginal(vec_t)[1] ** 2)
                x_mean = x + step_size[:, None] * grad
                x = x_mean + torch.sqrt(step_size * 2)[:, None] * noise
            beta = sde.beta(vec_t) * dt
            f = (torch.sqrt(1 - beta) - 1)[:, None] * x
            G = torch.sqrt(beta)
            rev_f = f - G[:, None] ** 2 * score_fn(x, vec_t)
            x_mean = x - rev_f
            x = x_mean + G[:, None] * torch.randn_like(x)
    return x_mean


def plain_em(model, shape, steps, eps, device):
    sde, score_fn = model.sde, model.ema
    with torch.no_grad():
        x = torch.randn(*shape, device=device) * sde.prior_std()
        dt = (sde.T - eps) / steps
        timesteps = torch.linspace(sde.T, eps + dt, steps, device=device)
        for i in range(steps):
            vec_t = torch.ones(shape[0], device=device) * timesteps[i]
            drift, diffusion = sde.sde(x, vec_t)
            drift = drift - diffusion[:, None] ** 2 * score_fn(x, vec_t)
            x_mean = x - drift * dt
            x = x_mean + diffusion[:, None] * np.sqrt(dt) * torch.randn_like(x)
    return x_mean


def plain_ode(model, shape, eps, device, rtol, atol):
    """score_sde's ode_sampler: scipy RK45, tensors ↔ NumPy on every evaluation."""
    sde, score_fn = model.sde, model.ema
    nfe = 0
    with torch.no_grad():
        x = torch.randn(*shape, device=device) * sde.prior_std()

        def ode_func(t, x):
            nonlocal nfe
            nfe += 1
            x = torch.from_numpy(x.reshape(shape)).to(device).type(torch.float32)
            vec_t = torch.ones(shape[0], device=x.device) * t
            drift, diffusion = sde.sde(x, vec_t)
            drift = drift - 0.5 * diffusion[:, None] ** 2 * score_fn(x, vec_t)
            return drift.detach().cpu().numpy().reshape((-1,)).astype(np.float64)

        solution = integrate.solve_ivp(
            ode_func,
            (sde.T, eps),
            x.detach().cpu().numpy().reshape((-1,)),
            rtol=rtol,
            atol=atol,
            method="RK45",
        )
        return torch.tensor(solution.y[:, -1]).reshape(shape).to(device).float(), nfe


def timed(fn, device):
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    p = base_parser(__doc__, seed=None, data=False)
    p.add_argument("--bundle")
    p.add_argument("--latent-dim", type=int, default=16)
    p.add_argument("--width", type=int, default=512)
    p.add_argument("--blocks", type=int, default=4)
    p.add_argument("--batch", type=int, default=10_000)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--device", default="cpu")
    p.add_argument("--tf32", action="store_true")
    args = parse_args(p, argv)  # --out: a .json file, or a folder for diffusion_speed.json
    if args.smoke:  # a tiny untrained network, no bundle
        args.bundle, args.latent_dim, args.width, args.blocks = None, 4, 32, 1
        args.batch, args.steps = 64, 20
    if args.tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
    device = torch.device(args.device)
    if args.bundle:
        _, model = load_bundle(args.bundle, device)
    else:
        torch.manual_seed(0)
        net = ScoreNetConfig(latent_dim=args.latent_dim, width=args.width, blocks=args.blocks)
        model = LatentDiffusion(DiffusionConfig(net=net)).to(device).eval()
    shape = (args.batch, model.latent_dim)
    eps, snr, n = 1e-3, 0.16, args.steps
    # Warm-up (allocator, kernels).
    model.sample(min(args.batch, 256), "em", steps=2)
    rows = {}
    cases = {
        "EM": (
            lambda: model.sample(args.batch, "em", steps=n, seed=0).z,
            lambda: plain_em(model, shape, n, eps, device),
            n,
        ),
        "reverse diffusion": (
            lambda: model.sample(args.batch, "reverse_diffusion", steps=n, seed=0).z,
            lambda: plain_pc(model, shape, n, snr, eps, device, corrector=False),
            n,
        ),
        "PC": (
            lambda: model.sample(args.batch, "pc", steps=n, seed=0).z,
            lambda: plain_pc(model, shape, n, snr, eps, device),
            2 * n,
        ),
    }
    for name, (ours, plain, nfe) in cases.items():
        z_ours, t_ours = timed(ours, device)
        torch.manual_seed(0)
        z_plain, t_plain = timed(plain, device)
        rows[name] = {
            "steps": n,
            "nfe": nfe,
            "ours_s": t_ours,
            "plain_s": t_plain,
            "ratio": t_plain / t_ours,
            "ours_samples_per_s_1000_steps": args.batch / (t_ours * 1000 / n),
            "max_abs_diff_same_seed": float((z_ours - z_plain).abs().max()),
        }
        print(name, json.dumps(rows[name]), flush=True)
    result, t_ours = timed(
        lambda: model.sample(args.batch, "ode", rtol=1e-3, atol=1e-3, seed=0), device
    )
    torch.manual_seed(0)
    (z_plain, nfe_plain), t_plain = timed(
        lambda: plain_ode(model, shape, eps, device, 1e-3, 1e-3), device
    )
    rows["ODE (rtol = atol = 1e-3)"] = {
        "nfe": result.nfe,
        "nfe_plain": nfe_plain,
        "ours_s": t_ours,
        "plain_s": t_plain,
        "ratio": t_plain / t_ours,
        "ours_samples_per_s": args.batch / t_ours,
        "max_abs_diff_same_seed": float((result.z - z_plain).abs().max()),
    }
    print("ODE", json.dumps(rows["ODE (rtol = atol = 1e-3)"]), flush=True)
    if args.out:
        write_json(json_path(args.out, "diffusion_speed.json"), {"args": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
