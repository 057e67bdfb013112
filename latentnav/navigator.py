"""Old import path of the navigator (kept for existing callers; DESIGN.md §3).

``Navigator`` is :class:`latentnav.navigation.Navigator`, which also takes the first interface's
``Navigator(aae, NavigatorConfig(...), compass=logit_module)``: that config is the stepwise
navigator's with the compass as two string flags, turned here into a compass object
(``objective`` → :class:`DiscriminatorCompass`, ``compass="density"`` → :class:`DensityCompass`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

from torch import nn

from latentnav.navigation import Navigator as _Navigator
from latentnav.navigation.compasses import DensityCompass, DiscriminatorCompass
from latentnav.navigation.methods import Method
from latentnav.navigation.stepwise import Stepwise, StepwiseConfig

__all__ = ["NavigatorConfig", "Navigator"]


@dataclass(frozen=True)
class NavigatorConfig(StepwiseConfig):
    """:class:`StepwiseConfig` plus the first interface's compass flags."""

    objective: Literal["prob", "logit"] = "logit"
    compass: Literal["discriminator", "density"] = "discriminator"

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, allowed in (("objective", ("prob", "logit")),
                              ("compass", ("discriminator", "density"))):  # fmt: skip
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")

    def stepwise(self, aae: nn.Module, compass: nn.Module | None = None) -> Stepwise:
        """The stepwise method these settings describe; ``compass`` (a logit module) defaults
        to ``aae.compass``, else the AAE's D_z."""
        logit = compass if compass is not None else getattr(aae, "compass", None)
        logit = logit if logit is not None else aae.discriminator
        if self.compass == "density":
            wrapped: nn.Module = DensityCompass(logit, aae.prior)
        else:
            wrapped = DiscriminatorCompass(logit, self.objective)
        settings = StepwiseConfig(**{f.name: getattr(self, f.name) for f in fields(StepwiseConfig)})
        return Stepwise(aae, wrapped, settings)


class Navigator(_Navigator):
    """:class:`latentnav.navigation.Navigator`; a :class:`NavigatorConfig` as ``method`` (with
    an optional ``compass=`` logit module) runs the stepwise navigator it describes."""

    def __init__(self, aae: nn.Module, method: Any = None, **options: Any):
        if isinstance(method, NavigatorConfig):
            method = method.stepwise(aae, options.pop("compass", None))
        super().__init__(aae, method, **options)

    @property
    def config(self) -> dict[str, Any]:
        return self.method.config() if isinstance(self.method, Method) else {}
