"""Probe (issue 4, RESULTS 6.5): a per-pair λ ladder chosen by the AAE's own cycle error.

    python probe_cycle_ladder.py 2 200 dev 10:30:60
(threads, pairs, dev|final, λ rungs; SLERP is rung 0; γ = 300, μ = 0.3, p = 16 unless g=/mu=)
"""

import sys
import time

import torch
from path_optimizer_sweep import OUT
from probe_common import setup

from latentnav.interpolation import interpolate
from latentnav.metrics import PathReport
from latentnav.path_optimizer import (
    PathOptimizerConfig,
    cycle_error,
    cycle_threshold,
    optimize_paths,
)

torch.set_num_threads(int(sys.argv[1]))
n = int(sys.argv[2])
which = sys.argv[3]
ws = [float(w) for w in sys.argv[4].split(":")]
extra = dict(kv.split("=") for kv in sys.argv[5:])
aae, compass, train, test, za, zb, det = setup(which, n)
rungs = {"slerp": interpolate(za, zb, 32)}
for w in ws:
    cfg = PathOptimizerConfig(
        density_weight=w,
        jump_weight=float(extra.get("mu", 0.3)),
        jump_power=16,
        cycle_weight=float(extra.get("g", 300)),
    )
    t = time.perf_counter()
    rungs[f"w={w:g}"] = optimize_paths(aae, za, zb, compass, cfg).z
    print(f"w={w:g} {time.perf_counter() - t:.0f} s", flush=True)
out = {}
for name, z in rungs.items():
    with torch.no_grad():
        frames = aae.decoder(z.flatten(0, 1))
        ce = cycle_error(aae.encoder, z.flatten(0, 1), frames).view(z.shape[:2])[:, 1:-1]
        frames = frames.view(*z.shape[:2], *frames.shape[1:])
    r = PathReport.from_paths(frames, detector=det, latents=z)
    out[name] = dict(
        z=z,
        ce=ce,
        ood=r.per_path["ood_frames"],
        smax=r.per_path["step_max"],
        ch=r.per_path["class_changes"],
        smean=r.per_path["step_mean"],
    )
    print(
        f"{name}: OOD {r.ood_rate['union']:.4f} smax {r.step_max:.3f} "
        f"≤1 {r.at_most_one_change:.3f} len {r.length_ratio:.2f}",
        flush=True,
    )
torch.save(
    {
        "rungs": out,
        "kappa": {p: cycle_threshold(aae, train.images, p) for p in (50, 75, 90, 95, 99, 99.9)},
    },
    OUT / f"probe_ladder_{which}_{n}_{sys.argv[4]}.pt",
)
# Per pair, the first rung whose cycle statistic is ≤ κ (the last rung otherwise).
d = torch.load(OUT / f"probe_ladder_{which}_{n}_{sys.argv[4]}.pt")
R, K = d["rungs"], d["kappa"]
names = list(R)
print("kappa", {k: round(v, 4) for k, v in K.items()})


def summary(sel):
    idx = torch.arange(len(sel))

    def pick(key):
        return torch.stack([R[n][key].double() for n in names])[sel, idx]

    return pick("ood").mean(), pick("smax").mean(), (pick("ch") <= 1).double().mean()


for n in names:
    print(n, [round(float(x), 4) for x in summary(torch.full((len(R[n]["ood"]),), names.index(n)))])
for stat in ("max", "mean", "q90"):
    for p, kap in K.items():
        for start in (0, 1):
            passes = []
            for n in names:
                ce = R[n]["ce"]
                s = {"max": ce.amax(1), "mean": ce.mean(1), "q90": ce.quantile(0.9, dim=1)}[stat]
                passes.append(s <= kap)
            passes = torch.stack(passes)[start:]
            passes[-1] = True
            sel = passes.double().argmax(0) + start
            o, m, c = summary(sel)
            use = torch.bincount(sel, minlength=len(names)).tolist()
            print(f"{stat:4s} p{p:<5} start {start}: OOD {o:.4f} smax {m:.3f} ≤1 {c:.3f} use {use}")
