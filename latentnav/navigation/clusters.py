"""Classes without labels: spectral clusters of the data graph (DESIGN.md §3; issue 12, "a
representation whose clusters are the classes, learned without labels").

The images' own k-NN graph (:func:`~latentnav.navigation.graph.attach_data_graph`, stored by
``latentnav train-aae``) weighted by a self-tuning heat kernel, w_ij = exp(−ℓ_ij² / (σ_i σ_j)) with
σ_i the distance to i's k-th neighbour, symmetrised by the larger weight; regularised by τ/N on
every pair, τ = ``regularise`` × the mean degree (Amini et al. 2013; Qin and Rohe 2013: it joins
stray components, which would otherwise each take an eigenvector, and keeps Lanczos off degenerate
eigenvalues); its normalised affinity A = D_τ^{−1/2} (W + τ/N 11ᵀ) D_τ^{−1/2}, applied without
forming the dense term; the ``eigenvectors`` leading eigenvectors of A (scipy ``eigsh``), each
row scaled to unit length (Ng, Jordan and Weiss 2001); k-means with k-means++ starts, the run of
lowest inertia out of ``restarts``. :func:`cluster_classifier` fits p(c | z) on the graph's node
latents, the ``classifier`` of :func:`~latentnav.navigation.energy.with_classes`, so that "stay in
the endpoints' classes" needs no labels (RESULTS §6.14). :func:`attach_cluster_classifier` stores it
in the AAE (``aae.cluster_classifier``, saved with the checkpoint; ``latentnav train-aae`` does so),
and the path optimiser's default energy is then ``with_classes`` on it (RESULTS §6.14).

Shapes: neighbours, lengths (N, k); labels (N,) int64 in 0..clusters−1.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from latentnav.latent_classifier import LatentClassifier, LatentClassifierConfig

__all__ = ["spectral_clusters", "kmeans", "cluster_classifier", "attach_cluster_classifier"]


def kmeans(
    x: torch.Tensor, clusters: int, restarts: int = 10, iterations: int = 100, seed: int = 0
) -> torch.Tensor:
    """Lloyd's k-means on rows of ``x`` (N, m), k-means++ starts, the lowest-inertia run of
    ``restarts`` → labels (N,) int64."""
    if not (isinstance(clusters, int) and 1 <= clusters <= len(x)):
        raise ValueError(f"clusters must be an int in [1, N = {len(x)}], got {clusters!r}")
    g = torch.Generator().manual_seed(seed)
    x = x.double()
    best, best_inertia = None, float("inf")
    for _ in range(restarts):
        centres = x[torch.randint(len(x), (1,), generator=g)]
        for _ in range(1, clusters):  # k-means++: the next centre ∝ squared distance
            d2 = torch.cdist(x, centres).square().amin(1)
            centres = torch.cat([centres, x[torch.multinomial(d2 + 1e-30, 1, generator=g)]])
        for _ in range(iterations):
            labels = torch.cdist(x, centres).argmin(1)
            moved = torch.zeros_like(centres).index_add_(0, labels, x)
            count = torch.bincount(labels, minlength=clusters).double()[:, None]
            new = torch.where(count > 0, moved / count.clamp_min(1), centres)
            if torch.equal(new, centres):
                break
            centres = new
        labels = torch.cdist(x, centres).argmin(1)
        inertia = float((x - centres[labels]).square().sum())
        if inertia < best_inertia:
            best, best_inertia = labels, inertia
    return best.long()


def spectral_clusters(
    neighbours: torch.Tensor,
    lengths: torch.Tensor,
    clusters: int = 10,
    eigenvectors: int = 20,
    seed: int = 0,
    regularise: float = 0.01,
) -> torch.Tensor:
    """Spectral clusters of the k-NN graph ``neighbours`` (N, k) int with edge ``lengths`` (N, k)
    → labels (N,) int64 (module docstring)."""
    from scipy.sparse.linalg import LinearOperator, eigsh

    from latentnav.navigation.graph import _check_edges, knn_matrix

    n = len(neighbours)
    if not (isinstance(eigenvectors, int) and 1 <= eigenvectors < n):
        raise ValueError(f"eigenvectors must be an int in [1, N − 1], got {eigenvectors!r}")
    if not regularise >= 0:
        raise ValueError(f"regularise must be ≥ 0, got {regularise!r}")
    nbr, length = _check_edges((neighbours, lengths), n)
    length = length.double()
    sigma = length[:, -1].clamp_min(1e-12)  # σ_i: the distance to the k-th neighbour
    weight = torch.exp(-length.square() / (sigma[:, None] * sigma[nbr]))
    w = knn_matrix(nbr, weight.numpy())
    degree = np.asarray(w.sum(1)).ravel()
    tau = regularise * degree.mean()
    s = 1 / np.sqrt(degree + tau + 1e-300)

    def matvec(v: np.ndarray) -> np.ndarray:
        u = s * v.ravel()
        return s * (w @ u + tau / n * u.sum())

    affinity = LinearOperator((n, n), matvec=matvec, dtype=np.float64)
    start = np.random.default_rng(seed).standard_normal(n)  # eigsh's start: reproducible
    _, vectors = eigsh(affinity, k=eigenvectors, which="LA", tol=1e-6, v0=start)
    rows_unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)
    return kmeans(torch.as_tensor(rows_unit), clusters, seed=seed)


def cluster_classifier(
    aae: nn.Module,
    clusters: int = 10,
    eigenvectors: int = 20,
    seed: int = 0,
    config: LatentClassifierConfig | None = None,
    regularise: float = 0.01,
) -> tuple[LatentClassifier, dict[str, Any]]:
    """p(c | z) over the spectral clusters of the AAE's stored data graph, fitted on its node
    latents (``aae.data_latents``) → (classifier, report with the cluster sizes)."""
    from latentnav.latent_classifier import fit_latent_classifier
    from latentnav.navigation.graph import stored_edges

    latents, (nbr, length) = stored_edges(aae)
    labels = spectral_clusters(nbr.cpu(), length.cpu(), clusters, eigenvectors, seed, regularise)
    classifier, report = fit_latent_classifier(
        aae, None, labels, config=config or LatentClassifierConfig(seed=seed), latents=latents
    )
    report["cluster_sizes"] = torch.bincount(labels, minlength=clusters).tolist()
    return classifier, report


def attach_cluster_classifier(
    aae: nn.Module,
    clusters: int = 10,
    eigenvectors: int = 20,
    seed: int = 0,
    config: LatentClassifierConfig | None = None,
) -> dict[str, Any]:
    """Fit :func:`cluster_classifier` and attach it as ``aae.cluster_classifier`` (saved with the
    AAE) → its report. Graphs of fewer than 2 × ``eigenvectors`` nodes use N // 2 eigenvectors."""
    n = len(aae.data_neighbours) if getattr(aae, "data_neighbours", None) is not None else 0
    eigenvectors = max(1, min(eigenvectors, n // 2)) if n else eigenvectors
    classifier, report = cluster_classifier(aae, clusters, eigenvectors, seed, config)
    aae.cluster_classifier = classifier.eval()
    return report
