"""`affect prepare` with odd input: tiny and huge images, a flipped byte in a committed shard, bad
options, a killed parent with worker processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from affect.errors import ConfigError
from affect.face.detect import FaceDetector
from affect.store.writer import PrepareOptions, prepare_store

REPO = Path(__file__).resolve().parents[1]
HANG_GUARD_S = 120  # only guards against a hang; no assertion depends on how fast anything runs


def _noise(root: Path, name: str, h: int, w: int, seed: int = 0) -> str:
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / name)
    return name


def test_tiny_images_are_counted_no_face_rows(tmp_path):
    """An image below MTCNN's minimum face size used to crash facenet's detect_face (torch.cat of nothing)."""
    names = [_noise(tmp_path, "tiny.png", 12, 30), _noise(tmp_path, "one_px.png", 1, 1), _noise(tmp_path, "ok.png", 64, 64)]
    df = pd.DataFrame({"path": names, "corpus": "toy", "expr": [1, 2, 3]})
    rep = prepare_store(df, tmp_path, tmp_path / "st", shard_size=8,
                        options=PrepareOptions(detect="always", min_face_size=20), progress=False)
    # ok.png is face-crop sized: no face found in the noise, so the whole image is taken as the face
    assert (rep["frames_in"], rep["corrupt"], rep["no_face"], rep["too_small"], rep["whole_image"]) == (3, 0, 2, 2, 1)
    assert any("tiny.png" in e and "30x12 px < --min-face-size 20" in e for e in rep["examples"]["too_small"])
    labels = pd.read_csv(tmp_path / "st" / "labels.csv")
    assert labels["status"].tolist() == ["no_face", "no_face", "ok"]


def test_huge_images_are_detected_on_a_bounded_copy(monkeypatch):
    det = FaceDetector(max_side=400, min_face_size=20, refine=0)  # the mapping of MTCNN's own output
    seen = []

    def fake_detect(batch, landmarks=True):  # MTCNN's API: boxes, probs, points per image
        seen.append(batch.shape)
        n = len(batch)
        return (np.tile([[[10.0, 20.0, 110.0, 220.0]]], (n, 1, 1)), np.full((n, 1), 0.99),
                np.tile(np.arange(10.0).reshape(1, 1, 5, 2), (n, 1, 1, 1)))

    monkeypatch.setattr(det.mtcnn, "detect", fake_detect)
    huge = np.zeros((2000, 3000, 3), np.uint8)  # 3000 px wide -> detected at 400 px: scale 2/15
    small = np.zeros((300, 200, 3), np.uint8)
    faces = det.detect([huge, small])
    assert sorted(seen) == [(1, 267, 400, 3), (1, 300, 200, 3)]
    np.testing.assert_allclose(faces[0][0].box, np.array([10, 20, 110, 220]) * 7.5, rtol=1e-5)
    np.testing.assert_allclose(faces[0][0].points, np.arange(10.0).reshape(5, 2) * 7.5, rtol=1e-5)
    np.testing.assert_allclose(faces[1][0].box, [10, 20, 110, 220])  # small images untouched


def test_resume_verifies_shard_checksums(tmp_path):
    root = tmp_path / "raw"
    root.mkdir()
    df = pd.DataFrame({"path": [_noise(root, f"{i}.png", 24, 24, seed=i) for i in range(6)], "corpus": "toy",
                       "expr": [i % 7 for i in range(6)]})
    opts = PrepareOptions(detect="never", image_size=16)
    ref, out = tmp_path / "ref", tmp_path / "out"
    prepare_store(df, root, ref, shard_size=2, options=opts, progress=False)
    prepare_store(df, root, out, shard_size=2, options=opts, progress=False)
    u8 = out / "shards" / "shard-00001.u8"
    data = bytearray(u8.read_bytes())
    data[100] ^= 0xFF  # one flipped byte, same size
    u8.write_bytes(bytes(data))
    (out / "store.json").unlink()  # an unfinished run being resumed
    prepare_store(df, root, out, shard_size=2, options=opts, progress=False)
    assert u8.read_bytes() == (ref / "shards" / "shard-00001.u8").read_bytes()  # redone, not trusted


@pytest.mark.parametrize(("kwargs", "key"), [
    ({"options": PrepareOptions(batch_size=0)}, "--batch-size"),
    ({"options": PrepareOptions(min_face_size=0)}, "--min-face-size"),
    ({"options": PrepareOptions(image_size=4)}, "--image-size"),
    ({"workers": 0}, "--workers"),
    ({"shard_size": 0}, "--shard-size"),
    ({"max_shards": 0}, "--max-shards"),
])
def test_bad_options_fail_before_job_json(tmp_path, kwargs, key):
    df = pd.DataFrame({"path": [_noise(tmp_path, "a.png", 24, 24)], "corpus": "toy", "expr": [1]})
    with pytest.raises(ConfigError, match=key):
        prepare_store(df, tmp_path, tmp_path / "st", progress=False, **kwargs)
    assert not (tmp_path / "st" / "job.json").exists()


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to find the workers")
def test_killed_parent_takes_its_workers_with_it(tmp_path):
    root = tmp_path / "raw"
    root.mkdir()
    n = 400
    df = pd.DataFrame({"path": [_noise(root, f"{i:04d}.png", 160, 160, seed=i) for i in range(n)], "corpus": "toy",
                       "expr": [i % 7 for i in range(n)]})
    df.to_csv(tmp_path / "m.csv", index=False)
    cmd = [sys.executable, "-m", "affect.prepare", "csv", "--manifest", str(tmp_path / "m.csv"), "--root", str(root),
           "--out", str(tmp_path / "st"), "--no-detect", "--shard-size", "1", "--workers", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    guard = time.monotonic() + HANG_GUARD_S
    shards = tmp_path / "st" / "shards"
    # wait (by events, not by time) until both workers have committed shards
    while proc.poll() is None and (len(_children(proc.pid)) < 3 or len(list(shards.glob("*.json"))) < 4):
        assert time.monotonic() < guard, "prepare never started its workers"
        time.sleep(0.01)
    kids = _children(proc.pid)  # 2 workers + the resource tracker
    if proc.poll() is not None or (tmp_path / "st" / "store.json").exists():
        pytest.skip("the run finished before it could be killed")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    while any(_alive(k) for k in kids):
        if time.monotonic() > guard:
            for k in kids:  # clean up what we started before failing
                if _alive(k):
                    os.kill(k, signal.SIGKILL)
            pytest.fail(f"worker processes {kids} outlived their killed parent")
        time.sleep(0.05)
    assert json.loads((tmp_path / "st" / "job.json").read_text())["n_manifest_rows"] == n
