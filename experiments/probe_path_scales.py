"""Scale-free navigation defaults (issue 12): the data scales of each AAE, and the label-free
energy with fixed weights (``label_free``) against the same energy in the data's units
(``scale_free``) on MNIST pairs of different classes, judged by the OOD detectors of RESULTS §5.

    PYTHONPATH=../benchmarks python probe_path_scales.py --scales-only \
        --model /work/runs/joint_d8/bundle.safetensors
    PYTHONPATH=../benchmarks python probe_path_scales.py --n 100 \
        --model /work/runs/joint_d8/bundle.safetensors slerp label_free scale_free
Variants: ``slerp``, ``label_free[,key=value...]``, ``scale_free[,key=value...]`` (keys of the
presets: density_weight, cycle_weight, jump_weight, jump_power; and of the optimiser: it =
iterations, lr, tol; rep = reparametrize; ocoarse = OptimizerConfig.coarse; coarse=T₀: optimise
at T₀ first (cit iterations, default 100; cw = a factor on the point terms' weights there),
subdivide each segment by SLERP to T = 32, then run ``it`` iterations; decay = lr_decay; smooth =
the optimiser's path preconditioner α;
init_t0=t, init_n=n: start from the path of ``score,t0=t,corrections=n``; ginit=k: start from
the path of ``graph,k=k``; ``graph,data=1``:
the graph over the bank's images themselves, its bank inverted above the ``invert`` quantile;
``clusters,K=k[,class_weight=ν,...]``: ``with_classes`` with a latent classifier fitted on
label-free classes, k-means of a UMAP embedding of the ``--bank-images`` training images;
``spectral,K=k[,eig=m,...]``: the same on the spectral clusters of the checkpoint's data graph,
``latentnav.navigation.clusters.cluster_classifier``; ``labels[,...]``: the same with a latent
classifier on the digits of the ``--bank-images`` training images (the with-labels target); on
any optimiser variant ``cap=c[,sub=s,fcycle=0]`` adds a row for the same path's frames re-chosen
under the jump cap, ``CappedFrames`` (``fcycle=0``: by the point costs but the cycle; ``bank=m``:
also the m nearest data-bank latents of each dense point, ``BankFrames``); ``labels,both=ν``:
+ the stored label-free classes' term with weight ν; ``knn=λ[,kk=k]`` (labels or default): + a
density term on the data bank's k-NN density (``KNNCompass``);
``labels,conf=ν'``: + the probe's ``Ambiguity`` term (a frame between the endpoints' classes
costs); ``labels,ink=w[,iq=q]``: + the probe's ``Ink`` (floor: the q-quantile of the
reconstructions of ``--bank-images``' first 10 000); ``labels,ink_weight=w[,iq=q]`` and
``default,ink=w[,iq=q,iends=0]``: the library's Ink term (floor from the stored latents, at
q; ``iends=0``: not lowered to the fainter endpoint's norm);
``labels,front=1[,it=n]``: ``Navigator(aae, energy=that energy)``, the front door (data graph
first, the default optimiser, frames under the cap by ``choice_costs``);
``cap=1.2/1.3`` a row per ratio; ``mix=k``: k further candidate polylines toward SLERP;
``polish=n[,pcap=c']``: then n optimiser iterations from the capped frames, ``JumpCap(10, c')``
against them added).
``default``: ``Navigator(aae)`` as a user calls it (the checkpoint's graph and classes, the cap);
``default,key=value``: optimiser fields, preset keys (``density_weight=...``: the default energy
with that override), ``sub``/``ratio`` (the frame choice's subdivide and cap, its costs all the
point terms), ``fcycle=0`` (its costs without the cycle term, as ``Navigator(aae)``'s).
Any other method of the registry by name with its options (``score,t0=0.05,corrections=3``,
``sde,t0=0.1,substeps=20,guided=1``: the bundle's diffusion model, and ``--discriminator`` D_ψ when
guided). ``--pairs dev`` (default) tunes on the dev pairs of path_optimizer_sweep.py; ``--pairs
final`` the 1 000 evaluation pairs.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from evaluation_baselines import MNIST
from path_optimizer_sweep import pair_set
from probe_terms import Ambiguity, BankFrames, KNNCompass, ScorePull

from latentnav.aae import AAE
from latentnav.data import load_mnist
from latentnav.metrics import ood_detector, reconstruction_floor, reference_classifier
from latentnav.navigation import Navigator
from latentnav.navigation.auto import DataFirst
from latentnav.navigation.energy import (
    DEFAULT_INK,
    Density,
    EndpointClasses,
    Energy,
    default_energy,
    label_free,
    with_classes,
)
from latentnav.navigation.frames import DEFAULT_OPTIMIZER, CappedFrames, choice_costs
from latentnav.navigation.graph import data_bank
from latentnav.navigation.ink import FLOOR_QUANTILE, Ink, ink_floor
from latentnav.navigation.methods import make_method
from latentnav.navigation.optimizer import resample
from latentnav.navigation.scales import path_scales, scale_free


def load_model(path: str) -> tuple[AAE, object]:
    """(AAE, its latent diffusion model or None)."""
    if path.endswith("bundle.safetensors"):
        from latentnav.joint import load_bundle

        aae, diffusion = load_bundle(path)
        return aae.eval(), diffusion.eval()
    return AAE.load(path).eval(), None


FLOAT_OPTIONS = {
    "t0",
    "step_size",
    "eps",
    "weight",
    "lr",
    "tol",
    "power",
    "hop",
    "invert",
    "lr_decay",
    "ratio",
}


def method_options(kw: dict[str, float], diffusion, discriminator) -> dict:
    """Probe options → a registry method's keywords (ints where the method wants ints)."""
    out = {k: (v if k in FLOAT_OPTIONS or isinstance(v, str) else int(v))
           for k, v in kw.items() if k != "guided"}  # fmt: skip
    if kw.get("guided"):
        out["discriminator"] = discriminator
    return out if diffusion is None else {**out, "diffusion": diffusion}


