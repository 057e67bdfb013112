"""``latentnav`` command line: runs the subcommands that :mod:`latentnav.cli_args` parses (``demo``,
``train-aae``, ``train``, ``sample``, ``navigate``, ``train-guidance``); one-line errors, exit
statuses."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from latentnav._cli_checks import (
    USER_ERRORS,
    UsageError,
    check_accelerator,
    check_device,
    check_out,
)
from latentnav._signals import StopRequested
from latentnav.aae import AAEConfig
from latentnav.cli_args import build_parser, explicit_options
from latentnav.sampling import SAMPLERS
from latentnav.training import TrainConfig

__all__ = ["main", "build_parser", "UsageError"]


def _train_guidance(args: argparse.Namespace) -> dict:
    from latentnav.guidance_run import train_guidance_run
    from latentnav.time_discriminator import TimeDiscriminatorFitConfig

    config = TimeDiscriminatorFitConfig(
        max_steps=args.steps, seed=args.seed, progress=not args.no_progress
    )
    return train_guidance_run(
        args.bundle, args.data, args.out, samples=args.samples, sampler=args.sampler,
        hidden=args.hidden, config=config, device=args.device, progress=not args.no_progress,
    )  # fmt: skip


def _sample(args: argparse.Namespace) -> dict:
    import torch

    from latentnav.checkpoint import save_tensors
    from latentnav.joint import load_bundle
    from latentnav.viz import image_grid, save_figure

    if args.video and args.sampler == "prior":
        raise ValueError("--video needs a diffusion sampler, not 'prior'")
    aae, diffusion = load_bundle(args.bundle, args.device)
    if args.sampler == "prior":
        g = torch.Generator(args.device).manual_seed(args.seed)
        z, nfe, extras = aae.prior.sample(args.n, generator=g), 0, {}
    else:
        options = dict(args.option)
        recorder = None
        if args.video:
            from latentnav.video import TrajectoryRecorder

            if args.steps is None:  # an adaptive sampler reports its grid: give it one
                args.steps = SAMPLERS[args.sampler].default_steps or 48
            recorder = TrajectoryRecorder(every=max(1, args.steps // 48))  # ≈ 48 frames
            options["callback"] = recorder
        try:
            if args.guidance:
                from latentnav.guidance_run import guided_bundle_sample

                guidance = {
                    "weight": args.weight, "corrector_weight": args.corrector_weight,
                    "schedule": args.schedule, "t_min": args.t_min, "t_max": args.t_max,
                    "clip": args.clip, "boost_rounds": args.boost_rounds,
                    "boost_time": args.boost_time,
                }  # fmt: skip
                result = guided_bundle_sample(
                    diffusion, args.guidance, args.n, args.sampler, steps=args.steps,
                    seed=args.seed, guidance=guidance, **options,
                )  # fmt: skip
            else:
                result = diffusion.sample(
                    args.n, args.sampler, seed=args.seed, steps=args.steps, **options
                )
        except TypeError as err:  # an option the sampler does not take
            raise ValueError(f"--option: {err}") from err
        z, nfe = result.z, result.nfe
        extras = result.extras
    with torch.no_grad():
        images = aae.decode(z).cpu()
    out = Path(args.out)
    if args.video:
        from latentnav.video import decode_trajectory, export_video

        frames = decode_trajectory(aae.decoder, recorder.z[:, :16].transpose(0, 1)).cpu()
        export_video(frames, out / args.video, fps=12, columns=8, hold=6)
    save_figure(image_grid(images[:256], title=f"{args.sampler} samples"), out / "samples.png")
    save_tensors(out / "latents.safetensors", {"z": z, **extras}, "latentnav.latents/1", vars(args))
    summary = {"out": str(out), "n": args.n, "sampler": args.sampler, "nfe": nfe}
    if "log_ratio" in extras:  # guided: how many samples D_ψ still calls model samples
        summary["share_log_ratio_negative"] = round(
            float((extras["log_ratio"] < 0).float().mean()), 4
        )
    return summary


def _run_config(args: argparse.Namespace):
    from latentnav.runs import RunConfig

    prior: dict = {"name": args.prior}
    if args.prior == "mixture":
        prior["k"] = args.components
    model = AAEConfig(
        latent_dim=args.latent_dim,
        family=args.family,
        hidden=args.hidden,
        disc_hidden=args.disc_hidden,
        prior=prior,
    )
    train = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed)
    parallel = {"devices": args.devices, "num_nodes": args.num_nodes, "strategy": args.strategy}
    compass = None
    if args.compass_steps > 0:
        from dataclasses import replace

        from latentnav.compass import CompassConfig

        fit = replace(CompassConfig().fit, max_steps=args.compass_steps, seed=args.seed)
        compass = CompassConfig(fit=fit)
    if args.command != "train":
        return RunConfig(
            data=args.data, out_dir=args.out, accelerator=args.accelerator, model=model,
            train=train, compass=compass, **parallel,
        )  # fmt: skip
    from latentnav.joint import default_diffusion_config
    from latentnav.runs import JointRunConfig
    from latentnav.score_net import ScoreNetConfig
    from latentnav.sde import SDEConfig

    diffusion = default_diffusion_config(
        args.latent_dim,
        net=ScoreNetConfig(
            latent_dim=args.latent_dim, width=args.score_width, blocks=args.score_blocks
        ),
        sde=SDEConfig(name=args.sde),
        loss=args.loss,
        epochs=args.finetune_epochs,
        seed=args.seed,
    )
    return JointRunConfig(
        data=args.data,
        out_dir=args.out,
        accelerator=args.accelerator,
        model=model,
        train=train,
        compass=compass,
        diffusion=diffusion,
        **parallel,
    )


def _one_line(err: BaseException) -> str:
    text = " ".join(str(err).split()) or type(err).__name__
    plain = isinstance(err, UsageError | ValueError | OSError)
    return text if plain else f"{type(err).__name__}: {text}"


def _run(args: argparse.Namespace) -> dict:
    if args.command == "navigate":
        check_out(args.out)
        from latentnav.navigate_run import navigate_run

        return navigate_run(
            args.checkpoint, args.data, args.pairs, args.out, method=args.method,
            steps=args.steps, compass=args.compass, video=args.video, report=args.report,
            seed=args.seed, graph_data=args.graph_data,
        )  # fmt: skip
    if args.command in ("sample", "train-guidance"):
        check_device(args.device)
        check_out(args.out)
        return _sample(args) if args.command == "sample" else _train_guidance(args)
    if args.command in ("train", "train-aae") and args.resume:
        return _resume(args)
    check_accelerator(args.accelerator)
    check_out(args.out)
    if args.command == "demo":
        from latentnav.demo import DemoConfig, run_demo

        config = DemoConfig(out=args.out, data=args.data, seed=args.seed,
                            accelerator=args.accelerator)  # fmt: skip
        config = config.quick() if args.quick else config.full() if args.full else config
        summary = run_demo(config, not args.no_progress)
        return {"out": args.out, "report": str(Path(args.out) / "report.html"),
                "wall_time_s": round(summary["wall_time_s"], 1)}  # fmt: skip
    from latentnav.runs import train_aae_run, train_joint_run

    config = _run_config(args)
    run = train_joint_run if args.command == "train" else train_aae_run
    options = {k: v for k, v in vars(args).items() if k not in _RUN_FLAGS}
    _, metrics = run(config, not args.no_progress, overwrite=args.overwrite, options=options)
    return _summary(args.out, metrics)


# options about how a run is started, not what it computes: never stored, free with --resume
_RUN_FLAGS = ("command", "debug", "resume", "overwrite", "no_progress")


def _resume(args: argparse.Namespace) -> dict:
    """``--resume RUN``: the run's stored options; explicitly given ones must agree with them."""
    from latentnav.run_folder import RunFolder
    from latentnav.runs import resume_run

    folder = RunFolder(args.resume)
    record = folder.record()
    kind = "joint" if args.command == "train" else "aae"
    if record.get("kind") != kind:
        other = "train" if record.get("kind") == "joint" else "train-aae"
        raise UsageError(f"--resume {args.resume} is a '{other}' run: use latentnav {other}")
    stored = record.get("options") or {}
    given = explicit_options(args.argv)
    conflicts = []
    for dest, value in given.items():
        if dest in _RUN_FLAGS[:3] or dest == "no_progress":
            continue
        if dest == "out" and Path(value) == folder.out:
            continue
        if dest == "overwrite" or json.loads(json.dumps(value)) != stored.get(dest):
            flag = "--" + dest.replace("_", "-")
            conflicts.append(f"{flag} (run: {stored.get(dest, 'not stored')})")
    if conflicts:
        raise UsageError(
            f"--resume {args.resume} continues the run with its stored options "
            f"({folder.staging / 'run_config.json'}); these conflict: {', '.join(conflicts)}"
        )
    check_accelerator(record["config"]["accelerator"])
    _, metrics = resume_run(folder.out, progress=not args.no_progress)
    return _summary(str(folder.out), metrics)


