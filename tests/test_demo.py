"""`latentnav demo --quick`: every stage runs, and report.html references files that exist."""

import json
import re

import imageio_ffmpeg

from latentnav.cli import main


def test_quick_demo_writes_a_complete_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["report"] == str(out / "report.html")
    page = (out / "report.html").read_text()
    linked = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert {"paths.mp4", "samples_demo.png", "reconstructions.png", "report.json"} <= set(linked)
    for name in linked:
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert set(report["navigation"]) == {"LERP", "SLERP", "navigator (default)"}
    assert {"EM, unguided", "EM, guided (w = 1)"} <= set(report["sampling"]["rows"])
    assert all(r["fid"] >= 0 for r in report["sampling"]["rows"].values())
    meta = next(imageio_ffmpeg.read_frames(str(out / "paths.mp4")))
    assert meta["codec"] == "h264"
