"""Reference classifier (DESIGN.md §7): outputs, cache, determinism, safe storage."""

from __future__ import annotations

import json

import pytest
import torch

from latentnav.metrics import (
    ReferenceClassifier,
    ReferenceConfig,
    cache_root,
    data_fingerprint,
    reference_classifier,
)

pytest_plugins = ["_metrics_fixtures"]


def test_outputs_have_the_documented_shapes(reference):
    model, x = reference.classifier, reference.test.images[:50]
    logits = model.logits(x)
    assert logits.shape == (50, 10)
    assert model.features(x).shape == (50, reference.config.hidden)
    assert model.conv_features(x).shape == (50, reference.config.channels[0] * 49)
    probs = model.probs(x)
    assert torch.allclose(probs.sum(1), torch.ones(50), atol=1e-5)
    assert torch.allclose(model.energy(x), -torch.logsumexp(logits, 1), atol=1e-5)
    assert torch.allclose(model.features(x, batch_size=7), model.features(x), atol=1e-4)


def test_short_training_already_classifies(reference):
    acc = reference.classifier.accuracy(reference.test.images, reference.test.labels)
    assert acc > 0.8  # one short epoch of a narrow CNN; full config ≥ 99% (benchmarks/)


def test_cache_hit_loads_identical_weights_without_leftovers(reference):
    files = list((reference.cache_dir / "reference").iterdir())
    assert len(files) == 1 and files[0].suffix == ".safetensors"
    header_len = int.from_bytes(files[0].read_bytes()[:8], "little")
    header = json.loads(files[0].read_bytes()[8 : 8 + header_len])
    assert header["__metadata__"]["format"] == "latentnav.reference/1"
    train = reference.train
    again = reference_classifier(train.images, train.labels, reference.config, reference.cache_dir)
    assert again.fingerprint() == reference.classifier.fingerprint()
    assert len(list((reference.cache_dir / "reference").iterdir())) == 1


def test_training_is_deterministic_given_the_seed(reference):
    x, y = reference.train.images[:256], reference.train.labels[:256]
    tiny = ReferenceConfig(channels=(4, 8), hidden=16, epochs=1, batch_size=64, seed=3)
    state = torch.get_rng_state()
    a = ReferenceClassifier.fit(x, y, tiny, progress=False)
    b = ReferenceClassifier.fit(x, y, tiny, progress=False)
    assert torch.equal(torch.get_rng_state(), state)  # caller's RNG untouched
    assert a.fingerprint() == b.fingerprint()
    c = ReferenceClassifier.fit(x, y, ReferenceConfig(**{**tiny.__dict__, "seed": 4}), False)
    assert c.fingerprint() != a.fingerprint()


def test_cache_root_and_fingerprint(tmp_path, monkeypatch):
    monkeypatch.setenv("LATENTNAV_CACHE", str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env"
    assert cache_root(tmp_path / "arg") == tmp_path / "arg"
    x = torch.rand(4, 1, 8, 8)
    assert data_fingerprint(x) == data_fingerprint(x.clone())
    assert data_fingerprint(x) != data_fingerprint(x.flip(0))


def test_bad_input_names_the_argument(reference):
    with pytest.raises(ValueError, match="x"):
        reference.classifier.features(torch.rand(3, 1, 27, 28))
    with pytest.raises(ValueError, match="channels"):
        ReferenceConfig(channels=(8,))
    with pytest.raises(ValueError, match="labels"):
        ReferenceClassifier.fit(torch.rand(4, 1, 8, 8), torch.zeros(3, dtype=torch.int64))
