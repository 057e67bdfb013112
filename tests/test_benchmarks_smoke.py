"""Every maintained benchmark script runs its whole code path with ``--smoke`` (see
benchmarks/README.md).

Scripts run in-process through ``main([...])``: one import of torch and Lightning for all of
them. The fixture restores what a script may change globally (torch's thread count, the global
RNG) and points the reference-classifier cache at a per-session folder, so the judge's narrow CNN
is trained once for all smokes and no user cache is read or written.
"""

from __future__ import annotations

import importlib
import json
import math
import sys
from pathlib import Path

import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

common = importlib.import_module("common")

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("latentnav-cache")


@pytest.fixture
def isolated(cache_dir, monkeypatch):
    """Shared cache, Agg backend, and torch threads / global RNG restored after the script."""
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.setenv("LATENTNAV_CACHE", str(cache_dir))
    monkeypatch.delenv(common.DATA_ENV, raising=False)
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        yield
    torch.set_num_threads(threads)


def run(script: str, out: Path, *args: str) -> Path:
    importlib.import_module(script).main([*args, "--smoke", "--out", str(out)])
    return out


def load(path: Path) -> dict:
    assert path.is_file(), f"{path} was not written"
    return json.loads(path.read_text())


def finite(*values: float) -> bool:
    return all(isinstance(v, int | float) and math.isfinite(v) for v in values)


# ------------------------------------------------------------------ common.py


def test_data_path_order(monkeypatch, tmp_path):
    """--data beats $LATENTNAV_MNIST, which beats the conventional path beside the repository."""
    monkeypatch.delenv(common.DATA_ENV, raising=False)
    default = common.default_data_path()
    assert default.name == "mnist.npz" and default.parent.name == "data"
    monkeypatch.setenv(common.DATA_ENV, str(tmp_path / "env.npz"))
    assert common.data_path(None) == tmp_path / "env.npz"
    assert common.data_path(str(tmp_path / "opt.npz")) == tmp_path / "opt.npz"


def test_old_option_names_and_smoke_out():
    """``--mnist`` stays an alias of ``--data``; a smoke without ``--out`` gets a fresh folder."""
    p = common.base_parser(None, out="benchmarks/out/x", out_required=True)
    assert p.parse_args(["--mnist", "m.npz"]).data == "m.npz"
    args = common.parse_args(p, ["--smoke"])
    assert args.out != "benchmarks/out/x" and Path(args.out).is_dir()
    with pytest.raises(SystemExit):
        common.parse_args(common.base_parser(None, out_required=True), [])


def test_pair_sets():
    """Pairs join images of different classes; dev pairs never repeat an evaluation pair."""
    labels = torch.arange(300) % 10
    a, b = common.different_class_pairs(labels, 100, 0)
    assert len(a) == 100 and bool((labels[a] != labels[b]).all())
    fa, fb = common.pair_set(labels, "final", 50)
    assert torch.equal(fa, a[:50]) and torch.equal(fb, b[:50])
    da, db = common.pair_set(labels, "dev", 50)
    final = set(zip(*common.different_class_pairs(labels, 1000, 0), strict=True))
    assert len(da) == 50 and not {(x, y) for x, y in zip(da, db, strict=True)} & final


# ------------------------------------------------------------------ the scripts' smokes


def test_evaluation_baselines(isolated, tmp_path):
    result = load(run("evaluation_baselines", tmp_path) / "evaluation.json")
    assert result["pairs"] == common.SMOKE_PAIRS and set(result["paths"]) == {"lerp", "slerp"}
    assert set(result["samples"]) == {"train (floor)", "prior samples", "reconstructions"}
    assert all(0 <= v <= 1 for v in result["floor"].values())
    assert (tmp_path / "paths_table.txt").is_file() and (tmp_path / "slerp_paths.png").is_file()


def test_navigator_mnist(isolated, tmp_path):
    from latentnav.compass import load_compass

    result = load(run("navigator_mnist", tmp_path) / "navigator.json")
    module = importlib.import_module("navigator_mnist")
    assert set(result["paths"]) == set(module.SMOKE_VARIANTS)
    assert result["pairs"] == common.SMOKE_PAIRS and result["steps"] == common.SMOKE_STEPS
    assert load_compass(tmp_path / "compass.safetensors").latent_dim == 4
    assert len(list(tmp_path.glob("strip_*.png"))) == len(module.SMOKE_VARIANTS)


def test_path_optimizer_sweep(isolated, tmp_path):
    rows = load(run("path_optimizer_sweep", tmp_path) / "path_optimizer_sweep.json")["rows"]
    variants = importlib.import_module("path_optimizer_sweep").SMOKE_VARIANTS
    assert list(rows) == ["slerp", *variants]
    assert rows["slerp"]["length / SLERP"] == pytest.approx(1.0, abs=0.01)  # SLERP against itself
    assert rows["init=density,it=0"]["seconds"] >= 0
    assert all(
        finite(r["union OOD"], r["step max"], r["log q p5 (interior)"]) for r in rows.values()
    )


