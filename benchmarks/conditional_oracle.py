"""Conditional score estimators against an oracle (DESIGN.md §6, issue 14): three Gaussian classes
in 2-D under a VP SDE, where ∇ log p_t(z | y) is closed form. Each estimator (CDE, CDiffE, CMDE
at several σ_y, VS-CMDE, the DLSM and CE-only classifiers guiding the exact unconditional score,
CE-only with α = 2 "scaling") is trained briefly; the table gives the s(t)²-scaled L2 error of its
score to the exact conditional score per noise level (score_error_by_time), with the exact
unconditional score as the reference row.

    python benchmarks/conditional_oracle.py --steps 1500 --seed 0
"""

from __future__ import annotations

from pathlib import Path

import torch
from common import base_parser, parse_args, write_json

from latentnav.conditional import (
    CDE,
    CMDE,
    VSCMDE,
    CDiffE,
    ClassifierConfig,
    GaussianClasses,
    NoisyClassifier,
    classifier_guided_score,
    fit_classifier,
    fit_estimator,
    one_hot,
    score_error_by_time,
)
from latentnav.sde import VPSDE

SDE_ = VPSDE()
ORACLE = GaussianClasses(torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 2.5]]), [0.4, 0.5, 0.3])
TIMES = torch.tensor([0.02, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9])


def estimators() -> dict:
    return {
        "CDE": CDE(SDE_, 3),
        "CDiffE": CDiffE(SDE_, 3),
        "CMDE β_y≤1 (mle)": CMDE(SDE_, 3, sde_y=VPSDE(0.1, 1.0)),
        "CMDE β_y≤1 (sigma2)": CMDE(SDE_, 3, sde_y=VPSDE(0.1, 1.0), weighting="sigma2"),
        "CMDE β_y≤0.1": CMDE(SDE_, 3, sde_y=VPSDE(0.01, 0.1)),
        "CMDE β_y≤0.01": CMDE(SDE_, 3, sde_y=VPSDE(0.001, 0.01)),
        "VS-CMDE 1→0.05": VSCMDE(SDE_, 3, sigma_start=1.0, sigma_target=0.05, rate=0.01),
    }


def errors(score_of_class) -> torch.Tensor:
    """Mean over the classes of score_error_by_time at TIMES: (T,)."""
    rows = []
    for k in range(3):
        zk, _ = ORACLE.sample(1000, torch.Generator().manual_seed(10 + k), torch.full((1000,), k))
        exact = lambda z, t, k=k: ORACLE.conditional_score(SDE_, z, t, k)  # noqa: E731
        gen = torch.Generator().manual_seed(3)
        rows.append(score_error_by_time(score_of_class(k), exact, SDE_, zk, TIMES, gen))
    return torch.stack(rows).mean(0)


def main(argv: list[str] | None = None) -> None:
    parser = base_parser(__doc__.splitlines()[0], data=False)
    parser.add_argument("--steps", type=int, default=1500)
    args = parse_args(parser, argv)
    if args.smoke:
        args.steps = 10
    z0, labels = ORACLE.sample(4000, torch.Generator().manual_seed(args.seed))
    y = one_hot(labels, 3)
    table = {"exact unconditional": errors(lambda k: lambda z, t: ORACLE.score(SDE_, z, t))}
    for name, est in estimators().items():
        torch.manual_seed(args.seed + 1)
        net = est.make_net(2, width=64)
        gen = torch.Generator().manual_seed(args.seed + 1)
        fit_estimator(est, net, z0, y, steps=args.steps, lr=3e-3, generator=gen)
        table[name] = errors(
            lambda k, est=est, net=net: est.score(
                net, one_hot(torch.tensor([k]), 3), torch.Generator().manual_seed(5)
            )
        )
    prior = lambda z, t: ORACLE.score(SDE_, z, t)  # noqa: E731
    for loss in ("ce", "dlsm"):
        torch.manual_seed(args.seed + 1)
        clf = NoisyClassifier(ClassifierConfig(2, 3, width=64))
        gen = torch.Generator().manual_seed(args.seed + 1)
        fit_classifier(clf, loss, prior, SDE_, z0, labels, steps=args.steps, lr=3e-3, generator=gen)
        for scale in (1.0, 2.0) if loss == "ce" else (1.0,):
            name = f"{loss.upper()} guidance α={scale:g}"
            table[name] = errors(lambda k, c=clf, a=scale: classifier_guided_score(prior, c, k, a))
    print(f"{'t':24s}" + "".join(f"{t:>8.2f}" for t in TIMES.tolist()) + "    mean  mean[0.2,0.7]")
    for name, row in table.items():
        cells = "".join(f"{v:8.4f}" for v in row.tolist())
        print(f"{name:24s}{cells}{row.mean().item():8.4f}{row[2:6].mean().item():11.4f}")
    if args.out:
        rows = {name: {"by_time": row.tolist(), "mean_0.2_0.7": row[2:6].mean().item()}
                for name, row in table.items()}  # fmt: skip
        write_json(Path(args.out) / "conditional_oracle.json", {"times": TIMES.tolist(), **rows})


if __name__ == "__main__":
    main()
