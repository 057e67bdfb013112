"""Video export: MP4 that browsers play (H.264, yuv420p, even sizes), GIF with one palette, PNG
frames; red borders on flagged frames; atomic writes; denoising videos from a sampler callback."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from PIL import Image

from latentnav.sampling import sample
from latentnav.sde import VPSDE
from latentnav.video import TrajectoryRecorder, compose_frames, decode_trajectory, export_video


def _frames(p=3, n=7, size=9, seed=0):
    return torch.rand(p, n, 1, size, size, generator=torch.Generator().manual_seed(seed))


def _local_colour_tables(data: bytes) -> list[bool]:
    """For every image of a GIF file: whether it carries its own (local) colour table."""
    assert data[:3] == b"GIF"
    pos = 13 + (3 * 2 ** ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    tables = []

    def skip_sub_blocks(pos):
        while data[pos]:
            pos += data[pos] + 1
        return pos + 1

    while data[pos] != 0x3B:
        if data[pos] == 0x21:  # extension
            pos = skip_sub_blocks(pos + 2)
        else:  # image descriptor
            assert data[pos] == 0x2C
            flags = data[pos + 9]
            tables.append(bool(flags & 0x80))
            pos += 10 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
            pos = skip_sub_blocks(pos + 1)
    return tables


def test_mp4_decodes_back_as_h264_yuv420p_with_the_requested_fps_count_and_size(tmp_path):
    x = _frames()
    first = next(compose_frames(x, captions=["lerp", "slerp", "nav"], trace=torch.rand(3, 7)))
    out = export_video(
        x, tmp_path / "v.mp4", fps=12, captions=["lerp", "slerp", "nav"],
        trace=torch.rand(3, 7), hold=2,
    )  # fmt: skip
    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    assert meta["codec"] == "h264" and meta["pix_fmt"].startswith("yuv420p")
    assert meta["fps"] == 12 and meta["size"] == (first.shape[1], first.shape[0])
    assert first.shape[0] % 2 == 0 and first.shape[1] % 2 == 0
    assert sum(1 for _ in reader) == 7 + 2 * 2
    assert [p.name for p in tmp_path.iterdir()] == ["v.mp4"]  # no temp file left


def test_gif_has_one_shared_palette_and_red_borders_on_flagged_frames(tmp_path):
    x = _frames(p=2, n=5)
    flags = torch.zeros(2, 5, dtype=torch.bool)
    flags[1, 3] = True
    out = export_video(x, tmp_path / "v.gif", fps=5, flags=flags, scale=4)
    assert not any(_local_colour_tables(out.read_bytes()))
    gif = Image.open(out)
    assert gif.n_frames == 5 and gif.info["duration"] == 200
    composed = list(compose_frames(x, flags=flags, scale=4))
    assert gif.size == (composed[0].shape[1], composed[0].shape[0])
    border = (x.shape[-1] * 4 + 4, 0)  # top-left corner pixel of the second panel's border
    for k in range(5):
        gif.seek(k)
        pixel = gif.convert("RGB").getpixel(border)
        assert (pixel == (220, 30, 30)) == (k == 3), (k, pixel)


def test_png_frames_replace_an_old_folder_whole(tmp_path):
    folder = tmp_path / "frames"
    export_video(_frames(n=6), folder)
    export_video(_frames(n=3), folder, hold=1)
    assert sorted(p.name for p in folder.iterdir()) == [f"frame_{i:05d}.png" for i in range(5)]
    assert [p.name for p in tmp_path.iterdir()] == ["frames"]


def test_a_failed_export_leaves_the_previous_file_intact(tmp_path):
    target = tmp_path / "v.gif"
    export_video(_frames(), target)
    before = target.read_bytes()
    with pytest.raises(ValueError, match="non-finite"):
        export_video(torch.full((2, 3, 1, 4, 4), float("nan")), target)
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["v.gif"]


def test_a_writer_killed_mid_way_leaves_the_previous_file_intact(tmp_path):
    target = tmp_path / "v.mp4"
    export_video(_frames(), target)
    before = target.read_bytes()
    script = textwrap.dedent(f"""
        import sys, torch
        from latentnav.video import export_video
        print("start", flush=True)
        export_video(torch.rand(1, 4000, 1, 64, 64), {str(target)!r}, scale=2)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "start"
    deadline = time.monotonic() + 60
    temp = []
    while not temp and time.monotonic() < deadline:  # wait until the temp file has content
        temp = [p for p in tmp_path.iterdir() if p.name.startswith(".v.mp4.")]
        temp = [p for p in temp if p.stat().st_size > 0]
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert temp, "the export never started writing"
    assert target.read_bytes() == before


def test_bad_layouts_are_refused_with_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="frames must have shape"):
        export_video(torch.rand(3, 2, 5, 5), tmp_path / "v.gif")
    with pytest.raises(ValueError, match="captions must hold 3"):
        export_video(_frames(), tmp_path / "v.gif", captions=["a"])
    with pytest.raises(ValueError, match=r"flags must have shape \(3, 7\)"):
        export_video(_frames(), tmp_path / "v.gif", flags=torch.zeros(3, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match="fps must be"):
        export_video(_frames(), tmp_path / "v.gif", fps=0)
    assert not os.listdir(tmp_path)


def test_denoising_video_from_a_sampler_callback(tmp_path):
    sde = VPSDE()
    recorder = TrajectoryRecorder(every=5)
    sample(lambda z, t: -z, sde, (4, 9), "em", steps=30, callback=recorder,
           generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert recorder.z.shape == (6, 4, 9) and recorder.steps == 30
    decoder = torch.nn.Sequential(torch.nn.Linear(9, 16), torch.nn.Sigmoid(),
                                  torch.nn.Unflatten(1, (1, 4, 4)))  # fmt: skip
    frames = decode_trajectory(decoder, recorder.z.transpose(0, 1))  # (4 panels, 6 steps)
    assert frames.shape == (4, 6, 1, 4, 4)
    out = export_video(frames, tmp_path / "denoise.gif")
    assert Image.open(out).n_frames == 6
    assert np.asarray(Image.open(out).convert("RGB")).std() > 0
    with pytest.raises(ValueError, match="no step yet"):
        _ = TrajectoryRecorder().z


def test_recorder_joins_the_chunks_of_a_chunked_navigation():
    from latentnav.aae import AAE, AAEConfig
    from latentnav.navigation import make_method

    torch.manual_seed(0)
    aae = AAE(AAEConfig(image_shape=(6,), latent_dim=3, hidden=(8,), disc_hidden=(8,))).eval()
    nav = make_method("slerp", aae, steps=4)
    a, b = torch.randn(7, 3), torch.randn(7, 3)
    whole, chunked = TrajectoryRecorder("z"), TrajectoryRecorder("z")
    nav.path(a, b, callback=whole)
    nav.path(a, b, callback=chunked, chunk_size=3)
    assert chunked.z.shape == whole.z.shape and torch.equal(chunked.z, whole.z)