DIFFUSION_METHODS = ("score", "sde")
PRESET_KEYS = ("density_weight", "cycle_weight", "jump_weight", "class_weight", "cap_weight",
               "cap_ratio")  # fmt: skip


def _value(v: str) -> float | str:
    try:
        return float(v)
    except ValueError:
        return v


def parse(spec: str) -> tuple[str, dict[str, float | str]]:
    name, *items = spec.split(",")
    return name, {k: _value(v) for k, v in (item.split("=") for item in items)}


def pseudo_labels(images: torch.Tensor, clusters: int, seed: int = 0) -> torch.Tensor:
    """Label-free classes: k-means (``clusters``) on a 10-d UMAP embedding of the images' pixels
    (n_neighbors 30, min_dist 0; umap-learn and scikit-learn, probe-only); the embedding and the
    labels are cached per image set."""
    import hashlib
    from pathlib import Path

    key = hashlib.sha1(images.numpy().tobytes()[::997]).hexdigest()[:12]
    root = Path.home() / ".cache" / "latentnav"
    cache = root / f"umap_kmeans_{key}_{len(images)}_{clusters}.pt"
    if cache.exists():
        return torch.load(cache)
    from sklearn.cluster import KMeans

    start = time.perf_counter()
    emb_file = root / f"umap_{key}_{len(images)}.pt"
    if emb_file.exists():
        emb = torch.load(emb_file).numpy()
    else:
        import umap

        model = umap.UMAP(n_neighbors=30, min_dist=0.0, n_components=10, random_state=seed)
        emb = model.fit_transform(images.flatten(1).float().numpy())
        root.mkdir(parents=True, exist_ok=True)
        torch.save(torch.as_tensor(emb), emb_file)
    labels = KMeans(clusters, n_init=10, random_state=seed).fit_predict(emb)
    labels = torch.as_tensor(labels, dtype=torch.int64)
    print(f"UMAP + k-means ({clusters}): {time.perf_counter() - start:.0f} s", flush=True)
    torch.save(labels, cache)
    return labels


def purity(clusters: torch.Tensor, labels: torch.Tensor) -> float:
    """Share of images whose cluster's majority label is their own (labels: evaluation only)."""
    table = torch.zeros(int(clusters.max()) + 1, 10, dtype=torch.int64)
    clusters = clusters.long()
    table.index_put_((clusters, labels.long()), torch.ones_like(clusters), accumulate=True)
    return table.max(1).values.sum().item() / len(labels)


