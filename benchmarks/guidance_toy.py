"""Discriminator guidance on a 2-D toy (DESIGN.md §5, seed 000 §5.2.3, issue 11 "must be shown").

Data: ring8 (8 Gaussians of std 0.1 on a circle of radius 2). A deliberately wrong score model whose
marginals are known in closed form: the ring blurred to std 0.3 and mixed 25 % with N(0, 1.5² I),
so the unguided sampler puts mass in the hole and between the modes. D_ψ is trained post hoc on
ring8 samples (real) against the model's own EM samples (fake, generated once), then guided and
unguided EM run at the same number of score steps. Figures: MMD² (RBF, bandwidths 0.1, 0.2,
0.5) and KL(p_data ‖ histogram) on a 24 × 24 grid over [−3, 3]², both against the exact
ring8; "oracle" guides with the exact ℓ* of p_t^data / p_t^model (the ceiling for a perfect D_ψ).

    PYTHONPATH=. python benchmarks/guidance_toy.py            # ~4 min on one core

Also: boosting (sample_guided, samples with ℓ_ψ < 0 re-noised to t = 0.3 and re-sampled with
doubled weight), the same guidance inside PC and the probability-flow ODE, the wall-time ratio of
a guided to an unguided EM step, and a figure of sampling trajectories with and without guidance
over the true density (``--figure``).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from common import base_parser, parse_args, write_json

from latentnav.data.toys import toy_distribution
from latentnav.guidance import correction, guided_score, sample_guided
from latentnav.metrics.mmd import mmd2
from latentnav.priors import GaussianMixture
from latentnav.ratio_fidelity import MixtureLogRatio, diffused_mixture_log_prob
from latentnav.sampling import SAMPLERS, sample, time_grid
from latentnav.sde import VPSDE
from latentnav.time_discriminator import (
    TimeDiscriminator,
    TimeDiscriminatorFitConfig,
    fit_time_discriminator,
)
from latentnav.viz import save_figure

# RBF bandwidths at the scale of the ring's modes (std 0.1) and of its gaps: the median distance
# (≈ 2.8) would be blind to how sharp the modes are.
BANDWIDTHS = (0.1, 0.2, 0.5)


def weak_model(data: GaussianMixture) -> GaussianMixture:
    """The ring blurred to std 0.3, with a quarter of the mass in a wide Gaussian at the centre."""
    k = data.n_components
    means = torch.cat([data.means, torch.zeros(1, 2)])
    stds = torch.cat([torch.full((k,), 0.3), torch.tensor([1.5])])
    tril = torch.diag_embed(stds[:, None].expand(-1, 2).contiguous())
    weights = torch.cat([torch.full((k,), 0.75 / k), torch.tensor([0.25])])
    return GaussianMixture(means, scale_tril=tril, weights=weights)


def mixture_score(mixture: GaussianMixture, sde):
    """∇_z log p_t by autograd through the closed-form diffused mixture."""
    return lambda z, t: correction(
        lambda zz, tt: diffused_mixture_log_prob(mixture, sde, zz, tt), z, t
    )


def grid_kl(data: GaussianMixture, z: torch.Tensor, cells: int = 24, half: float = 3.0) -> float:
    """KL(p ‖ q̂) between the exact density's cell masses and the samples' histogram (+½ a count
    per cell, so empty cells stay finite), on a ``cells``² grid over [−half, half]²."""
    centres = torch.linspace(-half, half, 2 * cells + 1)[1::2]
    gx, gy = torch.meshgrid(centres, centres, indexing="ij")
    p = data.log_prob(torch.stack([gx.flatten(), gy.flatten()], 1)).exp()
    p = p / p.sum()
    idx = ((z + half) / (2 * half) * cells).floor().long()
    inside = ((idx >= 0) & (idx < cells)).all(1)
    flat = idx[inside, 0] * cells + idx[inside, 1]
    q = torch.bincount(flat, minlength=cells * cells).double() + 0.5
    q = q / (len(z) + 0.5 * cells * cells)
    keep = p > 0
    return float((p[keep] * (p[keep].double().log() - q[keep].log())).sum())


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__, threads=1, data=False)
    parser.add_argument("--n", type=int, default=20_000, help="real and fake training samples")
    parser.add_argument("--eval", type=int, default=5_000, help="samples per sampler run")
    parser.add_argument("--steps", type=int, default=100, help="EM steps (score evaluations)")
    parser.add_argument("--fit-steps", type=int, default=3_000)
    parser.add_argument(
        "--cost-only", action="store_true", help="only the guided/unguided step-cost ratio"
    )
    parser.add_argument(
        "--figure", default="benchmarks/figures/guidance_toy_trajectories.png", help="('' = none)"
    )
    args = parse_args(parser, argv)
    if args.smoke:  # PC needs ≥ 20 steps on the VP SDE
        args.n, args.eval, args.steps, args.fit_steps = 500, 200, 20, 20
        args.figure = str(Path(args.out) / "guidance_toy_trajectories.png")
    print_cost_ratio(**({"batch": 50, "steps": 2} if args.smoke else {}))
    if args.cost_only:
        return
    sde, data = VPSDE(), toy_distribution("ring8")
    model = weak_model(data)
    model_score = mixture_score(model, sde)
    gen = torch.Generator().manual_seed(args.seed)

    def run(score_fn, n: int, seed: int) -> tuple[torch.Tensor, float]:
        start = time.perf_counter()
        g = torch.Generator().manual_seed(seed)
        z = sample(score_fn, sde, (n, 2), "em", steps=args.steps, generator=g).z
        return z, time.perf_counter() - start

    fake, _ = run(model_score, args.n, args.seed + 1)
    real = data.sample(args.n, gen)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        disc = TimeDiscriminator(2, hidden=(128, 128), embed_dim=32)
    config = TimeDiscriminatorFitConfig(
        max_steps=args.fit_steps, lr=2e-3, eval_every=100, patience=10, seed=args.seed
    )
    start = time.perf_counter()
    report = fit_time_discriminator(disc, sde, real, fake, config)
    print(
        f"D_ψ: {time.perf_counter() - start:.0f} s, best step {report.best_step}, "
        f"held-out BCE {report.heldout_loss:.4f}, accuracy {report.heldout_accuracy:.3f}"
    )
    for b in report.buckets:
        print(
            f"  t ∈ [{b['t_low']:.2f}, {b['t_high']:.2f}]: accuracy {b['accuracy']:.3f}, "
            f"ECE {b['ece']:.3f}"
        )
    oracle = MixtureLogRatio(data, model, sde)
    runs = {
        "true score (floor)": mixture_score(data, sde),
        "unguided": model_score,
        "oracle ℓ*, w=1": guided_score(model_score, oracle, 1.0),
    }
    for w in (0.5, 1.0, 2.0):
        runs[f"D_ψ constant w={w}"] = guided_score(model_score, disc, w)
    runs["D_ψ decreasing w=2"] = guided_score(model_score, disc, 2.0, schedule="decreasing")
    runs["D_ψ interval [0, 0.5] w=1"] = guided_score(
        model_score, disc, 1.0, schedule="interval", t_min=0.0, t_max=0.5
    )
    reference = data.sample(args.eval, gen)
    base, table = None, {}
    print(f"\nEM, {args.steps} score steps, {args.eval} samples, VP SDE")
    print(f"{'run':28s} {'MMD²':>9s} {'vs unguided':>12s} {'grid KL':>8s} {'s/run':>6s}")
    for name, fn in runs.items():
        z, seconds = run(fn, args.eval, args.seed + 2)
        mmd = float(mmd2(z, reference, BANDWIDTHS))
        base = mmd if name == "unguided" else base
        rel = f"{100 * (mmd / base - 1):+.0f} %" if base is not None else ""
        table[name] = {"mmd2": mmd, "grid_kl": grid_kl(data, z), "nfe": args.steps}
        print(f"{name:28s} {mmd:9.5f} {rel:>12s} {table[name]['grid_kl']:8.3f} {seconds:6.1f}")
    ts = time_grid(sde, args.steps)

    def guided_run(name, sampler, weight, **kw):
        g = torch.Generator().manual_seed(args.seed + 2)
        z_T = sde.prior_sample((args.eval, 2), generator=g)
        start = time.perf_counter()
        fn = guided_score(model_score, disc, weight) if weight else model_score
        if weight:
            r = sample_guided(fn, sde, z_T, ts, sampler, generator=g, **kw)
        else:
            r = SAMPLERS[sampler](fn, sde, z_T, ts, generator=g)
        seconds = time.perf_counter() - start
        mmd = float(mmd2(r.z, reference, BANDWIDTHS))
        fake = (r.extras["log_ratio"] < 0).float().mean().item() if weight else float("nan")
        kl, share = grid_kl(data, r.z), fake if weight else None
        table[name] = {"mmd2": mmd, "grid_kl": kl, "nfe": r.nfe, "fake_share": share}
        print(f"{name:34s} {mmd:9.5f} {kl:8.3f} {r.nfe:5d} {fake:8.3f} "
              f"{seconds:6.1f}")  # fmt: skip
        return seconds / max(r.nfe, 1)

    print(f"\n{'run (D_ψ, w = 1 unless said)':34s} {'MMD²':>9s} {'grid KL':>8s} {'NFE':>5s} "
          f"{'ℓ<0 share':>8s} {'s/run':>6s}")  # fmt: skip
    per_nfe = {}
    per_nfe["em"] = guided_run("EM unguided", "em", 0.0)
    per_nfe["em guided"] = guided_run("EM guided", "em", 1.0)
    guided_run("EM guided + boosting (2 rounds, t_b 0.3)", "em", 1.0, boost_rounds=2)
    guided_run("PC unguided", "pc", 0.0)
    guided_run("PC guided (λ = γ = 1)", "pc", 1.0)
    guided_run("ODE unguided (dopri5)", "ode", 0.0)
    guided_run("ODE guided (dopri5)", "ode", 1.0)
    print(f"wall time per score step, guided / unguided EM (closed-form toy score): "
          f"{per_nfe['em guided'] / per_nfe['em']:.2f}")  # fmt: skip
    if args.figure:
        save_figure(trajectories_figure(sde, data, model_score, disc, args), args.figure, dpi=120)
        print(f"figure: {args.figure}")
    if args.out:
        write_json(Path(args.out) / "guidance_toy.json", table)


def print_cost_ratio(d: int = 8, batch: int = 1000, steps: int = 50) -> None:
    """Wall time of EM with a network score: the default ScoreNet (d = 8) alone vs guided by a
    TimeDiscriminator (256, 256), same batch and steps, measured in one run (best of 3)."""
    from latentnav.score_net import ScoreNet, ScoreNetConfig

    sde = VPSDE()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = ScoreNet(ScoreNetConfig(latent_dim=d), sde).eval()
        disc = TimeDiscriminator(d, hidden=(256, 256)).eval()
    score = lambda z, t: net(z, t)  # noqa: E731
    ts = time_grid(sde, steps)
    z = sde.prior_sample((batch, d), generator=torch.Generator().manual_seed(0))
    timings = {}
    for name, fn in (("unguided", score), ("guided", guided_score(score, disc, 1.0))):
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            SAMPLERS["em"](fn, sde, z, ts, generator=torch.Generator().manual_seed(1))
            best = min(best, time.perf_counter() - start)
        timings[name] = best / steps
    print(f"EM step with ScoreNet(d={d}) at B={batch}: unguided {1e3 * timings['unguided']:.1f} "
          f"ms, guided {1e3 * timings['guided']:.1f} ms, ratio "
          f"{timings['guided'] / timings['unguided']:.2f}")  # fmt: skip


def trajectories_figure(sde, data, model_score, disc, args):
    """Sampling trajectories of 48 samples, unguided and guided, over the true log-density."""
    import matplotlib.pyplot as plt

    from latentnav.video import TrajectoryRecorder

    ts = time_grid(sde, args.steps)
    axis = torch.linspace(-3, 3, 200)
    gx, gy = torch.meshgrid(axis, axis, indexing="xy")
    logp = data.log_prob(torch.stack([gx.flatten(), gy.flatten()], 1)).view(200, 200)
    fig, axes = plt.subplots(1, 2, figsize=(10, 5), sharex=True, sharey=True)
    runs = [("unguided", model_score), ("guided by D_ψ (w = 1)", guided_score(model_score, disc))]
    for ax, (title, fn) in zip(axes, runs, strict=True):
        g = torch.Generator().manual_seed(args.seed + 3)
        recorder = TrajectoryRecorder(key="z")
        z_T = sde.prior_sample((48, 2), generator=g)
        SAMPLERS["em"](fn, sde, z_T, ts, generator=g, callback=recorder)
        path = torch.cat([z_T[None], recorder.z]).detach()  # (steps + 1, 48, 2)
        ax.contourf(gx, gy, logp.clamp_min(-12), levels=20, cmap="Greys")
        for i in range(path.shape[1]):
            ax.plot(path[:, i, 0], path[:, i, 1], lw=0.6, alpha=0.6)
        ax.scatter(path[-1, :, 0], path[-1, :, 1], s=8, c="red", zorder=3)
        ax.set(title=title, xlim=(-3, 3), ylim=(-3, 3), aspect="equal")
    fig.suptitle("EM trajectories on ring8 (VP SDE) over the true log-density; red: end points")
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
