"""Label-free classes (latentnav.navigation.clusters) on data whose clusters are known."""

import pytest
import torch

from latentnav.navigation.clusters import cluster_classifier, kmeans, spectral_clusters
from latentnav.navigation.graph import DataGraph, attach_data_graph


def agreement(found: torch.Tensor, truth: torch.Tensor) -> float:
    """Share of points whose cluster's majority true label is their own (purity)."""
    table = torch.zeros(int(found.max()) + 1, int(truth.max()) + 1, dtype=torch.int64)
    table.index_put_((found, truth), torch.ones_like(found), accumulate=True)
    return table.max(1).values.sum().item() / len(truth)


def blobs(n_per: int, centres: torch.Tensor, spread: float, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    truth = torch.arange(len(centres)).repeat_interleave(n_per)
    return centres[truth] + spread * torch.randn(len(truth), centres.shape[1], generator=g), truth


class Identity(torch.nn.Module):
    latent_dim = 2

    def decode(self, z):
        return z

    def encode(self, x):
        return x


def knn_edges(x: torch.Tensor, k: int):
    return DataGraph(Identity(), x, k, neighbours="data", images=x).edges


def test_kmeans_recovers_separated_blobs_and_is_seeded():
    x, truth = blobs(50, torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]), 0.5)
    labels = kmeans(x, 3, seed=0)
    assert agreement(labels, truth) == 1.0 and labels.dtype == torch.int64
    assert torch.equal(labels, kmeans(x, 3, seed=0))
    with pytest.raises(ValueError, match="clusters"):
        kmeans(x, 0)


def test_spectral_clusters_separate_two_rings_that_k_means_cannot():
    # Two concentric rings: k-means on the coordinates cuts them in half, the graph does not.
    angle = torch.arange(200) * (2 * torch.pi / 200)
    ring = torch.stack([angle.cos(), angle.sin()], 1)
    x, truth = torch.cat([ring, 3 * ring]), torch.arange(2).repeat_interleave(200)
    nbr, length = knn_edges(x, 5)
    labels = spectral_clusters(nbr, length, clusters=2, eigenvectors=2)
    assert agreement(labels, truth) == 1.0
    assert agreement(kmeans(x, 2), truth) < 0.8  # the known failure of k-means here
    assert torch.equal(labels, spectral_clusters(nbr, length, clusters=2, eigenvectors=2))


def test_spectral_clusters_of_touching_blobs_and_bad_inputs():
    centres = torch.tensor([[0.0, 0.0], [4.0, 0.0], [2.0, 3.5]])
    x, truth = blobs(100, centres, 0.8, seed=1)  # blobs that touch: one connected graph
    nbr, length = knn_edges(x, 10)
    assert agreement(spectral_clusters(nbr, length, clusters=3, eigenvectors=3), truth) > 0.95
    with pytest.raises(ValueError, match="eigenvectors"):
        spectral_clusters(nbr, length, eigenvectors=0)
    with pytest.raises(ValueError, match="edges"):
        spectral_clusters(nbr, length[:, :3])


def test_the_cluster_classifier_comes_from_the_stored_data_graph():
    from latentnav.aae import AAE, AAEConfig
    from latentnav.latent_classifier import LatentClassifierConfig

    torch.manual_seed(0)
    aae = AAE(AAEConfig(image_shape=(4,), latent_dim=2, hidden=(16,), disc_hidden=(8,))).eval()
    centres = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    x, truth = blobs(60, centres, 0.05, seed=2)
    with pytest.raises(ValueError, match="attach_data_graph"):
        cluster_classifier(aae, 3)
    attach_data_graph(aae, x.clamp(0, 1), k=6, invert_above=None)
    config = LatentClassifierConfig(epochs=200, batch_size=64)  # 180 points: more epochs
    classifier, report = cluster_classifier(aae, 3, eigenvectors=3, config=config)
    assert sorted(report["cluster_sizes"]) == [60, 60, 60] and report["num_classes"] == 3
    with torch.no_grad():
        found = classifier(aae.data_latents).argmax(1)
    assert agreement(found, truth) == 1.0  # the image clusters, read off the latents


def test_an_attached_cluster_classifier_travels_in_the_checkpoint_and_sets_the_default(tmp_path):
    from latentnav.aae import AAE, AAEConfig
    from latentnav.latent_classifier import LatentClassifierConfig
    from latentnav.navigation import Navigator, attach_cluster_classifier
    from latentnav.navigation.energy import DEFAULT_INK, EndpointClasses, default_energy, label_free

    torch.manual_seed(0)
    aae = AAE(AAEConfig(image_shape=(4,), latent_dim=2, hidden=(16,), disc_hidden=(8,))).eval()
    aae.compass = aae.discriminator
    centres = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    x, _ = blobs(20, centres, 0.05, seed=3)
    attach_data_graph(aae, x.clamp(0, 1), k=5, invert_above=None)
    free = label_free(aae, aae.compass, ink_weight=DEFAULT_INK)  # the stored latents: ink too
    assert default_energy(aae, aae.compass).config() == free.config()
    config = LatentClassifierConfig(epochs=5, hidden=(8,))
    report = attach_cluster_classifier(aae, 3, eigenvectors=40, config=config)  # 40 > N/2: 30
    assert sum(report["cluster_sizes"]) == 60 and aae.cluster_classifier.num_classes == 3
    energy = default_energy(aae, aae.compass)
    assert isinstance(energy.terms[-1], EndpointClasses)
    assert energy.terms[-1].classifier is aae.cluster_classifier
    assert Navigator(aae, "optimizer").method.config()["energy"] == energy.config()
    loaded = AAE.load(aae.save(tmp_path / "aae.safetensors"))
    z = torch.randn(7, 2)
    with torch.no_grad():
        assert torch.equal(loaded.cluster_classifier(z), aae.cluster_classifier(z))
    assert isinstance(default_energy(loaded, loaded.compass).terms[-1], EndpointClasses)