def label_free_classifier(name, spec, kw, aae, graph_images, train, test):
    """``clusters``: a latent classifier on UMAP + k-means classes of ``graph_images``;
    ``spectral``: ``cluster_classifier`` on the checkpoint's data graph. Pops ``K`` (and ``eig``)
    from ``kw`` and prints the purity against the digits (evaluation only)."""
    n_clusters = int(kw.pop("K", 10))
    start = time.perf_counter()
    if name == "labels":  # with labels: the digits of graph_images (RESULTS §6.8's class term)
        from latentnav.latent_classifier import fit_latent_classifier

        classifier, report = fit_latent_classifier(
            aae, graph_images, train.labels[: len(graph_images)]
        )
    elif name == "clusters":
        from latentnav.latent_classifier import fit_latent_classifier

        pseudo = pseudo_labels(graph_images, n_clusters)
        print(f"{spec}: purity {purity(pseudo, train.labels[: len(pseudo)]):.3f}")
        classifier, report = fit_latent_classifier(aae, graph_images, pseudo)
    else:
        from latentnav.navigation.clusters import cluster_classifier

        classifier, report = cluster_classifier(aae, n_clusters, int(kw.pop("eig", 20)))
    with torch.no_grad():
        found = classifier(aae.encode(test.images)).argmax(1)
    print(f"{spec}: {report}, test purity {purity(found, test.labels):.3f} "
          f"({time.perf_counter() - start:.0f} s)", flush=True)  # fmt: skip
    return classifier.eval()