def test_latent_diffusion_mnist(isolated, tmp_path):
    result = load(run("latent_diffusion_mnist", tmp_path) / "latent_diffusion.json")
    rows = result["rows"]
    assert set(rows) == set(importlib.import_module("latent_diffusion_mnist").ROWS)
    assert rows["prior p(z)"]["nfe"] == 0 and rows["PC, 100 steps"]["nfe"] == 40  # 20 steps × 2
    assert result["nll"]["n"] == 20 and finite(result["nll"]["model_nats"])
    assert set(result["parzen"]) == {"prior p(z)", "PC, 100 steps"}
    assert (tmp_path / "samples.png").is_file()


def test_finetune_more(isolated, tmp_path):
    from latentnav.joint import load_bundle

    run("finetune_more", tmp_path)
    aae, diffusion = load_bundle(tmp_path / "bundle.safetensors")
    untrained = common.tiny_diffusion(aae.latent_dim)
    assert diffusion.config.lr == 3e-4 and diffusion.config.epochs == 1
    pairs = zip(diffusion.state_dict().values(), untrained.state_dict().values(), strict=True)
    changed = [not torch.equal(a, b) for a, b in pairs]
    assert any(changed)  # the fine-tune ran


def test_aae_mnist(isolated, tmp_path):
    from latentnav.aae import AAE

    result = load(run("aae_mnist", tmp_path) / "benchmark.json")
    assert result["parzen"]["n_test"] == common.SMOKE_TEST and finite(result["parzen"]["sigma"])
    assert 0 <= result["test"]["d_acc"] <= 1
    assert AAE.load(tmp_path / "aae.safetensors").latent_dim == 8


def test_reference_classifier(isolated, tmp_path):
    result = load(run("reference_classifier", tmp_path) / "reference_classifier.json")
    assert result["n_train"] == common.SMOKE_TRAIN and result["n_test"] == common.SMOKE_TEST
    assert 0 <= result["test_accuracy"] <= 1


def test_aae_lr_sweep(isolated, tmp_path):
    result = load(run("aae_lr_sweep", tmp_path, "1e-3", "2e-4", "1e-3") / "aae_lr_sweep.json")
    assert result["lr"] == ["1e-3", "2e-4", "1e-3"] and result["epochs"] == 1
    assert result["n_images"] == common.SMOKE_TEST and finite(result["mmd2"])


def test_aae_mixture_d2(isolated, tmp_path):
    result = load(run("aae_mixture_d2", tmp_path, "0") / "aae_mixture_d2.json")
    assert result["gradient_penalty"] == 0 and 0 <= result["d_acc"] <= 1
    assert (tmp_path / "reconstructions.png").is_file()


def test_lines_manifold(isolated, tmp_path):
    result = load(run("lines_manifold", tmp_path) / "lines_manifold.json")
    (only,) = result["runs"]
    assert {"lerp", "slerp", "stepwise", "optimizer", "graph", "graph/data", "auto"} <= set(
        only["methods"]
    )
    assert "ode" in only["skipped"]  # needs a diffusion model


def test_navigator_toy(isolated, tmp_path):
    methods = load(run("navigator_toy", tmp_path) / "toy.json")["methods"]
    assert len(methods) == 6
    ratio = methods["slerp"]["relative_to_slerp"]  # SLERP against itself (NaN: no such points)
    assert ratio == 1.0 or math.isnan(ratio)
    assert all(0 <= m["low_density_share"] <= 1 for m in methods.values())
    assert (tmp_path / "dmap_navigated.png").is_file()


def test_navigator_speed(isolated, tmp_path):
    result = load(run("navigator_speed", tmp_path) / "navigator_speed.json")
    assert result["loop_agreement"] == 1.0  # the per-pair loop is the same algorithm
    assert all(r > 0 for r in result["rates"].values())


def test_diffusion_speed(isolated, tmp_path):
    rows = load(run("diffusion_speed", tmp_path / "speed.json"))["rows"]
    assert set(rows) == {"EM", "reverse diffusion", "PC", "ODE (rtol = atol = 1e-3)"}
    assert rows["PC"]["nfe"] == 2 * rows["EM"]["nfe"] == 40
    assert all(r["ours_s"] > 0 and finite(r["max_abs_diff_same_seed"]) for r in rows.values())


