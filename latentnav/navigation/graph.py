"""Paths through the data: geodesics of a k-nearest-neighbour graph over encoded training latents
(DESIGN.md §3; issue 12, "an initial path that follows the data").

Nodes are a bank of latents z_i = E(x_i), ``bank: (N, d)``, each joined to its ``k`` nearest
neighbours in latent space; an edge costs ‖G(z_i) − G(z_j)‖^p in decoded pixels (p = ``power``),
so p > 1 prefers many short hops between decoded frames over a few long ones (``hop=q``: the
edge costs its length ℓ up to h, the q-quantile of the bank's edge lengths, and ℓ·(ℓ/h)^(p−1)
beyond, so the chain is the shortest one of hops up to about h). z_a and z_b join
the graph through their own ``k`` nearest bank latents (and one direct edge a → b). Dijkstra
(scipy.sparse.csgraph) finds the cheapest chain a → z_{i_1} → … → z_{i_m} → b; the path is its
polyline in latent space resampled to T + 1 points at equal decoded arc length (arc measured
between the chain's decoded frames). Where the data lie on a curved manifold (a circle of angles)
the chain follows it instead of cutting across the holes a straight path crosses.

``neighbours="data"`` with ``images`` (N, *image_shape), the images the bank encodes: neighbours
and edge costs are measured between the images themselves (the data's own k-NN graph, as in
Isomap), so a chain follows the data manifold even where the encoder folds it and latent
neighbours join distant parts of it (RESULTS §6.13).

Records: ``hops`` (B,) int64, the bank nodes on the chain; ``cost`` (B,), its total edge cost.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from latentnav.navigation.bank import data_bank
from latentnav.navigation.methods import Method, check_steps, register_method
from latentnav.navigation.optimizer import equal_arc
from latentnav.navigation.path import LatentPath

__all__ = ["DataGraph", "GraphPath", "attach_data_graph", "data_bank", "has_data_graph", "resample"]

NEIGHBOURS = ("latent", "decoded", "both", "data")


def _nearest(query: torch.Tensor, ref: torch.Tensor, k: int, skip_self: bool, chunk: int = 2048):
    """Indices (M, k) of the k nearest rows of ``ref`` (N, d) to each row of ``query`` (M, d);
    ``skip_self`` drops the first hit (the row itself when query is ref)."""
    out = []
    for part in query.split(chunk):
        idx = torch.cdist(part, ref).topk(k + int(skip_self), largest=False).indices
        out.append(idx[:, 1:] if skip_self else idx)
    return torch.cat(out)


def _check_edges(edges, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A stored data graph's ``(neighbours (N, k) int, lengths (N, k) float)``, checked."""
    if not (isinstance(edges, (tuple, list)) and len(edges) == 2):
        raise ValueError("edges must be (neighbours (N, k) int, lengths (N, k) float)")
    nbr, length = (torch.as_tensor(e).detach().cpu() for e in edges)
    if not (nbr.ndim == 2 and nbr.shape == length.shape and len(nbr) == n):
        raise ValueError(
            f"edges must be two (N = {n}, k) tensors, got {tuple(nbr.shape)}, {tuple(length.shape)}"
        )
    if nbr.is_floating_point() or not length.is_floating_point():
        raise ValueError(f"edges: neighbours must be integers, lengths floats, got "
                         f"{nbr.dtype}, {length.dtype}")  # fmt: skip
    if len(nbr) and (nbr.min() < 0 or nbr.max() >= n):
        raise ValueError(f"edges: neighbour indices must be in [0, {n}), the bank's rows")
    if not (torch.isfinite(length).all() and (length >= 0).all()):
        raise ValueError("edges: lengths must be finite and ≥ 0")
    return nbr.long(), length.float()


def knn_matrix(neighbours: torch.Tensor, values: Any) -> Any:
    """The symmetric scipy CSR (N, N) matrix with ``values`` (N, k) at (i, neighbours[i, j]), each
    pair once: the larger of its two directions."""
    import scipy.sparse as sp

    n = len(neighbours)
    rows = torch.arange(n)[:, None].expand_as(neighbours).flatten().numpy()
    values = np.asarray(values).reshape(-1)
    g = sp.csr_matrix((values, (rows, neighbours.flatten().numpy())), (n, n))
    return g.maximum(g.T).tocsr()


@torch.no_grad()
def _decode_flat(aae: nn.Module, z: torch.Tensor, chunk: int = 4096) -> torch.Tensor:
    return torch.cat([aae.decode(part).flatten(1).float() for part in z.split(chunk)])


