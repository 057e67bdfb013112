"""Peak memory against batch size B, chunked vs unchunked (issue 15, scale): navigation, sampling.

Each measurement runs in a fresh subprocess (one CPU thread), so the peak resident set size
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``) is that run's alone. "work" is the peak during the
run minus the peak before it (after the imports, the models and the inputs): the memory the run
itself needed, its output included (a path is B · (T + 1) · d floats, a sample batch B · d).
Models: a random AAE with image_shape (64,), d = 8, hidden (64,), a sharpened compass
LatentDiscriminator(8, (64, 64)); a random LatentDiffusion score net (width 64, one block, VP).
Workloads: SLERP, the stepwise navigator (M = 5 corrections, Langevin noise 0.1) and the path
optimiser (label-free energy, 5 iterations) with T = 16; Euler–Maruyama sampling with 20 steps.
"unchunked" is chunk_size = B; "chunked" the library default (1024 pairs, 16384 samples) or
``--nav-chunk`` / ``--sample-chunk``.

    python benchmarks/memory_scaling.py --out benchmarks/figures/memory_scaling.json
    python benchmarks/memory_scaling.py --smoke
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

NAV_METHODS = ("slerp", "stepwise", "optimizer")
STEPS = 16
DIM = 8


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _models():
    import torch

    from latentnav.aae import AAE, AAEConfig
    from latentnav.diffusion import DiffusionConfig, LatentDiffusion
    from latentnav.networks import LatentDiscriminator
    from latentnav.score_net import ScoreNetConfig

    torch.manual_seed(0)
    aae = AAE(AAEConfig(image_shape=(64,), latent_dim=DIM, hidden=(64,), disc_hidden=(64,)))
    aae.compass = LatentDiscriminator(DIM, (64, 64))
    with torch.no_grad():  # sharp, so the stepwise loop corrects
        aae.compass.net[-1].weight.mul_(20)
    net = ScoreNetConfig(latent_dim=DIM, width=64, blocks=1, embed_dim=16)
    return aae.eval(), LatentDiffusion(DiffusionConfig(net=net)).eval()


def worker(task: str, batch: int, chunk: int | None) -> dict:
    """One measurement in this process: ``task`` a navigation method or "sample"."""
    import torch

    from latentnav.navigation import make_method
    from latentnav.sampling import sample_chunked

    torch.set_num_threads(1)
    aae, diffusion = _models()
    g = torch.Generator().manual_seed(1)
    if task == "sample":
        score, sde = diffusion.score_fn(), diffusion.sde

        def run(n: int, size: int):
            return sample_chunked(score, sde, (n, DIM), "em", seed=0, chunk_size=size, steps=20)
    else:
        options = {
            "slerp": {},
            "stepwise": {"max_corrections": 5, "langevin_noise": 0.1},
            "optimizer": {"iterations": 5},
        }[task]
        method = make_method(task, aae, steps=STEPS, **options)
        z_a, z_b = torch.randn(batch, DIM, generator=g), 2 * torch.randn(batch, DIM, generator=g)

        def run(n: int, size: int):
            return method.path(z_a[:n], z_b[:n], chunk_size=size)

    run(2, 2)  # warm-up: lazy imports and one-off allocations are not the run's
    before = _peak_mib()
    start = time.perf_counter()
    out = run(batch, chunk or batch)
    seconds = time.perf_counter() - start
    finite = bool(torch.isfinite(out.z).all())
    peak = _peak_mib()
    return {"task": task, "B": batch, "chunked": chunk is not None, "chunk": chunk or batch,
            "peak_mib": round(peak, 1), "work_mib": round(peak - before, 1),
            "seconds": round(seconds, 3), "finite": finite}  # fmt: skip


def measure(task: str, batch: int, chunk: int | None) -> dict:
    """:func:`worker` in a fresh Python process (its own peak RSS)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    args = [sys.executable, __file__, "--worker", task, str(batch), str(chunk or 0)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"worker {task} B={batch} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: list[dict]) -> str:
    head = "| task | B | unchunked work MiB | chunked work MiB (chunk) | unchunked s | chunked s |"
    lines = [head, "|---|---|---|---|---|---|"]
    pairs = {}
    for r in rows:
        pairs.setdefault((r["task"], r["B"]), {})[r["chunked"]] = r
    for (task, batch), p in pairs.items():
        u, c = p.get(False), p.get(True)
        lines.append(
            f"| {task} | {batch} | {u['work_mib'] if u else '-'} | "
            f"{c['work_mib'] if c else '-'} ({c['chunk'] if c else '-'}) | "
            f"{u['seconds'] if u else '-'} | {c['seconds'] if c else '-'} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nav-batches", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--sample-batches", type=int, nargs="+", default=[16384, 65536, 262144])
    parser.add_argument("--methods", nargs="+", default=list(NAV_METHODS), choices=NAV_METHODS)
    parser.add_argument("--nav-chunk", type=int, default=None, help="default: the library's")
    parser.add_argument("--sample-chunk", type=int, default=None, help="default: the library's")
    parser.add_argument("--out", type=Path, default=None, help="JSON file for the rows")
    parser.add_argument("--smoke", action="store_true", help="tiny batches, for CI")
    parser.add_argument("--worker", nargs=3, metavar=("TASK", "B", "CHUNK"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        task, batch, chunk = args.worker[0], int(args.worker[1]), int(args.worker[2])
        print(json.dumps(worker(task, batch, chunk or None)))
        return
    from latentnav._chunks import NAVIGATION_CHUNK, SAMPLING_CHUNK

    nav_chunk = args.nav_chunk or NAVIGATION_CHUNK
    sample_chunk = args.sample_chunk or SAMPLING_CHUNK
    methods, nav_batches, sample_batches = args.methods, args.nav_batches, args.sample_batches
    if args.smoke:  # four short subprocesses
        methods, nav_batches, sample_batches, nav_chunk, sample_chunk = (
            ["slerp"],
            [64],
            [256],
            16,
            64,
        )
    rows = []
    for task in methods:
        for batch in nav_batches:
            rows += [measure(task, batch, None), measure(task, batch, nav_chunk)]
            print(rows[-2], rows[-1], sep="\n", file=sys.stderr)
    for batch in sample_batches:
        rows += [measure("sample", batch, None), measure("sample", batch, sample_chunk)]
        print(rows[-2], rows[-1], sep="\n", file=sys.stderr)
    if not all(r["finite"] for r in rows):
        raise SystemExit("a run gave non-finite output")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=1) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