def _summary(out: str, metrics: dict) -> dict:
    return {
        "out": out,
        "wall_time_s": round(metrics["wall_time_s"], 1),
        **{k: round(v, 4) for k, v in metrics["test"].items()},
    }


def _stop_line(err: BaseException, command: str) -> str:
    """``stopped by SIGTERM at epoch E step S; resume with: latentnav train-aae --resume RUN``."""
    text = str(err) or "interrupted"
    if getattr(err, "resumable", False):
        return f"{text}; resume with: latentnav {command} --resume {err.out}"
    if hasattr(err, "resumable"):
        return f"{text}; nothing to resume (the run had not started)"
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status: 0 done, 2 bad usage or input (one line on stderr), 1 an unexpected error
    (one line; ``--debug`` shows the traceback of either), 128 + signum when stopped by a signal
    (:class:`latentnav._signals.StopRequested`: 143 SIGTERM, 130 SIGINT or Ctrl-C)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exit_:  # argparse has printed usage and the error (or the help)
        return exit_.code if isinstance(exit_.code, int) else 2
    prefix = f"latentnav {args.command}"
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        summary = _run(args)
    except (KeyboardInterrupt, StopRequested) as err:
        if args.debug:
            raise
        print(f"{prefix}: {_stop_line(err, args.command)}", file=sys.stderr)
        return getattr(err, "exit_status", 130)
    except USER_ERRORS as err:
        if args.debug:
            raise
        print(f"{prefix}: error: {_one_line(err)}", file=sys.stderr)
        return 2
    except Exception as err:
        if args.debug:
            raise
        from lightning.fabric.utilities.exceptions import MisconfigurationException

        if isinstance(err, MisconfigurationException):
            print(f"{prefix}: error: {_one_line(err)}", file=sys.stderr)
            return 2
        if isinstance(err, FloatingPointError):  # NonFiniteLossError: the run diverged
            print(f"{prefix}: error: {' '.join(str(err).split())}", file=sys.stderr)
            return 1
        print(f"{prefix}: internal error: {_one_line(err)} (rerun with --debug)", file=sys.stderr)
        return 1
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