def test_density_ratio(isolated, tmp_path):
    result = load(run("density_ratio", tmp_path) / "density_ratio.json")
    assert len(result) == 3 and all(len(fits) == 1 for fits in result.values())
    assert all(-1 <= fits[0]["pearson"] <= 1 for fits in result.values())


def test_time_discriminator_fidelity(isolated, tmp_path):
    buckets = load(run("time_discriminator_fidelity", tmp_path) / "time_discriminator_d2.json")
    assert len(buckets["buckets"]) == 5
    assert all(0 <= b["accuracy"] <= 1 and -1 <= b["pearson"] <= 1 for b in buckets["buckets"])


def test_conditional_oracle(isolated, tmp_path):
    result = load(run("conditional_oracle", tmp_path) / "conditional_oracle.json")
    names = set(result) - {"times"}
    assert {"exact unconditional", "CDE", "DLSM guidance α=1", "CE guidance α=2"} <= names
    assert all(len(result[n]["by_time"]) == len(result["times"]) for n in names)


def test_guidance_toy(isolated, tmp_path):
    table = load(run("guidance_toy", tmp_path) / "guidance_toy.json")
    assert table["PC unguided"]["nfe"] == 40 and table["EM unguided"]["fake_share"] is None
    assert 0 <= table["EM guided"]["fake_share"] <= 1
    assert (tmp_path / "guidance_toy_trajectories.png").is_file()


def test_guidance_mnist(isolated, tmp_path):
    table = load(run("guidance_mnist", tmp_path) / "guidance_mnist.json")
    assert [(r["sampler"], r["weight"]) for r in table["dev"]] == [
        ("em", 0.0), ("em", 1.0), ("pc", 0.0), ("pc", 1.0)
    ]  # fmt: skip
    assert [r["boost"] for r in table["test"]] == [0, 0, 1, 0, 0, 1]
    assert table["dev"][2]["nfe"] == 40  # PC: 2 × 20 steps
    assert finite(*(r["fid"] for r in table["dev"] + table["test"]))
    assert set(table["parzen"]) == {"unguided", "guided"}
    assert [r["d_psi"] for r in table["joint"]["rows"]][:3] == ["unguided", "joint", "post hoc"]


def test_memory_scaling(isolated, tmp_path):
    importlib.import_module("memory_scaling").main(["--smoke", "--out", str(tmp_path / "m.json")])
    rows = json.loads((tmp_path / "m.json").read_text())
    assert {(r["task"], r["chunked"]) for r in rows} == {
        ("slerp", True), ("slerp", False), ("sample", True), ("sample", False)
    }  # fmt: skip
    assert all(r["finite"] for r in rows)


def test_conditional_mnist(isolated, tmp_path):
    rows = ["unconditional", "reconstructions", "CDE", "DLSM α=1"]
    table = load(run("conditional_mnist", tmp_path, "--rows", *rows) / "conditional.json")
    assert list(table["rows"]) == rows
    assert 0 <= table["rows"]["CDE"]["accuracy"] <= 1 and "accuracy" not in table["rows"][rows[0]]
    assert 0 <= table["rows"]["reconstructions"]["accuracy"] <= 1
    assert finite(*(r["fid"] for r in table["rows"].values()))
    inverse = load(run("conditional_mnist", tmp_path, "--inverse", "random_mask") / "inverse.json")
    assert finite(*(v for r in inverse["rows"].values() for v in r.values()
                    if isinstance(v, float)))  # fmt: skip


def test_conditional_mnist_refit_score_and_inverse_rows(isolated, tmp_path):
    rows = ["unconditional", "DLSM α=1"]
    args = ("--score", "refit", "--ema", "0.9", "--rows", *rows)
    table = load(run("conditional_mnist", tmp_path, *args) / "conditional.json")
    assert list(table["rows"]) == rows and finite(*(r["fid"] for r in table["rows"].values()))
    estimators = ["CDE", "VS-CMDE (σ_y 1 → 0.05)"]
    args = ("--inverse", "square_hole", "--inverse-rows", *estimators)
    inverse = load(run("conditional_mnist", tmp_path, *args) / "inverse.json")
    names = [f"square_hole: {r}" for r in [*estimators, "encode A⁺y", "G(E(x)) ceiling"]]
    assert list(inverse["rows"]) == names
    assert inverse["rows"][names[1]]["sampler"] == "em"
    assert inverse["args"]["inputs"] == 20  # --smoke's size, whatever the other options


def test_every_script_has_a_smoke():
    """Each script in benchmarks/ (but common.py) is exercised above."""
    tested = {name.removeprefix("test_") for name in globals() if name.startswith("test_")}
    scripts = {p.stem for p in BENCHMARKS.glob("*.py")} - {"common"}
    missing = scripts - tested
    assert not missing, f"benchmarks without a smoke test: {sorted(missing)}"
