"""The navigation interface contract, for every registered method (DESIGN.md §3).

Tolerances for "a batch of B equals B single calls": LERP, SLERP exact; the stepwise navigator and
the optimiser 1e-5 (batched matrix products round differently); the ODE 1e-4 (the adaptive solver
picks one step size for the whole batch; solved at rtol = atol = 1e-6).
"""

import pytest
import torch

from latentnav.aae import AAE, AAEConfig
from latentnav.diffusion import DiffusionConfig, LatentDiffusion
from latentnav.latent_classifier import LatentClassifier
from latentnav.navigation import METHODS, LatentPath, Navigator, make_method
from latentnav.networks import LatentDiscriminator
from latentnav.score_net import ScoreNetConfig

T, B, D = 6, 4, 3


@pytest.fixture(scope="module")
def aae():
    torch.manual_seed(0)
    model = AAE(AAEConfig(image_shape=(6,), latent_dim=D, hidden=(16,), disc_hidden=(16,)))
    model.compass = LatentDiscriminator(D, (16,))
    with torch.no_grad():  # a sharp compass, so the stepwise loop has something to correct
        model.compass.net[-1].weight.mul_(20)
    return model.eval()


@pytest.fixture(scope="module")
def diffusion():
    torch.manual_seed(1)
    net = ScoreNetConfig(latent_dim=D, width=16, blocks=1, embed_dim=8)
    return LatentDiffusion(DiffusionConfig(net=net)).eval()


OPTIONS = {
    "lerp": {"steps": T},
    "slerp": {"steps": T},
    "stepwise": {"steps": T, "max_corrections": 3},  # Langevin noise is drawn per batch
    "optimizer": {"steps": T, "iterations": 4},
    "ode": {"steps": T, "rtol": 1e-6, "atol": 1e-6},
    "score": {"steps": T, "corrections": 2},
    "sde": {"steps": T, "substeps": 4},  # noise drawn per batch, like stepwise's Langevin noise
    "class": {"steps": T, "iterations": 4},
    "graph": {"steps": T, "k": 3},  # bank: BANK
    "graph/data": {"steps": T, "k": 3},  # images: IMAGES, the bank their inverted encodings
    "auto": {"steps": T},  # images: IMAGES; fallback: the optimiser, 4 iterations
    "capped": {},  # base: the optimiser, 4 iterations
    "capped_fast": {"steps": T, "iterations": 4},
}
BANK = torch.randn(40, D, generator=torch.Generator().manual_seed(5))
IMAGES = torch.rand(40, 6, generator=torch.Generator().manual_seed(6))
RECORDS = {  # name → per point (True) or per pair (False)
    "lerp": {},
    "slerp": {},
    "stepwise": {"d_score": True, "corrections": True, "accepted": True},
    "optimizer": {"energy": False, "iterations": False, "d_score": True, "accepted": True},
    "ode": {},
    "score": {"correction": True},
    "sde": {"correction": True},
    "class": {"energy": False, "iterations": False, "log_p": True, "in_class": True},
    "graph": {"hops": False, "cost": False},
    "graph/data": {"hops": False, "cost": False},
    "auto": {"from_data": False, "hops": False},
    "capped": {"energy": False, "iterations": False, "frame_index": True, "over_cap": False},
    "capped_fast": {"energy": False, "iterations": False, "frame_index": True, "over_cap": False},
}
CALLS = {"lerp": T, "slerp": T, "stepwise": T, "optimizer": 4, "ode": 1, "score": T, "sde": T,
         "class": 4, "graph": T, "graph/data": T, "auto": 4, "capped": 4,
         "capped_fast": 4}  # fmt: skip
BATCH_TOLERANCE = {"lerp": 0.0, "slerp": 0.0, "stepwise": 1e-5, "optimizer": 1e-5, "ode": 1e-4,
                   "score": 1e-5, "sde": None, "class": 1e-5, "graph": 1e-5,
                   "graph/data": 1e-5, "auto": 1e-5, "capped": 1e-5,
                   "capped_fast": 1e-5}  # fmt: skip
DIFFUSION = ("ode", "score", "sde")


def method(name, aae, diffusion):
    options = dict(OPTIONS[name])
    if name in DIFFUSION:
        options["diffusion"] = diffusion
    if name == "class":  # a latent classifier, seeded: every call builds the same one
        torch.manual_seed(2)
        options["classifier"] = LatentClassifier(D, 3, hidden=(16,))
    if name == "graph":
        options["bank"] = BANK
    if name == "graph/data":
        options["images"] = IMAGES
    if name == "auto":  # with 40 images the chains are short: every pair falls back
        options["images"] = IMAGES
        options["fallback"] = make_method("optimizer", aae, steps=T, iterations=4)
    if name == "capped":
        options["base"] = make_method("optimizer", aae, steps=T, iterations=4)
    return make_method(name.split("/")[0], aae, **options)


