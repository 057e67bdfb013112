"""checkpoint: atomic writes (failures, SIGKILL, umask, non-regular targets, fsync) and
build_checked (header checked against a meta-device skeleton before anything is allocated)."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from latentnav.checkpoint import (
    CheckpointError,
    _umask,
    atomic_path,
    build_checked,
    load_tensors,
    read_header,
    save_tensors,
)

KIND = "test.kind/1"


def temps(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_failed_rename_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "w.safetensors"
    save_tensors(target, {"w": torch.arange(3.0)}, KIND, {"v": 1})

    def fail(src, dst):
        raise OSError("rename refused (simulated)")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="simulated"):
        save_tensors(target, {"w": torch.zeros(5)}, KIND, {"v": 2})
    monkeypatch.undo()
    tensors, config = load_tensors(target, KIND)
    assert config == {"v": 1}
    torch.testing.assert_close(tensors["w"], torch.arange(3.0))
    assert temps(tmp_path) == []


def test_error_inside_the_block_removes_the_temp(tmp_path):
    with pytest.raises(RuntimeError, match="writer failed"):
        with atomic_path(tmp_path / "out.json") as tmp:
            tmp.write_text("partial")
            raise RuntimeError("writer failed")
    assert list(tmp_path.iterdir()) == []


def test_writer_killed_mid_write_leaves_previous_file_loadable(tmp_path):
    target = tmp_path / "w.safetensors"
    save_tensors(target, {"w": torch.arange(4.0)}, KIND, {"v": 1})
    code = (
        "import torch\n"
        "from latentnav.checkpoint import save_tensors\n"
        "big = torch.ones(40_000_000)\n"  # 160 MB: the write takes a while
        "print('ready', flush=True)\n"
        f"save_tensors({str(target)!r}, {{'w': big}}, {KIND!r}, {{'v': 2}})\n"
        "print('done', flush=True)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 20
        while not temps(tmp_path) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.0005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert temps(tmp_path), "the writer was not killed inside its write (no temp file seen)"
    tensors, config = load_tensors(target, KIND)
    assert config == {"v": 1}
    torch.testing.assert_close(tensors["w"], torch.arange(4.0))


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002, 0o027])
def test_permissions_follow_the_umask(tmp_path, mask):
    old = os.umask(mask)
    try:
        assert _umask() == mask
        path = save_tensors(tmp_path / "w.safetensors", {"w": torch.zeros(1)}, KIND, {})
        with atomic_path(tmp_path / "m.json") as tmp:
            tmp.write_text("{}")
    finally:
        os.umask(old)
    for p in (path, tmp_path / "m.json"):
        assert p.stat().st_mode & 0o777 == 0o666 & ~mask, oct(p.stat().st_mode)


def _targets(tmp_path):
    folder = tmp_path / "folder"
    folder.mkdir()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    links = {}
    for name, dest in (("to_folder", folder), ("to_fifo", fifo), ("to_devnull", "/dev/null")):
        links[name] = tmp_path / name
        links[name].symlink_to(dest)
    return {"folder": folder, "fifo": fifo, **links}


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs and symlinks")
@pytest.mark.parametrize(
    "name,what",
    [
        ("folder", "a directory"),
        ("fifo", "a FIFO"),
        ("to_folder", "a directory"),
        ("to_fifo", "a FIFO"),
        ("to_devnull", "a character device"),
    ],
)
def test_non_regular_targets_are_refused(tmp_path, name, what):
    target = _targets(tmp_path)[name]
    before = os.stat(target)
    with pytest.raises(FileExistsError, match=f"{target.name} is {what}.*not a regular file"):
        save_tensors(target, {"w": torch.zeros(1)}, KIND, {})
    after = os.stat(target)
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    assert temps(tmp_path) == []


def test_a_symlink_to_a_regular_file_is_replaced_not_written_through(tmp_path):
    real = save_tensors(tmp_path / "real.safetensors", {"w": torch.ones(2)}, KIND, {"v": 1})
    link = tmp_path / "link.safetensors"
    link.symlink_to(real)
    save_tensors(link, {"w": torch.zeros(2)}, KIND, {"v": 2})
    assert not link.is_symlink()
    assert load_tensors(link, KIND)[1] == {"v": 2}
    assert load_tensors(real, KIND)[1] == {"v": 1}


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to name fds")
def test_file_and_folder_are_fsynced(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def spy(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    target = tmp_path / "w.safetensors"
    save_tensors(target, {"w": torch.zeros(1)}, KIND, {})
    assert len(synced) == 2
    assert os.path.basename(synced[0]).startswith(".w.safetensors.")  # the temp, before rename
    assert synced[1] == str(tmp_path)


# ---- build_checked -------------------------------------------------------------------------


class Net(nn.Module):
    def __init__(self, width: int, depth: int = 1):
        super().__init__()
        self.layers = nn.Sequential(
            *[nn.Linear(3 if i == 0 else width, width) for i in range(depth)]
        )
        self.register_buffer("count", torch.zeros((), dtype=torch.int64))


def net_factory(config):
    return Net(config["width"], config.get("depth", 1))


def save_net(path, net, config):
    return save_tensors(path, net.state_dict(), KIND, config)


def test_build_checked_round_trip_leaves_global_rng_alone(tmp_path):
    torch.manual_seed(0)
    net = Net(4, depth=2)
    net.count += 7
    path = save_net(tmp_path / "n.safetensors", net, {"width": 4, "depth": 2})
    state = torch.get_rng_state()
    loaded = build_checked(net_factory, path, KIND)
    assert torch.equal(torch.get_rng_state(), state)
    for key, value in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert loaded.state_dict()["count"].dtype == torch.int64


def test_read_header_gives_shapes_without_data(tmp_path):
    path = save_net(tmp_path / "n.safetensors", Net(4), {"width": 4})
    specs, config = read_header(path, KIND)
    assert config == {"width": 4}
    assert specs["layers.0.weight"] == ((4, 3), "F32")
    assert specs["count"] == ((), "I64")


@pytest.mark.parametrize(
    "config,tensors_of,message",
    [
        ({"width": 5}, {"width": 4}, "shape mismatch at 'layers.0.bias': \\(4,\\) vs \\(5,\\)"),
        ({"width": 4, "depth": 2}, {"width": 4}, "missing tensor 'layers.1.bias'"),
        ({"width": 4}, {"width": 4, "depth": 2}, "unexpected tensor 'layers.1.bias'"),
    ],
)
def test_mismatch_names_the_first_key(tmp_path, config, tensors_of, message):
    path = save_net(tmp_path / "n.safetensors", net_factory(tensors_of), config)
    with pytest.raises(CheckpointError, match=message):
        build_checked(net_factory, path, KIND)


def test_dtype_mismatch_is_refused(tmp_path):
    path = save_net(tmp_path / "n.safetensors", Net(4).double(), {"width": 4})
    with pytest.raises(CheckpointError, match="dtype mismatch at 'layers.0.bias': F64 vs F32"):
        build_checked(net_factory, path, KIND)


def test_oversized_config_is_refused_before_allocation(tmp_path):
    calls = []

    def factory(config):
        calls.append(torch.empty(0).device.type)  # where the factory builds its tensors
        return net_factory(config)

    path = save_net(tmp_path / "n.safetensors", Net(4), {"width": 4_000_000_000})
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match="shape mismatch"):
        build_checked(factory, path, KIND)
    assert time.perf_counter() - start < 1.0
    assert calls == ["meta"]  # never built for real


def test_bad_config_is_a_checkpoint_error(tmp_path):
    path = save_net(tmp_path / "n.safetensors", Net(4), {"depth": 1})
    with pytest.raises(CheckpointError, match="invalid test.kind/1 config: 'width'"):
        build_checked(net_factory, path, KIND)


def test_prefix_selects_one_part_of_a_bundle(tmp_path):
    a, b = Net(4), Net(6)
    tensors = {f"a.{k}": v for k, v in a.state_dict().items()}
    tensors |= {f"b.{k}": v for k, v in b.state_dict().items()}
    path = save_tensors(tmp_path / "bundle.safetensors", tensors, KIND, {"a": 4, "b": 6})
    loaded_a = build_checked(lambda c: Net(c["a"]), path, KIND, prefix="a.")
    loaded_b = build_checked(lambda c: Net(c["b"]), path, KIND, prefix="b.")
    torch.testing.assert_close(loaded_a.layers[0].weight, a.layers[0].weight)
    torch.testing.assert_close(loaded_b.layers[0].weight, b.layers[0].weight)
    with pytest.raises(CheckpointError, match="shape mismatch at 'layers.0.bias'"):
        build_checked(lambda c: Net(c["a"]), path, KIND, prefix="b.")


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.parametrize("style", ["raw_pickle", "torch_save"])
def test_a_pickle_renamed_safetensors_is_refused_without_running(tmp_path, style):
    import pickle

    marker = str(tmp_path / "pwned")
    path = tmp_path / "evil.safetensors"
    if style == "raw_pickle":
        path.write_bytes(pickle.dumps(Evil(marker)))
    else:
        torch.save({"layers.0.weight": torch.zeros(4, 3), "evil": Evil(marker)}, path)
    with pytest.raises(CheckpointError, match="evil.safetensors is not a readable safetensors"):
        build_checked(net_factory, path, KIND)
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_tensors(path, KIND)
    assert not os.path.exists(marker)


def test_truncated_and_missing_files(tmp_path):
    path = save_net(tmp_path / "n.safetensors", Net(64), {"width": 64})
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        build_checked(net_factory, tmp_path / "nope.safetensors", KIND)
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="cut.safetensors"):
        build_checked(net_factory, cut, KIND)
    odd = tmp_path / "odd.safetensors"
    save_file({"w": torch.zeros(1)}, str(odd), metadata={"format": KIND, "config": "[1, 2]"})
    with pytest.raises(CheckpointError, match="config of type list"):
        build_checked(net_factory, odd, KIND)
