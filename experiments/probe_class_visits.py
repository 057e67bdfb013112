"""Probe (issue 4, RESULTS 6.7): why paths change class more than once. Reads the rungs saved by
probe_cycle_ladder.py (dev-200) and counts third-class visits of each rung's paths.

    python probe_class_visits.py
"""

import torch
from evaluation_baselines import MNIST
from path_optimizer_sweep import OUT, pair_set

from latentnav.aae import AAE
from latentnav.data import load_mnist
from latentnav.metrics import reference_classifier

torch.set_num_threads(2)
d = torch.load(OUT / "probe_ladder_dev_200_10:30:60.pt")["rungs"]
aae = AAE.load(OUT / "aae_d8" / "aae.safetensors").eval()
train, test = load_mnist(MNIST, "train"), load_mnist(MNIST, "test")
ia, ib = pair_set(test.labels, "dev", 200)
clf = reference_classifier(train.images, train.labels)
for name in ("slerp", "w=30", "w=60"):
    z = d[name]["z"]
    with torch.no_grad():
        fr = aae.decoder(z.flatten(0, 1))
        c = clf.probs(fr).argmax(-1).view(z.shape[:2])
    ya, yb = test.labels[ia], test.labels[ib]
    ch = (c[:, 1:] != c[:, :-1]).sum(1)
    third = ((c != ya[:, None]) & (c != yb[:, None])).any(1)
    start_ok = (c[:, 0] == ya) & (c[:, -1] == yb)
    print(
        name,
        "≤1",
        (ch <= 1).float().mean().item(),
        "third-class visit",
        third.float().mean().item(),
        "≥2 changes w/o third",
        ((ch >= 2) & ~third).float().mean().item(),
        "endpoints right",
        start_ok.float().mean().item(),
        "≥2 & third",
        ((ch >= 2) & third).float().mean().item(),
    )
    # number of third-class frames
    print(
        "   third frames per path mean",
        ((c != ya[:, None]) & (c != yb[:, None])).float().sum(1).mean().item(),
    )
