"""Probe (issue 4, RESULTS 6.5): data-graph paths. A k-NN graph over the 60 000 encoded training
images (in latent or decoded-pixel space), edge cost = pixel distance^p, Dijkstra (scipy) from
each z_a to z_b, resampled to T = 32 at equal decoded arc length; ``opt=γ:λ:μ`` refines it with
the path optimiser.

    python probe_data_graph.py 2 100 10,2,latent 10,2,pixel
"""

from __future__ import annotations

import sys
import time

import numpy as np
import scipy.sparse as sp
import torch
from probe_common import setup, show
from scipy.sparse.csgraph import dijkstra

from latentnav.compass import encode_all
from latentnav.path_optimizer import PathOptimizerConfig, optimize_paths

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
N_PAIRS = int(sys.argv[2]) if len(sys.argv) > 2 else 100
aae, compass, train, test, za, zb, detector = setup("dev", N_PAIRS)

t0 = time.perf_counter()
bank = encode_all(aae, train.images)
with torch.no_grad():
    frames = torch.cat([aae.decode(p).flatten(1) for p in bank.split(4096)])
    fa = aae.decode(za).flatten(1)
    fb = aae.decode(zb).flatten(1)
print("bank", bank.shape, time.perf_counter() - t0)


def knn(query, ref, k, exclude_self=False):
    out_d, out_i = [], []
    for q in query.split(2048):
        d = torch.cdist(q, ref)
        if exclude_self:
            kk = k + 1
        else:
            kk = k
        v, i = d.topk(kk, largest=False)
        out_d.append(v[:, -k:] if exclude_self else v)
        out_i.append(i[:, -k:] if exclude_self else i)
    return torch.cat(out_d), torch.cat(out_i)


def run(k: int, power: float, space: str):
    n, b = len(bank), len(za)
    t = time.perf_counter()
    if space == "latent":
        _, idx = knn(bank, bank, k, True)
        _, ia_ = knn(za, bank, k)
        _, ib_ = knn(zb, bank, k)
    else:
        _, idx = knn(frames, frames, k, True)
        _, ia_ = knn(fa, frames, k)
        _, ib_ = knn(fb, frames, k)
    rows = torch.arange(n)[:, None].expand(-1, k)
    w = (frames[rows] - frames[idx]).norm(dim=-1) ** power
    wa = (fa[:, None] - frames[ia_]).norm(dim=-1) ** power
    wb = (fb[:, None] - frames[ib_]).norm(dim=-1) ** power
    src = [
        rows.flatten(),
        idx.flatten(),
        n + torch.arange(b)[:, None].expand(-1, k).flatten(),
        ib_.flatten(),
    ]
    dst = [
        idx.flatten(),
        rows.flatten(),
        ia_.flatten(),
        n + b + torch.arange(b)[:, None].expand(-1, k).flatten(),
    ]
    ww = [w.flatten(), w.flatten(), wa.flatten(), wb.flatten()]
    g = sp.csr_matrix(
        (torch.cat(ww).double().numpy() + 1e-12, (torch.cat(src).numpy(), torch.cat(dst).numpy())),
        shape=(n + 2 * b, n + 2 * b),
    )
    paths = []
    for c in range(0, b, 50):
        sources = np.arange(n + c, n + min(c + 50, b))
        _, pred = dijkstra(g, indices=sources, return_predecessors=True, min_only=False)
        for r, s in enumerate(sources):
            i = s - n
            node = n + b + i
            seq = []
            while node != s:
                seq.append(node)
                node = pred[r, node]
                if node < 0:
                    raise RuntimeError("unreachable")
            seq = seq[::-1][:-1]  # bank nodes only
            paths.append(seq)
    hops = [len(p) for p in paths]
    # resample at equal decoded arc length
    out = torch.empty(b, 33, bank.shape[1])
    for i, seq in enumerate(paths):
        lat = torch.cat([za[i : i + 1], bank[seq], zb[i : i + 1]])
        fr = torch.cat([fa[i : i + 1], frames[seq], fb[i : i + 1]])
        seg = (fr[1:] - fr[:-1]).norm(dim=-1)
        cum = torch.cat([torch.zeros(1), seg.cumsum(0)])
        targets = torch.linspace(0, float(cum[-1]), 33)
        j = torch.searchsorted(cum, targets, right=True).clamp(1, len(seg)) - 1
        alpha = ((targets - cum[j]) / seg[j].clamp_min(1e-12)).clamp(0, 1)
        out[i] = lat[j] + alpha[:, None] * (lat[j + 1] - lat[j])
    out[:, 0], out[:, -1] = za, zb
    print(
        f"graph k={k} p={power} {space}: {time.perf_counter() - t:.0f} s, hops mean "
        f"{np.mean(hops):.1f} max {max(hops)}",
        flush=True,
    )
    return out


for spec in sys.argv[3:]:
    parts = spec.split(",")
    k, power, space = int(parts[0]), float(parts[1]), parts[2]
    z = run(k, power, space)
    show(spec, z, aae, detector)
    for extra in parts[3:]:
        key, val = extra.split("=")
        if key == "opt":
            g, w, mu = (float(v) for v in val.split(":"))
            cfg = PathOptimizerConfig(
                density_weight=w, jump_weight=mu, jump_power=16, cycle_weight=g
            )
            show(
                f"{spec} +opt {val}",
                optimize_paths(aae, za, zb, compass, cfg, init=z),
                aae,
                detector,
            )