class DataGraph:
    """The k-NN graph over ``bank: (N, d)`` with edge cost ‖G(z_i) − G(z_j)‖^power (with
    ``neighbours="data"``: ‖x_i − x_j‖^power between its ``images``); built once, shared by every
    call. ``geodesics(z_a, z_b)`` → one chain of bank indices per pair."""

    def __init__(
        self,
        aae: nn.Module,
        bank: torch.Tensor,
        k: int = 20,
        power: float = 3.0,
        neighbours: str = "latent",
        hop: float | None = None,
        images: torch.Tensor | None = None,
        edges: tuple[torch.Tensor, torch.Tensor] | None = None,
    ):

        if not (isinstance(bank, torch.Tensor) and bank.ndim == 2 and bank.is_floating_point()):
            shape = tuple(bank.shape) if isinstance(bank, torch.Tensor) else type(bank).__name__
            raise ValueError(f"bank must be a floating tensor (N, d) of latents, got {shape}")
        latent_dim = getattr(aae, "latent_dim", bank.shape[1])
        if bank.shape[1] != latent_dim:
            raise ValueError(f"bank must have the AAE's latent dim {latent_dim}, got {bank.shape}")
        if not torch.isfinite(bank).all():
            raise ValueError("bank has non-finite latents")
        if not (isinstance(k, int) and not isinstance(k, bool) and 1 <= k < len(bank)):
            raise ValueError(f"k must be an int in [1, N − 1] = [1, {len(bank) - 1}], got {k!r}")
        if not (isinstance(power, (int, float)) and power > 0):
            raise ValueError(f"power must be > 0, got {power!r}")
        if neighbours not in NEIGHBOURS:
            raise ValueError(f"neighbours must be one of {NEIGHBOURS}, got {neighbours!r}")
        if hop is not None and not 0 < hop <= 1:
            raise ValueError(f"hop must be a quantile in (0, 1] or None, got {hop!r}")
        self.aae, self.k, self.power, self.neighbours = aae, k, float(power), neighbours
        self.hop, self.scale = hop, None
        self.bank = bank.detach()
        if images is not None and neighbours != "data":
            raise ValueError(f'images= is only used with neighbours="data", not {neighbours!r}')
        if edges is not None and neighbours != "data":
            raise ValueError(f'edges= are a data graph\'s: neighbours="data", not {neighbours!r}')
        if images is not None or (neighbours == "data" and edges is None):
            if not (isinstance(images, torch.Tensor) and len(images) == len(bank)):
                got = tuple(images.shape) if isinstance(images, torch.Tensor) else images
                raise ValueError(
                    f'neighbours="data" needs images= (N = {len(bank)}, *image_shape), the '
                    f"images the bank encodes, one per latent (or edges= a stored data graph's); "
                    f"got {got!r:.60}"
                )
            self.frames = images.detach().flatten(1).float().cpu()
            if not torch.isfinite(self.frames).all():
                raise ValueError("images has non-finite values")
            pixels = _decode_flat(aae, self.bank[:1]).shape[1]
            if self.frames.shape[1] != pixels:
                got = tuple(images.shape)
                raise ValueError(f"images must have the decoder's {pixels} pixels, got {got}")
        else:  # with stored edges of a data graph, the nodes' decoded frames stand in for images
            self.frames = _decode_flat(aae, self.bank).cpu()
        if edges is None:
            nbr = self._neighbours(self.bank, self.frames, skip_self=True)
            length = torch.cat(  # (N, k) edge lengths, 1024 rows at a time: never (N, k, P)
                [(self.frames[r, None] - self.frames[i]).norm(dim=-1)
                 for r, i in zip(torch.arange(len(bank)).split(1024), nbr.split(1024), strict=True)]
            )  # fmt: skip
        else:
            nbr, length = _check_edges(edges, len(bank))
        self.edges = (nbr, length)
        if hop is not None:  # h: the hop-quantile of the bank's own edge lengths
            self.scale = float(np.quantile(length.double().numpy(), hop))
        self.graph = knn_matrix(nbr, self._cost(length))  # symmetric: no double counting

    def _neighbours(self, z: torch.Tensor, frames: torch.Tensor, skip_self: bool = False):
        """Indices (M, k) of bank nodes nearest z (M, d) in latent space, (M, k) nearest its
        decoded ``frames`` (M, P), or (M, 2k) both, as ``neighbours`` says."""
        found = []
        if self.neighbours in ("latent", "both"):
            found.append(_nearest(z.to(self.bank), self.bank, self.k, skip_self).cpu())
        if self.neighbours in ("decoded", "both", "data"):  # "data": self.frames are the images
            found.append(_nearest(frames, self.frames, self.k, skip_self))
        return torch.cat(found, 1)

    def _cost(self, length: torch.Tensor) -> np.ndarray:
        """ℓ^p of decoded edge lengths ℓ, or with ``hop`` ℓ up to h and ℓ·(ℓ/h)^(p−1) beyond it:
        the shortest chain of hops no longer than h."""
        length = length.double()
        if self.scale is None:
            return (length**self.power).numpy() + 1e-12
        return (length * (length / self.scale).clamp_min(1) ** (self.power - 1)).numpy() + 1e-12

    def geodesics(
        self,
        z_a: torch.Tensor,
        z_b: torch.Tensor,
        f_a: torch.Tensor | None = None,
        f_b: torch.Tensor | None = None,
    ) -> tuple[list[list[int]], np.ndarray]:
        """z_a, z_b: (B, d) (their decoded frames f_a, f_b: (B, P) on the CPU, if already at
        hand) → (chains of bank indices, costs (B,)); a chain may be empty (the direct edge
        a → b was cheapest)."""
        import scipy.sparse as sp
        from scipy.sparse.csgraph import dijkstra

        n, b = len(self.bank), len(z_a)
        f_a = _decode_flat(self.aae, z_a).cpu() if f_a is None else f_a
        f_b = _decode_flat(self.aae, z_b).cpu() if f_b is None else f_b
        near_a, near_b = self._neighbours(z_a, f_a), self._neighbours(z_b, f_b)
        pair = torch.arange(b)[:, None].expand_as(near_a)
        src = [n + pair.flatten(), near_b.flatten(), n + torch.arange(b)]  # sources n..n+b−1
        dst = [near_a.flatten(), n + b + pair.flatten(), n + b + torch.arange(b)]  # sinks after
        cost = [
            self._cost((f_a[:, None] - self.frames[near_a]).norm(dim=-1)).flatten(),
            self._cost((f_b[:, None] - self.frames[near_b]).norm(dim=-1)).flatten(),
            self._cost((f_a - f_b).norm(dim=-1)),
        ]
        size = n + 2 * b
        g = sp.block_diag([self.graph, sp.csr_matrix((2 * b, 2 * b))], format="csr")
        g = g + sp.csr_matrix(
            (np.concatenate(cost), (torch.cat(src).numpy(), torch.cat(dst).numpy())), (size, size)
        )
        direct = np.asarray(cost[2])  # no chain costs more than its pair's direct edge
        chains, totals = [], np.empty(b)
        for i in range(b):  # each search stops at its direct edge's cost (half the time)
            s = n + i
            dist, pred = dijkstra(g, indices=s, return_predecessors=True, limit=direct[i])
            node, chain = pred[n + b + i], []
            while node != s:  # always reachable: the direct edge a → b exists
                chain.append(int(node))
                node = pred[node]
            chains.append(chain[::-1])
            totals[i] = dist[n + b + i]
        return chains, totals