def probe_ink(aae, images: torch.Tensor, weight: float, q: float) -> Ink:
    """``labels,ink=w[,iq=q]``: the library's Ink with n = n₀ (no endpoint rule), n₀ the
    q-quantile of the norms of the reconstructions of ``images`` (all of them: the rows of
    RESULTS §6.22 marked "the probe's floor")."""
    with torch.no_grad():
        norms = torch.cat([aae.reconstruct(x).flatten(1).norm(dim=1) for x in images.split(2048)])
    return Ink(norms.quantile(q).item(), weight, endpoints=False)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("variants", nargs="*")
    p.add_argument("--model", required=True, help="an AAE with a compass, or a bundle")
    p.add_argument("--pairs", choices=("dev", "final"), default="dev")
    p.add_argument("--n", type=int, default=100)
    p.add_argument("--scale-images", type=int, default=10_000)
    p.add_argument("--scales-only", action="store_true")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--discriminator", help="D_ψ of `latentnav train-guidance` (guided=1)")
    p.add_argument(
        "--bank-images",
        type=int,
        default=0,
        help="graph: bank from the first N "
        "training images and the OOD detector's banks from the rest (0: all, both)",
    )
    p.add_argument("--keep", type=float, default=100.0, help="graph: data_bank percentile")
    p.add_argument("--json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    aae, diffusion = load_model(args.model)
    discriminator = None
    if args.discriminator:
        from latentnav.time_discriminator import TimeDiscriminator

        discriminator = TimeDiscriminator.load(args.discriminator).eval()
    train, test = load_mnist(MNIST, "train"), load_mnist(MNIST, "test")
    start = time.perf_counter()
    scales = path_scales(aae, aae.compass, train.images[: args.scale_images])
    print(f"d = {aae.latent_dim}: {scales} ({time.perf_counter() - start:.0f} s)", flush=True)
    if args.scales_only:
        return
    ia, ib = pair_set(test.labels, args.pairs, args.n)
    with torch.no_grad():
        za, zb = aae.encode(test.images[ia]), aae.encode(test.images[ib])
    judge_images = train.images[args.bank_images :] if args.bank_images else train.images
    graph_images = train.images[: args.bank_images] if args.bank_images else train.images
    detector = ood_detector(
        reference_classifier(train.images, train.labels), judge_images, test.images
    )
    floor = reconstruction_floor(detector, aae.reconstruct, test.images)["union"]
    print(f"floor (reconstructions of the test images): union OOD {floor:.4f}", flush=True)
    rows = {}
    bank = None
    for spec in args.variants:
        name, kw = parse(spec)
        opt = {}
        if name == "slerp":
            nav = Navigator(aae, "slerp", steps=32)
        elif name == "graph":  # the k-NN graph over the encoded training images
            bank = bank if bank is not None else data_bank(aae, graph_images, args.keep)
            options = method_options(kw, None, None)
            if options.pop("data", 0):  # the graph over the images themselves, bank inverted
                options["images"] = graph_images
            else:
                options["bank"] = bank
            nav = Navigator(aae, "graph", steps=32, **options)
        elif name == "default":  # exactly the front door: Navigator(aae[, **optimiser fields])
            preset = {k: kw.pop(k) for k in PRESET_KEYS if k in kw}  # the default energy's
            knn = {k: kw.pop(k) for k in ("knn", "kk") if k in kw}
            ink = {k: kw.pop(k) for k in ("ink", "iq", "iends") if k in kw}
            frames = {k: kw.pop(k) for k in ("sub", "ratio", "fcycle", "bank") if k in kw}
            options = method_options(kw, None, None)
            if ink:  # ink=w[,iq=q]: the library's Ink with weight w, floor at the q-quantile
                preset["ink_weight"] = ink.get("ink", DEFAULT_INK)
                preset["ink_floor"] = ink_floor(aae, quantile=ink.get("iq", FLOOR_QUANTILE))
                preset["ink_endpoints"] = bool(ink.get("iends", 1))
            if preset or knn:
                options["energy"] = default_energy(aae, aae.compass, **preset)
            if knn:  # knn=λ[,kk=k]: + Density(the bank's k-NN density, λ)
                term = Density(KNNCompass(aae, int(knn.get("kk", 10))), aae.prior, knn["knn"])
                options["energy"] = Energy(*options["energy"].terms, term)
            if frames:  # Navigator(aae) with those CappedFrames options, the data graph first
                base = make_method("optimizer", aae, steps=32, **{**DEFAULT_OPTIMIZER, **options})
                # all the point terms unless fcycle=0 (or bank=m): those but the cycle
                no_cycle = not frames.get("fcycle", 1) or "bank" in frames
                costs = choice_costs(base.energy) if no_cycle else None
                sub, ratio = int(frames.get("sub", 8)), frames.get("ratio", 1.2)
                if "bank" in frames:
                    capped = BankFrames(aae, base, ratio, sub, frames["bank"], costs)
                else:
                    capped = CappedFrames(aae, base, ratio=ratio, subdivide=sub, energy=costs)
                nav = Navigator(aae, DataFirst(aae, steps=32, fallback=capped))
            else:
                nav = Navigator(aae, steps=32, **options)
        elif name == "auto":  # Navigator(aae, data=images): the data graph first, else the default
            nav = Navigator(aae, data=graph_images, steps=32)
        elif name not in ("label_free", "scale_free", "clusters", "spectral", "labels"):
            model = diffusion if name in DIFFUSION_METHODS else None
            nav = Navigator(aae, name, steps=32, **method_options(kw, model, discriminator))
        else:
            keys = ("it", "lr", "tol", "coarse", "decay", "init_t0", "init_n", "sw", "st0",
                    "ginit", "cap", "sub", "mix", "polish", "pcap", "smooth", "smode", "cw",
                    "cit", "rep", "ocoarse", "fcycle", "bank", "knn", "kk", "conf", "ink",
                    "iq", "front")  # fmt: skip
            opt = {k: kw.pop(k) for k in keys if k in kw}
            if name == "label_free":
                energy = label_free(aae, aae.compass, **kw)
            elif name in ("clusters", "spectral", "labels"):  # with_classes on those classes
                classifier = label_free_classifier(name, spec, kw, aae, graph_images, train, test)
                both = kw.pop("both", 0)  # both=ν: + EndpointClasses(the stored clusters, ν)
                kw = {k: (int(v) if k == "jump_power" else v) for k, v in kw.items()}
                energy = with_classes(aae, aae.compass, classifier, **kw)
                if both:
                    clusters = EndpointClasses(aae.cluster_classifier, float(both))
                    energy = Energy(*energy.terms, clusters)
                if "ink" in opt:  # ink=w[,iq=q]: + the probe's Ink (floor from graph_images)
                    ink = probe_ink(aae, graph_images[:10000], opt["ink"], opt.get("iq", 0.05))
                    energy = Energy(*energy.terms, ink)
                elif "iq" in opt:  # iq=q with ink_weight=w: the library's, floor at q
                    energy = with_classes(
                        aae,
                        aae.compass,
                        classifier,
                        ink_floor=ink_floor(aae, quantile=opt["iq"]),
                        **kw,
                    )
                if "conf" in opt:  # conf=ν': + Ambiguity(classifier, ν')
                    energy = Energy(*energy.terms, Ambiguity(classifier, float(opt["conf"])))
                if "knn" in opt:  # knn=λ[,kk=k]: + Density(the bank's k-NN density, λ)
                    knn = KNNCompass(aae, int(opt.get("kk", 10)))
                    energy = Energy(*energy.terms, Density(knn, aae.prior, float(opt["knn"])))
            else:
                energy = scale_free(aae, aae.compass, scales, **kw)
            if "sw" in opt:  # sw=w, st0=t0: + ScorePull(w, t0)
                pull = ScorePull(diffusion, opt["sw"], opt.get("st0", 0.005))
                energy = Energy(*energy.terms, pull)
            fields = {"iterations": int(opt.get("it", 100)), "lr": opt.get("lr", 0.05),
                      "tol": opt.get("tol", 1e-4), "lr_decay": opt.get("decay", 1.0),
                      "smoothing": opt.get("smooth", 0.0),
                      "smooth": opt.get("smode", "gradient"),
                      "reparametrize": int(opt.get("rep", 0)),
                      "coarse": int(opt.get("ocoarse", 1))}  # fmt: skip
            if "front" in opt:  # front=1: the front door with this energy, Navigator(aae, energy=)
                front = {"iterations": int(opt["it"])} if "it" in opt else {}
                nav = Navigator(aae, energy=energy, steps=32, **front)
                opt = {}
            else:
                nav = Navigator(aae, "optimizer", energy=energy, steps=32, **fields)
        start = time.perf_counter()
        if "coarse" in opt:
            t0 = int(opt["coarse"])  # cw: the point terms × cw at T₀ (cw = 32 / T₀: the same sum)
            coarse_energy = energy.with_point_scale(opt["cw"]) if "cw" in opt else energy
            coarse = Navigator(aae, "optimizer", energy=coarse_energy, steps=t0,
                               iterations=int(opt.get("cit", 100)))  # fmt: skip
            start_path = resample(coarse.path(za, zb).z, 32)
            path = nav.method.from_start(start_path, za, zb)
        elif "ginit" in opt:  # start from the graph path (k = ginit, power 2)
            bank = bank if bank is not None else data_bank(aae, graph_images, args.keep)
            init = Navigator(aae, "graph", steps=32, bank=bank, k=int(opt["ginit"]))
            path = nav.method.from_start(init.path(za, zb).z, za, zb)
        elif "init_t0" in opt:  # start from the "score" method's path
            init = Navigator(aae, "score", steps=32, diffusion=diffusion, t0=opt["init_t0"],
                             corrections=int(opt.get("init_n", 30)))  # fmt: skip
            path = nav.method.from_start(init.path(za, zb).z, za, zb)
        else:
            path = nav.path(za, zb)
        seconds = time.perf_counter() - start
        found = [(spec, path, seconds)]
        if "cap" in opt:  # the same run's path, its frames re-chosen under the jump cap
            for ratio in str(opt["cap"]).split("/"):  # cap=1.2/1.3: one row per ratio
                k = int(opt.get("mix", 0))  # mix=k: λ = 1 − i / k, i = 1..k (k = 1: SLERP)
                mix = tuple(1 - i / k for i in range(1, k + 1))
                sub = int(opt.get("sub", 8))
                costs = None if opt.get("fcycle", 1) else choice_costs(energy)  # fcycle=0
                if "bank" in opt:  # bank=m: + the m nearest data-bank latents of each point
                    capped = BankFrames(aae, nav.method, float(ratio), sub, opt["bank"], costs)
                else:
                    capped = CappedFrames(aae, nav.method, float(ratio), sub, mix=mix, energy=costs)
                start = time.perf_counter()
                chosen = capped.select(path)
                found.append((f"{spec} [capped {ratio}]", chosen, time.perf_counter() - start))
                if "polish" in opt:  # then n iterations from the capped frames, + JumpCap(10, pcap)
                    from latentnav.navigation.energy import JumpCap

                    start = time.perf_counter()
                    capped_energy = Energy(*energy.terms, JumpCap(10.0, opt.get("pcap", 1.0)))
                    polish = Navigator(aae, "optimizer", energy=capped_energy, steps=32,
                                       iterations=int(opt["polish"]), lr_decay=0.1)  # fmt: skip
                    polished = polish.method.from_start(chosen.z, za, zb)
                    polished.records["over_cap"] = chosen.records["over_cap"]
                    label = f"{spec} [capped {ratio}, polished]"
                    found.append((label, polished, time.perf_counter() - start))
        for label, path, seconds in found:
            r = path.report(aae, detector=detector)
            rows[label] = {"union OOD": r.ood_rate["union"], "step max": r.step_max,
                           "≤1 class change": r.at_most_one_change, "seconds": seconds}  # fmt: skip
            for key in ("from_data", "over_cap"):
                if key in path.records:
                    rows[label][key] = path.records[key].float().mean().item()
            if "iterations" in path.records:
                rows[label]["mean iterations"] = path.records["iterations"].float().mean().item()
            print(f"{label:50s} " + "  ".join(f"{k} {v:.4f}" for k, v in rows[label].items()),
                  flush=True)  # fmt: skip
    if args.json:
        with open(args.json, "w") as f:
            record = {"d": aae.latent_dim, "scales": scales.to_dict(), "floor": floor, "rows": rows}
            json.dump(record, f, indent=1)


if __name__ == "__main__":
    main()
