"""The AAE's phases and the joint score step under Lightning DDP (issue 15): one process is bit for
bit the pre-DDP step; two CPU processes (gloo) end where one process with the same global batch
ends; make_trainer and the CLI validate devices, nodes and strategy."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from _ddp_worker import EPOCHS, FORMAT, LOCAL_BATCH, build, global_order, images
from lightning.pytorch.strategies import DDPStrategy, SingleDeviceStrategy
from torch.utils.data import DataLoader, TensorDataset

from latentnav.checkpoint import load_tensors
from latentnav.cli_args import build_parser
from latentnav.training import AAETraining, JointTraining, make_trainer
from latentnav.training.aae import discriminator_loss, r1_penalty, reconstruction_loss
from latentnav.training.distributed import average_gradients, gather_batch, local_share
from latentnav.training.trainer import device_generator

ROOT = Path(__file__).resolve().parents[1]
WORKER_TIMEOUT_S = 240  # the worker needs ~10 s of CPU; a loaded machine stretches its wall time
TOLERANCE = 1e-6  # measured: 6e-8 after 8 steps (float32 rounding of halves' means vs the mean)


def _legacy_aae_step(self, batch, batch_idx):
    """AAETraining.training_step before DDP (commit 19ed358), logging left out."""
    x = batch[0]
    opt_ae, opt_d, opt_g = self.optimizers()[:3]
    aae, n = self.aae, x.shape[0]
    recon = reconstruction_loss(aae.decoder(aae.encoder(x)), x, self.config.reconstruction)
    opt_ae.zero_grad(set_to_none=True)
    self.manual_backward(recon)
    opt_ae.step()
    z_fake = aae.encoder(x).detach()
    if self._generator is None or self._generator.device != self.device:
        self._generator = torch.Generator(self.device).manual_seed(self.config.seed + 1)
    z_real = aae.prior.sample(n, generator=self._generator)
    z_real = z_real.requires_grad_(self.config.gradient_penalty > 0)
    logit_real, logit_fake = aae.discriminator(z_real), aae.discriminator(z_fake)
    d_loss = discriminator_loss(logit_real, logit_fake)
    if self.config.gradient_penalty > 0:
        d_loss = d_loss + self.config.gradient_penalty * r1_penalty(logit_real, z_real)
    opt_d.zero_grad(set_to_none=True)
    self.manual_backward(d_loss)
    opt_d.step()
    logit_gen = aae.discriminator(aae.encoder(x))
    g_loss = F.binary_cross_entropy_with_logits(logit_gen, torch.ones_like(logit_gen))
    opt_g.zero_grad(set_to_none=True)
    self.manual_backward(g_loss)
    opt_g.step()


class _LegacyAAE(AAETraining):
    training_step = _legacy_aae_step


class _LegacyJoint(JointTraining):
    def training_step(self, batch, batch_idx):
        """JointTraining.training_step before DDP (commit 19ed358), logging left out."""
        _legacy_aae_step(self, batch, batch_idx)
        score_opt = self.optimizers()[3]
        with torch.no_grad():
            z = self.aae.encoder(batch[0])
        seed = self.diffusion.config.seed + 3
        self._score_generator = device_generator(self._score_generator, self.device, seed)
        loss = self.diffusion.loss(z, generator=self._score_generator)
        score_opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        if self.diffusion.config.grad_clip > 0:
            clip = self.diffusion.config.grad_clip
            torch.nn.utils.clip_grad_norm_(self.diffusion.net.parameters(), clip)
        score_opt.step()
        self.diffusion.update_ema()


def _fit_one_process(module, order: torch.Tensor, batch_size: int) -> dict[str, torch.Tensor]:
    x, y = images()
    loader = DataLoader(TensorDataset(x[order], y[order]), batch_size=batch_size)
    make_trainer(EPOCHS, "cpu", None, False).fit(module, loader)
    return module.state_dict()


def _as(module, cls):
    module.__class__ = cls  # same weights, same optimisers: only the training step differs
    return module


@pytest.mark.parametrize("pair", [(AAETraining, _LegacyAAE), (JointTraining, _LegacyJoint)])
def test_one_process_is_bit_for_bit_the_pre_ddp_step(pair):
    new, old = pair
    order = torch.randperm(len(images()[0]), generator=torch.Generator().manual_seed(3))
    after_new = _fit_one_process(_as(build(), new), order, 16)
    after_old = _fit_one_process(_as(build(), old), order, 16)
    initial = build().state_dict()
    assert any(not torch.equal(initial[k], v) for k, v in after_new.items())
    for key, value in after_old.items():
        assert torch.equal(after_new[key], value), key


def _run_worker(out: Path) -> str:
    """``tests/_ddp_worker.py`` with 2 processes; killed with its children after the timeout."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    command = [sys.executable, str(ROOT / "tests" / "_ddp_worker.py"), str(out), "--devices", "2"]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group: rank 1 dies with it
    )
    try:
        output, _ = proc.communicate(timeout=WORKER_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"the DDP worker ran past {WORKER_TIMEOUT_S} s:\n{output[-4000:]}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, output[-4000:]
    return output


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> list[dict[str, torch.Tensor]]:
    out = tmp_path_factory.mktemp("ddp")
    _run_worker(out)
    return [load_tensors(out / f"rank{r}.safetensors", FORMAT)[0] for r in range(2)]


def test_two_processes_end_with_identical_weights(ranks):
    for key, value in ranks[0].items():
        assert torch.equal(ranks[1][key], value), key


def test_two_processes_match_one_process_with_the_global_batch(ranks):
    """2 × 8 images per step under DDP against 16 per step on one process, same images per step
    and same seeds, 8 steps of the joint run (AAE phases and score step, EMA included)."""
    initial = build().state_dict()
    one = _fit_one_process(build(), global_order(2), 2 * LOCAL_BATCH)
    local = _fit_one_process(build(), torch.arange(len(images()[0])), LOCAL_BATCH)
    floats = [k for k, v in one.items() if v.is_floating_point()]
    assert torch.equal(one["diffusion.ema_updates"], ranks[0]["diffusion.ema_updates"])
    gap = max((one[k] - ranks[0][k]).abs().max().item() for k in floats)
    moved = max((one[k] - initial[k]).abs().max().item() for k in floats)
    other_batches = max((local[k] - ranks[0][k]).abs().max().item() for k in floats)
    assert gap <= TOLERANCE
    assert moved > 1e3 * TOLERANCE and other_batches > 1e3 * TOLERANCE  # the check can fail


def test_distributed_pieces_on_one_process_change_nothing():
    p = torch.nn.Parameter(torch.ones(3))
    p.grad = torch.tensor([1.0, -2.0, 3.0])
    average_gradients([p], world_size=1)
    assert torch.equal(p.grad, torch.tensor([1.0, -2.0, 3.0]))
    x = torch.arange(6.0).view(3, 2)
    assert gather_batch(x, 1) is x
    draw = lambda m: torch.arange(float(m))  # noqa: E731
    assert torch.equal(local_share(draw, 2, rank=1, world_size=3), torch.tensor([2.0, 3.0]))
    assert torch.equal(local_share(draw, 4, rank=0, world_size=1), draw(4))


def test_make_trainer_picks_ddp_without_unused_parameter_search():
    assert isinstance(make_trainer(1, "cpu", None, False).strategy, SingleDeviceStrategy)
    for kwargs in ({"devices": 2}, {"strategy": "ddp"}, {"devices": 2, "strategy": "ddp_spawn"}):
        strategy = make_trainer(1, "cpu", None, False, **kwargs).strategy
        assert isinstance(strategy, DDPStrategy)
        assert strategy._ddp_kwargs["find_unused_parameters"] is False
    assert make_trainer(1, "cpu", None, False, devices=2).num_devices == 2
    assert make_trainer(1, "cpu", None, False, strategy="ddp_spawn").strategy._start_method == (
        "spawn"
    )


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"devices": 0}, "devices"),
        ({"devices": "2"}, "devices"),
        ({"devices": True}, "devices"),
        ({"num_nodes": 0}, "num_nodes"),
        ({"strategy": "fsdp"}, "strategy"),
        ({"strategy": None}, "strategy"),
    ],
)
def test_make_trainer_rejects_bad_values(kwargs, name):
    with pytest.raises(ValueError, match=f"^{name} must be"):
        make_trainer(1, "cpu", None, False, **kwargs)


@pytest.mark.parametrize("command", ["train-aae", "train"])
def test_cli_takes_devices_nodes_and_strategy(command, capsys):
    parser = build_parser()
    args = parser.parse_args([command, "--devices", "4", "--num-nodes", "2", "--strategy", "ddp"])
    assert (args.devices, args.num_nodes, args.strategy) == (4, 2, "ddp")
    args = parser.parse_args([command])
    assert (args.devices, args.num_nodes, args.strategy) == (1, 1, "auto")
    for bad in (["--devices", "0"], ["--strategy", "fsdp"], ["--num-nodes", "x"]):
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args([command, *bad])
        assert exit_.value.code == 2
        assert bad[0] in capsys.readouterr().err