def has_data_graph(aae: nn.Module) -> bool:
    """Whether the AAE carries a stored data graph (:func:`attach_data_graph`)."""
    return getattr(aae, "data_neighbours", None) is not None


def stored_edges(aae: nn.Module) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """The stored data graph: (node latents (N, d), (neighbours (N, k), lengths (N, k)))."""
    if not has_data_graph(aae):
        raise ValueError(
            'the graph over the data (neighbours="data") needs images= training images, or an '
            "AAE that stores that graph: `latentnav train-aae` does, or call "
            "attach_data_graph(aae, train_images) and save the AAE"
        )
    return aae.data_latents, (aae.data_neighbours, aae.data_lengths)


def attach_data_graph(
    aae: nn.Module, images: torch.Tensor, k: int = 20, invert_above: float | None = 0.95
) -> DataGraph:
    """The images' own k-NN graph (``neighbours="data"``) over ``data_bank(aae, images,
    invert_above=...)``, stored on the AAE (``aae.data_latents``, ``data_neighbours``,
    ``data_lengths``) so that its checkpoint carries it and ``Navigator(aae)`` needs no images:
    the nodes' decoded frames then stand in for the images. ``images``: (N, *image_shape)."""
    bank = data_bank(aae, images, invert_above=invert_above)
    graph = DataGraph(aae, bank, min(k, len(bank) - 1), neighbours="data", images=images)
    nbr, length = graph.edges
    aae.data_latents = bank
    aae.data_neighbours, aae.data_lengths = nbr.int().to(bank.device), length.to(bank.device)
    return graph