def pairs(n=B, seed=3):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, D, generator=g), 1.5 * torch.randn(n, D, generator=g)


def test_every_registered_method_is_covered():
    # A new method needs its row here ("geodesic": stochman); "name/variant" rows are extra.
    assert set(METHODS) == {name.split("/")[0] for name in OPTIONS}


@pytest.fixture(params=sorted(OPTIONS))
def name(request):
    return request.param


def test_shapes_endpoints_records_and_finite_output(name, aae, diffusion):
    a, b = pairs()
    path = method(name, aae, diffusion).path(a, b)
    assert isinstance(path, LatentPath) and path.method == name.split("/")[0]
    assert path.z.shape == (B, T + 1, D) and torch.isfinite(path.z).all()
    assert torch.equal(path.z[:, 0], a) and torch.equal(path.z[:, -1], b)
    assert set(path.records) == set(RECORDS[name])
    for record, per_point in RECORDS[name].items():
        expected = (B, T + 1) if per_point else (B,)
        assert path.records[record].shape == expected, record
        assert torch.isfinite(path.records[record].float()).all(), record
    assert path.config["steps"] == T


def test_deterministic_for_a_seed(name, aae, diffusion):
    a, b = pairs()
    first = method(name, aae, diffusion).path(a, b)
    second = method(name, aae, diffusion).path(a, b)
    assert torch.equal(first.z, second.z)
    assert all(torch.equal(v, second.records[k]) for k, v in first.records.items())


def test_a_batch_equals_single_calls(name, aae, diffusion):
    a, b = pairs()
    m = method(name, aae, diffusion)
    batch = m.path(a, b)
    singles = LatentPath.cat([m.path(a[i], b[i]) for i in range(B)])
    tol = BATCH_TOLERANCE[name]
    if tol is None:
        pytest.skip(f"{name}: its noise is drawn for the whole batch (deterministic per seed)")
    torch.testing.assert_close(batch.z, singles.z, atol=tol, rtol=tol)


def test_callback_is_called_at_every_step(name, aae, diffusion):
    a, b = pairs()
    seen = []
    path = method(name, aae, diffusion).path(a, b, callback=seen.append)
    assert len(seen) == CALLS[name]
    assert all(isinstance(info, dict) and info["z"].shape[0] == B for info in seen)
    if name == "stepwise":
        assert [info["k"] for info in seen] == list(range(T))
        assert torch.equal(seen[-1]["z"], path.z[:, -1])
        assert {"logit", "corrections"} <= set(seen[0])
    if name == "optimizer":
        assert [info["i"] for info in seen] == list(range(4))
        assert all(info["energy"].shape == (B,) for info in seen)


BAD = [
    (lambda a, b: (a, b[:2]), ValueError, "same shape"),
    (lambda a, b: (a[:, :2], b[:, :2]), ValueError, "z_a must have latent dim d=3"),
    (lambda a, b: (a, b.clone().fill_(float("nan"))), ValueError, "z_b contains 12 non-finite"),
    (lambda a, b: (a.long(), b.long()), TypeError, "z_a must be a floating tensor"),
    (lambda a, b: (a[:0], b[:0]), ValueError, "z_a is an empty batch"),
    (lambda a, b: (a.tolist(), b), TypeError, "z_a must be a torch.Tensor"),
    (lambda a, b: (a[None], b[None]), ValueError, r"z_a must have shape \(B, d\)"),
    (lambda a, b: (a.double(), b.double()), ValueError, "dtype"),
]


@pytest.mark.parametrize("bad", BAD, ids=[m for _, _, m in BAD])
def test_bad_inputs_raise_clear_errors(name, aae, diffusion, bad):
    make_bad, error, message = bad
    with pytest.raises(error, match=message):
        method(name, aae, diffusion).path(*make_bad(*pairs()))


def test_unknown_names_and_missing_models_are_clear(aae):
    with pytest.raises(ValueError, match="unknown navigation method 'geodesik'; registered"):
        make_method("geodesik", aae)
    with pytest.raises(ValueError, match="needs the latent diffusion model"):
        make_method("ode", aae)


