"""Module state for a block of work: the one place that saves and restores train/eval modes and
parameter gradients (instead of hand-written save/restore blocks in every algorithm)."""

from __future__ import annotations

from torch import nn

__all__ = ["frozen", "evaluating"]


class evaluating:
    """``with evaluating(*modules):`` the modules in eval mode, their modes restored on exit."""

    def __init__(self, *modules: nn.Module):
        unique = {id(m): m for m in modules}
        self.modules = list(unique.values())
        self.modes = [[(sub, sub.training) for sub in m.modules()] for m in self.modules]

    def __enter__(self) -> None:
        for m in self.modules:
            m.eval()

    def __exit__(self, *exc: object) -> None:
        for modes in self.modes:
            for sub, training in modes:
                sub.training = training


class frozen(evaluating):
    """``with frozen(*modules):`` eval mode and no parameter gradients; both restored on exit."""

    def __init__(self, *modules: nn.Module):
        super().__init__(*modules)
        self.grads = [[(p, p.requires_grad) for p in m.parameters()] for m in self.modules]

    def __enter__(self) -> None:
        super().__enter__()
        for m in self.modules:
            m.requires_grad_(False)

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        for grads in self.grads:
            for p, g in grads:
                p.requires_grad_(g)