def resample(
    points: torch.Tensor, frames: torch.Tensor, steps: int, snap: bool = False
) -> torch.Tensor:
    """A polyline ``points: (M, d)`` with decoded ``frames: (M, P)`` → (T + 1, d) points at equal
    decoded arc length, linear in latent space between consecutive points; ``snap`` (when
    M ≥ T + 1): the polyline's own points nearest those arc positions instead, distinct and in
    order, so every frame decodes a bank latent."""
    seg = (frames[1:] - frames[:-1]).norm(dim=-1).to(points)
    if not (snap and len(points) >= steps + 1):
        return equal_arc(points[None], seg[None], steps)[0]
    cum = torch.cat([seg.new_zeros(1), seg.cumsum(0)])
    target = torch.linspace(0, float(cum[-1]), steps + 1, dtype=points.dtype)
    nearest = (cum[None] - target[:, None]).abs().argmin(1).tolist()
    chosen, last = [0], len(points) - 1
    for k in range(1, steps):  # in order, distinct, leaving room for the rest
        chosen.append(min(max(nearest[k], chosen[-1] + 1), last - (steps - k)))
    return points[chosen + [last]]


@register_method("graph")
class GraphPath(Method):
    """``GraphPath(aae, bank, steps=32, k=20, power=3.0)`` (chosen on dev pairs, RESULTS §6.13);
    ``bank`` defaults to ``aae.latent_bank`` (stored by ``latentnav train-aae``). With
    ``images`` (N, *image_shape), training images: the graph over the data itself
    (``neighbours="data"``), its bank ``data_bank(aae, images, invert_above=invert)`` unless given
    (then one latent per image), and ``snap`` on by default, so every frame decodes a bank latent
    where the chain is long enough. ``graph=`` a built :class:`DataGraph` (shared between
    methods); ``callback`` sees each point k = 1..T as ``{"k", "z"}``."""

    def __init__(
        self,
        aae: nn.Module,
        bank: torch.Tensor | None = None,
        steps: int = 32,
        k: int = 20,
        power: float = 3.0,
        neighbours: str | None = None,
        snap: bool | None = None,
        hop: float | None = None,
        images: torch.Tensor | None = None,
        invert: float | None = 0.95,
        graph: DataGraph | None = None,
    ):
        super().__init__(aae)
        if neighbours is None:  # a given graph's own; over the data when images are given
            own = graph.neighbours if graph is not None else None
            neighbours = own or ("data" if images is not None else "latent")
        self.steps = check_steps(steps)
        self.snap = bool(neighbours == "data" if snap is None else snap)
        self.invert, edges = None, None
        if graph is None:
            if bank is None and images is not None:
                bank, self.invert = data_bank(aae, images, invert_above=invert), invert
            elif bank is None and neighbours == "data":  # the data graph the checkpoint stores
                bank, edges = stored_edges(aae)
                self.invert = "stored"
            bank = getattr(aae, "latent_bank", None) if bank is None else bank
            if bank is None:
                raise ValueError(
                    "the graph method needs bank= (N, d): encoded training latents, e.g. "
                    "data_bank(aae, train_images); `latentnav train-aae` stores them in the "
                    "checkpoint as aae.latent_bank (or pass images= training images, or graph= "
                    "a DataGraph)"
                )
            images = images if neighbours == "data" else None
            graph = DataGraph(aae, bank, k, power, neighbours, hop, images, edges)
        self.graph = graph

    def config(self) -> dict[str, Any]:
        return {
            "steps": self.steps,
            "k": self.graph.k,
            "power": self.graph.power,
            "neighbours": self.graph.neighbours,
            "hop": self.graph.hop,
            "snap": self.snap,
            "bank": len(self.graph.bank),
            "invert": self.invert,
        }

    def _path(self, z_a, z_b, callback):
        f_a, f_b = _decode_flat(self.aae, z_a).cpu(), _decode_flat(self.aae, z_b).cpu()
        chains, costs = self.graph.geodesics(z_a, z_b, f_a, f_b)
        bank, frames = self.graph.bank.to(z_a), self.graph.frames
        z = torch.stack(
            [
                resample(
                    torch.cat([z_a[i : i + 1], bank[chain], z_b[i : i + 1]]),
                    torch.cat([f_a[i : i + 1], frames[chain], f_b[i : i + 1]]),
                    self.steps,
                    self.snap,
                )
                for i, chain in enumerate(chains)
            ]
        )
        z[:, 0], z[:, -1] = z_a, z_b
        if callback is not None:
            for k in range(1, self.steps + 1):
                callback({"k": k, "z": z[:, k]})
        records = {
            "hops": torch.tensor([len(c) for c in chains], dtype=torch.int64, device=z.device),
            "cost": torch.as_tensor(costs, dtype=z.dtype, device=z.device),
        }
        return LatentPath(z, records, self.name, self.config())
