"""Data first where the data resolve the path (DESIGN.md §3; issue 12, a default for both worlds).

Per pair, the graph geodesic over the training images (:class:`GraphPath` with ``images``) when
its chain has at least T − 1 nodes, so every interior frame is a datum (a bank latent, snapped);
otherwise the data are too sparse along the way to draw T frames from, and the pair goes to the
path optimiser (``fallback``, default its frames under the jump cap, RESULTS §6.15). On a
curved manifold sampled densely (the lines data: chains of thousands of nodes) every pair takes
the geodesic; on MNIST, where a chain between two classes has a handful of nodes, almost every
pair keeps the optimiser (RESULTS §6.13). No threshold is tuned: T is the frame count asked for.

Records: ``from_data`` (B,) bool, the pairs that took the geodesic; ``hops`` (B,) int64, the
nodes on their chain. Shapes: z_a, z_b (B, d); paths (B, T + 1, d).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from latentnav.navigation.frames import capped_optimizer
from latentnav.navigation.graph import GraphPath, has_data_graph
from latentnav.navigation.methods import Method, check_steps, make_method, register_method
from latentnav.navigation.path import LatentPath

__all__ = ["DataFirst"]


@register_method("auto")
class DataFirst(Method):
    """``DataFirst(aae, images, steps=32, graph=None, fallback=None)``: ``images``
    (N, *image_shape) training images, or ``graph`` a built :class:`GraphPath` over them, or
    neither where the AAE stores that graph (``attach_data_graph``, ``latentnav train-aae``);
    ``fallback`` a method (object or name) for the pairs the data do not resolve, default the
    optimiser's frames under the cap (:func:`capped_optimizer`), as in ``Navigator(aae)``.
    ``callback`` goes to the fallback (the geodesic has no iterations to watch)."""

    def __init__(
        self,
        aae: nn.Module,
        images: torch.Tensor | None = None,
        steps: int = 32,
        graph: GraphPath | None = None,
        fallback: Method | str | None = None,
    ):
        super().__init__(aae)
        self.steps = check_steps(steps)
        if graph is None and images is None and has_data_graph(aae):  # the checkpoint's graph
            k = int(aae.data_neighbours.shape[1])
            graph = GraphPath(aae, steps=steps, k=k, neighbours="data")
        if graph is None:
            if images is None:
                raise ValueError(
                    "the 'auto' method needs images= (N, *image_shape), training images for its "
                    "data graph, an AAE that stores that graph (`latentnav train-aae`, or "
                    "attach_data_graph), or graph= a GraphPath over them"
                )
            n = len(images) if isinstance(images, torch.Tensor) else 21  # else data_bank says
            k = min(20, max(n - 1, 1))  # GraphPath's k, or every other image when fewer
            graph = GraphPath(aae, images=images, steps=steps, k=k)
        if graph.steps != steps:
            raise ValueError(f"graph has {graph.steps} steps, auto {steps}")
        self.graph = graph
        if fallback is None:
            fallback = capped_optimizer(aae, steps=steps)
        self.fallback = fallback if isinstance(fallback, Method) else make_method(
            fallback, aae, steps=steps
        )  # fmt: skip

    def config(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "graph": self.graph.config(),
            "fallback": {"name": self.fallback.name, **self.fallback.config()},
        }

    def _path(self, z_a, z_b, callback):
        geodesic = self.graph._path(z_a, z_b, None)
        hops = geodesic.records["hops"]
        from_data = hops >= self.steps - 1
        z = geodesic.z.clone()
        rest = (~from_data).nonzero().flatten()  # one host sync per chunk, outside any loop
        if len(rest):
            other = self.fallback._path(z_a[rest], z_b[rest], callback)
            z[rest] = other.z.to(z)
        return LatentPath(z, {"from_data": from_data, "hops": hops}, self.name, self.config())
