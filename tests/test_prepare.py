"""`affect prepare`: resumable (byte-identical after interruption), parallel, nothing dropped silently."""

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

from affect.store.cli import main
from affect.store.reader import StoreSequenceDataset, open_store
from affect.store.writer import IncompleteRun, PrepareOptions, prepare_store

SHARED = Path(os.environ.get("AFFECT_SHARED", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
REPO = Path(__file__).resolve().parents[1]


def write_images(root: Path, n: int, size: int = 64, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / f"{i:04d}.png")
        recs.append({"path": f"{i:04d}.png", "corpus": "toy", "split": "train" if i % 5 else "val",
                     "expr": i % 7, "valence": ((i % 21) - 10) / 10})
    return pd.DataFrame.from_records(recs)


def tree_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


OPTS = PrepareOptions(detect="never")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("raw")
    df = write_images(root, 23)
    (root / "0007.png").write_bytes(b"corrupt")  # one corrupt input
    ref = tmp_path_factory.mktemp("ref") / "store"
    prepare_store(df, root, ref, shard_size=4, options=OPTS, progress=False)
    return df, root, ref


def test_interrupted_runs_resume_byte_identical(corpus, tmp_path):
    df, root, ref = corpus
    out = tmp_path / "store"
    with pytest.raises(IncompleteRun, match="2/6 shards"):
        prepare_store(df, root, out, shard_size=4, options=OPTS, max_shards=2, progress=False)
    assert not (out / "store.json").exists()
    with pytest.raises(FileNotFoundError, match="no store.json"):
        open_store(out)
    # debris of a kill: a half-written temp file, a data file renamed but never committed by its
    # header, and a committed shard whose data file was later truncated
    (out / "shards" / "shard-00004.u8.tmp-12345").write_bytes(b"half")
    (out / "shards" / "shard-00003.u8").write_bytes(b"\0" * 10)
    with open(out / "shards" / "shard-00001.u8", "r+b") as f:
        f.truncate(100)
    with pytest.raises(IncompleteRun, match="3/6 shards"):  # shard 1 no longer counts as done
        prepare_store(df, root, out, shard_size=4, options=OPTS, max_shards=2, progress=False)
    report = prepare_store(df, root, out, shard_size=4, options=OPTS, progress=False)
    assert tree_bytes(out) == tree_bytes(ref)
    assert report == json.loads((ref / "report.json").read_text())
    # re-running a finished store changes nothing
    prepare_store(df, root, out, shard_size=4, options=OPTS, progress=False)
    assert tree_bytes(out) == tree_bytes(ref)


def test_report_and_status_rows(corpus):
    df, _, ref = corpus
    rep = json.loads((ref / "report.json").read_text())
    assert (rep["frames_in"], rep["faces"], rep["no_face"], rep["corrupt"]) == (23, 22, 0, 1)
    assert rep["usable_rows"] == 22 and sum(rep["per_split"].values()) == 22
    st = open_store(ref)
    assert st.manifest["src_row"].tolist() == list(range(23))  # every manifest row is accounted for
    assert st.manifest.loc[7, "status"] == "corrupt" and (st.images[7] == 0).all()
    assert st.manifest["path"].tolist() == df["path"].tolist()


def test_changed_job_is_refused(corpus, tmp_path):
    df, root, ref = corpus
    out = tmp_path / "s"
    prepare_store(df.iloc[:4], root, out, shard_size=4, options=OPTS, progress=False)
    with pytest.raises(ValueError, match="different job"):
        prepare_store(df.iloc[:4], root, out, shard_size=4, options=PrepareOptions(detect="never", image_size=64),
                      progress=False)
    with pytest.raises(ValueError, match="manifest is empty"):
        prepare_store(df.iloc[:0], root, tmp_path / "e", options=OPTS, progress=False)
    with pytest.raises(ValueError, match="detect must be one of"):
        prepare_store(df, root, tmp_path / "x", options=PrepareOptions(detect="maybe"), progress=False)


def test_cli_main_with_manifest_csv(corpus, tmp_path, capsys):
    df, root, ref = corpus
    csv = tmp_path / "m.csv"
    df.to_csv(csv, index=False)
    out = tmp_path / "cli"
    args = ["csv", "--manifest", str(csv), "--root", str(root), "--out", str(out), "--no-detect",
            "--shard-size", "4", "--no-progress"]
    assert main([*args, "--max-shards", "1"]) == 3
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "frames in:            23" in text and "corrupt inputs:       1" in text
    assert tree_bytes(out) == tree_bytes(ref)
    with pytest.raises(SystemExit):
        main(["csv", "--root", str(root)])  # --out is required


@pytest.mark.slow
def test_two_workers_give_the_same_store(corpus, tmp_path):
    df, root, ref = corpus
    prepare_store(df, root, tmp_path / "w2", workers=2, shard_size=4, options=OPTS, progress=False)
    assert tree_bytes(tmp_path / "w2") == tree_bytes(ref)


@pytest.mark.slow
def test_sigkill_mid_run_then_resume(tmp_path):
    """A real `affect prepare` process killed with SIGKILL while writing shards, then re-run."""
    root = tmp_path / "raw"
    root.mkdir()
    df = write_images(root, 160, size=192, seed=1)
    csv = tmp_path / "m.csv"
    df.to_csv(csv, index=False)
    cmd = [sys.executable, "-m", "affect.prepare", "csv", "--manifest", str(csv), "--root", str(root),
           "--no-detect", "--shard-size", "2", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = tmp_path / "killed"
    proc = subprocess.Popen([*cmd, "--out", str(out)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    guard = time.monotonic() + 300  # only a hang guard: the kill waits for an event (5 committed shards)
    while len(list((out / "shards").glob("*.json"))) < 5 and proc.poll() is None:
        if time.monotonic() > guard:
            proc.kill()
            pytest.fail("affect prepare committed no 5 shards before the hang guard")
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if (out / "store.json").exists():
        pytest.skip("the run finished before it could be killed (machine too fast for this check)")
    assert subprocess.run([*cmd, "--out", str(out)], env=env, capture_output=True).returncode == 0
    clean = tmp_path / "clean"
    assert subprocess.run([*cmd, "--out", str(clean)], env=env, capture_output=True).returncode == 0
    assert tree_bytes(out) == tree_bytes(clean)


@pytest.mark.shared
def test_video_rows_with_detection_and_audio(tmp_path):
    """Frames of real videos (face / no face / beyond the end) with MTCNN and per-frame spectrograms."""
    vids = SHARED / "videos" / "pyfeat"
    if not vids.is_dir():
        pytest.skip(f"real videos not found at {vids} (set AFFECT_SHARED)")
    from affect.data.audio import to_uint8, video_spectrogram_frames

    rows = [{"path": "single_face.mp4", "video": "single", "frame": f} for f in (0, 1, 40)]
    rows += [{"path": "no_face.mp4", "video": "none", "frame": 3}]
    rows += [{"path": "single_face.mp4", "video": "single", "frame": 999}]  # past the end -> corrupt
    df = pd.DataFrame.from_records(rows).assign(corpus="pyfeat", expr=0)
    rep = prepare_store(df, vids, tmp_path / "st", options=PrepareOptions(audio=True, audio_height=32,
                        audio_width=16, batch_size=4), progress=False)
    assert (rep["frames_in"], rep["faces"], rep["no_face"], rep["corrupt"]) == (5, 3, 1, 1)
    assert "no frame 999" in rep["examples"]["corrupt"][0]
    st = open_store(tmp_path / "st")
    assert st.manifest["status"].tolist() == ["ok", "ok", "ok", "no_face", "corrupt"]
    assert (st.manifest["det_score"][:3] > 0.9).all() and st.images[np.array([0, 1, 2])].std() > 20
    spec = to_uint8(video_spectrogram_frames(vids / "single_face.mp4", 32, 16))
    assert np.array_equal(st.audio[np.array([0, 1, 2])], spec[[0, 1, 40]])
    seq = StoreSequenceDataset(str(tmp_path / "st"), length=4)
    b = seq.__getitems__(range(len(seq)))
    assert b["audio"].shape[2:] == (1, 32, 16) and b["audio"].min() >= -1
    assert b["face_mask"].sum() == 3 and b["frame_mask"].sum() == 5


@pytest.mark.shared
def test_all_faces_mode_gives_one_row_per_face(tmp_path):
    img = SHARED / "faces" / "face_alignment" / "aflw-test-grid3x3.jpg"
    if not img.is_file():
        pytest.skip(f"real image not found: {img}")
    small = Image.open(img).resize((675, 675))
    small.save(tmp_path / "grid.png")
    Image.open(SHARED / "faces" / "face_alignment" / "grass.jpg").save(tmp_path / "grass.jpg")
    df = pd.DataFrame({"path": ["grid.png", "grass.jpg"], "corpus": "fa", "expr": [1, 2]})
    rep = prepare_store(df, tmp_path, tmp_path / "st", options=PrepareOptions(select="all"), progress=False)
    assert (rep["frames_in"], rep["faces"], rep["no_face"], rep["corrupt"]) == (2, 9, 1, 0)
    st = open_store(tmp_path / "st")
    assert st.manifest["face_index"].tolist() == [*range(9), -1]
    assert st.manifest["n_faces"].tolist() == [9] * 9 + [0]
    assert st.manifest["status"].tolist() == ["ok"] * 9 + ["no_face"]


@pytest.mark.shared
def test_forced_detection_carries_given_landmarks(tmp_path):
    """--detect with a corpus's own 68 landmarks: MTCNN aligns, the landmarks follow the same transform
    and their anchors land within a few pixels of the template (independent FAN reference points)."""
    fa = SHARED / "faces" / "face_alignment"
    if not fa.is_dir():
        pytest.skip(f"real images not found at {fa}")
    from affect.face import five_from_68, frontal_template

    ref = np.asarray(json.loads((fa / "aflw-test.reference_landmarks68_3d.json").read_text())["landmarks68_xyz"])
    lm = ";".join(f"{v:.3f}" for v in ref[:, :2].ravel())  # the CSV spelling of a landmarks cell
    df = pd.DataFrame({"path": ["aflw-test.jpg"], "corpus": "fa", "landmarks": [lm]})
    rep = prepare_store(df, fa, tmp_path / "st", options=PrepareOptions(detect="always"), progress=False)
    assert rep["faces"] == 1
    st = open_store(tmp_path / "st")
    assert st.manifest.loc[0, "has_landmarks"] == 1 and st.manifest.loc[0, "det_score"] > 0.9
    err = np.linalg.norm(five_from_68(st.landmarks[0]) - frontal_template(96), axis=1)
    assert err.max() < 4.0