def test_front_door_default_is_the_label_free_optimizer_under_the_cap(aae):
    from latentnav.navigation import CappedFrames
    from latentnav.navigation.frames import choice_costs

    a, b = pairs()
    nav = Navigator(aae, steps=T, iterations=4)
    path = nav.path(a, b)
    assert path.method == "capped" and path.config["base"]["name"] == "optimizer"
    assert [t["term"] for t in path.config["base"]["energy"]] == [
        "smoothness", "max_jump", "density", "cycle"
    ]  # fmt: skip
    base = path.config["base"]
    assert (base["coarse"], base["reparametrize"], base["iterations"]) == (4, 1, 4)
    assert make_method("optimizer", aae).settings.reparametrize == 0  # the plain optimiser's own
    # the frames are chosen by the point terms but the cycle (density; classes where stored)
    assert [t["term"] for t in path.config["costs"]] == ["smoothness", "max_jump", "density"]
    base = make_method("optimizer", aae, steps=T, iterations=4, coarse=4, reparametrize=1)
    costs = choice_costs(base.energy)
    assert torch.equal(path.z, CappedFrames(aae, base=base, energy=costs).path(a, b).z)
    assert Navigator(aae).method.base.settings.iterations == 50
    plain = Navigator(aae, steps=T, iterations=4, coarse=1, reparametrize=0).path(a, b)
    base = make_method("optimizer", aae, steps=T, iterations=4)
    costs = choice_costs(base.energy)  # §6.15's optimiser (its frames chose by the cycle too)
    assert torch.equal(plain.z, CappedFrames(aae, base=base, energy=costs).path(a, b).z)
    assert not torch.equal(plain.z, path.z)
    # another start than SLERP runs at T (coarse to fine starts from SLERP)
    stepwise = Navigator(aae, steps=T, iterations=2, init="stepwise").method.base
    assert stepwise.settings.coarse == 1 and stepwise.settings.reparametrize == 1
    assert (path.records["over_cap"] >= 0).all() and path.records["frame_index"].shape == (B, T + 1)
    slerp = Navigator(aae, "slerp", steps=T).path(a, b)
    assert slerp.method == "slerp" and not torch.equal(slerp.z, path.z)


def test_front_door_without_a_compass_says_what_to_call():
    torch.manual_seed(0)
    bare = AAE(AAEConfig(image_shape=(6,), latent_dim=D, hidden=(16,), disc_hidden=(16,)))
    with pytest.raises(ValueError, match=r"latentnav\.compass\.fit_compass\(aae, images\)"):
        Navigator(bare)
    compass = LatentDiscriminator(D, (16,))
    path = Navigator(bare, compass=compass, steps=T, iterations=2).path(*pairs())
    assert path.z.shape == (B, T + 1, D)


def test_front_door_fits_a_missing_compass_on_first_use_from_given_data():
    from latentnav.compass import CompassConfig
    from latentnav.density_ratio import RatioFitConfig

    torch.manual_seed(0)
    bare = AAE(AAEConfig(image_shape=(6,), latent_dim=D, hidden=(16,), disc_hidden=(16,))).eval()
    data = torch.rand(400, 6, generator=torch.Generator().manual_seed(0))
    fit = RatioFitConfig(max_steps=60, batch_size=128, eval_every=20, patience=2, seed=0)
    config = CompassConfig(hidden=(16,), fit=fit)
    with pytest.warns(UserWarning, match="no compass; fitted one on 360 images"):
        nav = Navigator(bare, data=data, compass_config=config, steps=T, iterations=2)
    assert bare.compass is not None and 0 <= nav.compass_report["heldout_accuracy"] <= 1
    path = nav.path(*pairs())
    # The default now runs with the attached compass, exactly as with that compass passed in.
    same = Navigator(bare, data=data, compass=bare.compass, steps=T, iterations=2).path(*pairs())
    assert torch.equal(path.z, same.z)
    with pytest.raises(ValueError, match=r"data must be images \(N, \(6,\)\)"):
        Navigator(AAE(bare.config), data=torch.rand(30, 7))


def test_the_navigator_given_data_puts_the_data_first_and_keeps_its_optimiser(aae):
    from latentnav.navigation import CappedFrames, DataFirst, PathOptimizer

    nav = Navigator(aae, data=IMAGES, steps=T, iterations=2)
    capped = nav.method.fallback
    assert isinstance(nav.method, DataFirst) and isinstance(capped, CappedFrames)
    assert isinstance(capped.base, PathOptimizer) and capped.base.settings.iterations == 2
    assert nav.method.steps == T
    alone = Navigator(aae, steps=T).method  # no data: the optimiser's frames under the cap
    assert isinstance(alone, CappedFrames) and isinstance(alone.base, PathOptimizer)


def test_capped_fast_is_the_coarse_optimiser_with_the_jump_cap_under_the_cap(aae):
    from latentnav.navigation import CappedFrames, JumpCap
    from latentnav.navigation.energy import label_free

    a, b = pairs()
    fast = make_method("capped_fast", aae, steps=T, iterations=4)
    path = fast.path(a, b)
    assert path.method == "capped_fast" and path.config["base"]["coarse"] == 4
    assert make_method("capped_fast", aae).base.settings.iterations == 50
    energy = path.config["base"]["energy"]
    assert [t["term"] for t in energy] == ["smoothness", "max_jump", "jump_cap", "density", "cycle"]
    assert energy[2] == JumpCap(10.0, 1.2).config()  # the cap c of the frames, in the energy
    capped = label_free(aae, aae.compass, cap_weight=10.0, cap_ratio=1.2)
    base = make_method("optimizer", aae, steps=T, iterations=4, coarse=4, energy=capped)
    assert torch.equal(path.z, CappedFrames(aae, base=base).path(a, b).z)
