"""One process, one thread: the default navigator's optimiser with and without the ink term, and
the optimiser issue 12 timed (RESULTS §6.22):

    cd experiments; PYTHONPATH=../benchmarks python time_ink.py 8 1000 final noink ink issue
"""

import sys
import time

import torch
from evaluation_baselines import MNIST
from path_optimizer_sweep import pair_set
from probe_path_scales import load_model

from latentnav.data import load_mnist
from latentnav.navigation import Navigator
from latentnav.navigation.energy import default_energy, label_free
from latentnav.navigation.frames import capped_optimizer

torch.set_num_threads(1)
d, n = int(sys.argv[1]), int(sys.argv[2])
aae, _ = load_model(f"/work/runs/aae_d{d}/aae.safetensors")
test = load_mnist(MNIST, "test")
ia, ib = pair_set(test.labels, sys.argv[3], n)
with torch.no_grad():
    za, zb = aae.encode(test.images[ia]), aae.encode(test.images[ib])
navs = {
    "ink": Navigator(aae, capped_optimizer(aae, steps=32)),
    "noink": Navigator(
        aae, capped_optimizer(aae, steps=32, energy=default_energy(aae, aae.compass, ink_weight=0))
    ),
    "issue": Navigator(aae, "optimizer", energy=label_free(aae, aae.compass), steps=32),
}
times = {}
for name in sys.argv[4:]:
    t = time.perf_counter()
    p = navs[name].path(za, zb)
    times[name] = time.perf_counter() - t
    it = p.records.get("iterations")
    print(
        name,
        f"{times[name]:.1f} s",
        "mean iterations",
        None if it is None else round(it.float().mean().item(), 1),
        flush=True,
    )
