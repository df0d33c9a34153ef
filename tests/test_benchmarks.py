"""The GPU benchmark scripts run end to end in their CPU ``--smoke`` mode (so they cannot rot between GPU loans).

The numbers they print on a CPU mean nothing; what is checked is that every stage runs and
prints its line, with the counts the tiny inputs imply.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from test_cli import REPO, affect_env
from test_prepare import SHARED

BENCH = REPO / "benchmarks"


def smoke(script: str, *args: str, timeout: float = 300) -> str:
    out = subprocess.run([sys.executable, str(BENCH / script), "--smoke", *args], cwd=REPO, env=affect_env(),
                         capture_output=True, text=True, timeout=timeout)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


def test_bench_prepare_gpu_smoke(tmp_path):
    video = SHARED / "videos" / "pyfeat" / "single_face.mp4"
    args = ["--video", str(video if video.is_file() else tmp_path / "absent.mp4")]  # absent: a synthetic clip
    out = smoke("bench_prepare_gpu.py", *args)
    for stage in ("decode", "detect", "pipeline", "prepare"):
        assert re.search(rf"^{stage} .* [0-9.]+ frames/s", out, re.M), (stage, out)
    assert "16 frames per measurement; device: cpu" in out
    assert re.search(r"^pipeline .*in 16 frames\)", out, re.M) and re.search(r"^prepare .*in 16 frames;", out, re.M)
    if video.is_file():  # the real clip: one face in every frame
        assert "(16 faces in 16 frames" in out


@pytest.mark.shared
@pytest.mark.slow
def test_bench_predict_smoke():
    """Two settings on 12 real frames and one photo: speed (wall and CPU, start-up apart) and cost columns;
    the reference against itself costs nothing; the detector-only lines (4 frames) for both pyramid factors
    and sizes."""
    if not (SHARED / "videos" / "pyfeat" / "single_face.mp4").is_file():
        pytest.skip(f"real data folder {SHARED} is absent")
    out = smoke("bench_predict.py", timeout=900)
    num = r" +[0-9.]+"
    for name in ("per-frame", r"every 3 \+ min 0\.15"):
        assert re.search(rf"^{name} {num * 5} \| {num * 6} \| +[0-9]+/1$", out, re.M), (name, out)
    ref = re.search(r"^per-frame .*\| +(\S+) +(\S+) +(\S+) +(\S+) +(\S+) +(\S+) \| +0/1$", out, re.M)
    assert ref and ref.groups() == ("0.00", "0", "1.000", "0.000", "0.000", "0.0000"), out
    assert "(reference: 12 frames, 12 faces;" in out
    assert len(re.findall(r"^  factor 0\.(709|600), detected at +(640|480) px: .* frames/s wall, .* by CPU \| faces [34]\b", out,
                          re.M)) == 4, out  # fmt: skip


def test_profile_step_smoke():
    out = smoke("profile_step.py")
    for part in ("network", "loss", "metric update", "optimizer", "bare step", "lightning step"):
        assert re.search(rf"^{part} +[0-9]+ +[0-9]+ +[0-9.]+$", out, re.M), (part, out)
    assert re.search(r"^lightning/bare time per step: [0-9.]+ \(lightning [0-9.]+ ms, bare [0-9.]+ ms", out, re.M), out
    assert "16x16, 32-true, 15 images/step (8 VA + 5 AU + 2 EXPR)" in out
    assert re.search(r"^lightning step +[0-9]+ +0 ", out, re.M) and "lightning step sync:" not in out, out


@pytest.mark.slow
def test_bench_train_gpu_smoke(tmp_path):
    out = smoke("bench_train_gpu.py", "--store-images", "30", "--store-dir", str(tmp_path))
    for model in ("facebehaviornet", "affwildnet", "mt_vgg_gru"):
        line = re.search(rf"^synthetic {model} .*$", out, re.M)
        assert line, (model, out)
        assert re.search(r"lightning +[0-9]+ images/s .* bare +[0-9]+ images/s .* lightning/bare [0-9.]+ "
                         r"\| +[0-9.]+ GFLOP/image", line.group(0)), line.group(0)  # fmt: skip
    assert re.search(r"^store +facebehaviornet .* images/s", out, re.M), out
    assert "assumed dense bf16 peak: unknown" in out  # a CPU has no entry in the peak table


@pytest.mark.slow
def test_fer2013_variants_smoke():
    """Four rows (raw / EMA weights x test-time flip off / on) from one EMA checkpoint."""
    out = smoke("fer2013_variants.py")
    rows = re.findall(r"^(raw|ema) weights, test_time_flip=(on|off) +([0-9.]+) +([0-9.]+) +([0-9.]+)$", out, re.M)
    assert [(w, f) for w, f, *_ in rows] == [("raw", "off"), ("raw", "on"), ("ema", "off"), ("ema", "on")], out
    assert all(0.0 <= float(v) <= 1.0 for *_, a, f1, uar in rows for v in (a, f1, uar))


@pytest.mark.slow
def test_bench_predict_audio_smoke():
    """Two looped videos (3 s and 6 s): the windowed run holds the same audio for both, the whole-video
    run all of it, and the windowed images equal the whole-video ones."""
    out = smoke("bench_predict_audio.py", timeout=900)
    held = [int(n) for n in re.findall(r"windowed: peak (\d+) samples", out)]
    whole = [int(n) for n in re.findall(r"whole: +(\d+) samples held", out)]
    assert len(held) == len(whole) == 2 and held[0] == held[1] and whole[1] > 1.9 * whole[0] > held[0], out
    assert re.search(r"check: windowed vs whole uint8 images over \d+ frames: max difference 0, 0 frames differ", out), out
    assert "peak samples held 0.1 min vs 0.05 min: +0" in out
