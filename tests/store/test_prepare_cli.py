"""`affect prepare` and `affect prepare merge` through the real command line (:func:`affect.cli.main`):
per-row failures are counted rows, sharded stores keep their parser record, merge and prepare never
write into a folder that is not a store of their job, and every input mistake is one line, exit 2."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import affect.cli
from affect.data.fixtures import write_fixture_tree


def affect_main(*args: str) -> int:
    return affect.cli.main([str(a) for a in args])


def one_error_line(err: str) -> str:
    """The single ``affect: error:`` line of a failed command (and no traceback)."""
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("affect: error:")]
    assert len(lines) == 1, err
    return lines[0]


def tree_bytes(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def bomb_png(path: Path, side: int = 40000) -> None:
    """A tiny PNG whose header claims side x side 8-bit grey pixels (1.6 Gpx: PIL's decompression-bomb
    error at open time, whatever pixel limit is set)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    body = zlib.compress(b"\0" * (side + 1))  # the first row only
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))


def noise(root: Path, name: str, seed: int, size: int = 40) -> str:
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / name)
    return name


# --------------------------------------------------------------------------- per-row failures
def test_every_per_row_failure_is_a_counted_corrupt_row_and_the_shard_commits(tmp_path, capsys):
    root = tmp_path / "raw"
    root.mkdir()
    bomb_png(root / "bomb.png")
    good = [noise(root, f"ok{i}.png", i) for i in range(2)]
    nan68 = ";".join(["nan"] * 136)
    same68 = ";".join(["5"] * 136)  # 68 identical points: no similarity transform exists
    rows = [{"path": good[0]}, {"path": "bomb.png"}, {"path": good[1], "landmarks": nan68},
            {"path": good[1], "landmarks": same68}, {"path": good[0], "landmarks": "1;2;3"}, {"path": good[1]}]
    manifest = tmp_path / "m.csv"
    pd.DataFrame(rows).assign(corpus="toy", expr=1).to_csv(manifest, index=False)
    out = tmp_path / "st"
    args = ["prepare", "csv", "--manifest", manifest, "--root", root, "--out", out, "--no-detect",
            "--image-size", "16", "--shard-size", "8", "--no-progress"]
    assert affect_main(*args) == 0, capsys.readouterr().err
    report = json.loads((out / "report.json").read_text())
    assert (report["frames_in"], report["faces"], report["corrupt"]) == (6, 2, 4)
    reasons = report["examples"]["corrupt"]
    assert "bomb.png" in reasons[0] and "above the 100 Mpx cap" in reasons[0]  # refused unread (affect.io)
    assert "NaN" in reasons[1] and "similarity" in reasons[2] and "136 numbers" in reasons[3]
    labels = pd.read_csv(out / "labels.csv")
    assert labels["status"].tolist() == ["ok", "corrupt", "corrupt", "corrupt", "corrupt", "ok"]
    before = tree_bytes(out)
    (out / "store.json").unlink()  # resume: the committed shard is kept, the store is finished again
    assert affect_main(*args) == 0
    assert tree_bytes(out) == before


# --------------------------------------------------------------------------- sharded stores
@pytest.fixture(scope="module")
def bp4d(tmp_path_factory):
    """The BP4D fixture, prepared for fold 1 on one machine and as 2 parts."""
    base = tmp_path_factory.mktemp("bp4d")
    write_fixture_tree(base, ["bp4d"], options={"bp4d": {"size": 32}})
    raw = base / "BP4D"
    common = ["--root", raw, "--no-detect", "--image-size", "16", "--shard-size", "16", "--parser.fold", "1",
              "--no-progress"]
    assert affect_main("prepare", "bp4d", "--out", base / "whole", *common) == 0
    for i in range(2):
        assert affect_main("prepare", "bp4d", "--out", base / f"p{i}", "--shard", f"{i}/2", *common) == 0
    return raw, base


def test_merged_store_keeps_the_parser_record_and_the_fold_guard(bp4d, tmp_path):
    from affect.data.corpora.bp4d import BP4DDataModule

    raw, base = bp4d
    merged = tmp_path / "merged"
    assert affect_main("prepare", "merge", merged, base / "p0", base / "p1", "--no-progress") == 0
    header = json.loads((merged / "store.json").read_text())
    assert header["parser"]["corpus"] == "bp4d" and header["parser"]["args"]["fold"] == 1
    assert tree_bytes(merged) == tree_bytes(base / "whole")
    with pytest.raises(ValueError, match="built with fold=1 but .* fold=0"):
        _ = BP4DDataModule(str(raw), fold=0, image_size=16, store=str(merged)).manifest
    assert len(BP4DDataModule(str(raw), fold=1, image_size=16, store=str(merged)).manifest)


def test_merge_checks_every_part_before_it_touches_the_output(bp4d, tmp_path, capsys):
    _, base = bp4d
    parts = [tmp_path / "p0", tmp_path / "p1"]
    for i, p in enumerate(parts):
        shutil.copytree(base / f"p{i}", p)
    merged = tmp_path / "merged"
    assert affect_main("prepare", "merge", merged, *parts, "--no-progress") == 0
    before = tree_bytes(merged)
    u8 = sorted((parts[1] / "shards").glob("*.u8"))[-1]
    u8.write_bytes(u8.read_bytes()[:-1] + bytes([u8.read_bytes()[-1] ^ 1]))  # damaged after the first merge
    capsys.readouterr()
    assert affect_main("prepare", "merge", merged, *parts, "--no-progress") == 2
    assert "does not match its checksum" in one_error_line(capsys.readouterr().err)
    assert tree_bytes(merged) == before  # store.json and everything else untouched


def test_merge_never_reads_a_file_outside_the_part(bp4d, tmp_path, capsys):
    _, base = bp4d
    parts = [tmp_path / "p0", tmp_path / "p1"]
    for i, p in enumerate(parts):
        shutil.copytree(base / f"p{i}", p)
    head_path = sorted((parts[0] / "shards").glob("shard-*.json"))[0]
    head = json.loads(head_path.read_text())
    csv_name = next(f for f in head["sha256"] if f.endswith(".csv"))
    outside = tmp_path / "outside.csv"  # a file elsewhere, with the checksum the header gives it
    shutil.copy(parts[0] / "shards" / csv_name, outside)
    (parts[0] / "shards" / csv_name).unlink()
    for key in ("sha256", "files"):
        head[key]["../../outside.csv"] = head[key].pop(csv_name)
    head_path.write_text(json.dumps(head))
    assert affect_main("prepare", "merge", tmp_path / "merged", *parts, "--no-progress") == 2
    assert "not one of this shard's files" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "merged").exists()


def test_merge_and_prepare_refuse_a_folder_that_is_not_a_store_of_their_job(bp4d, tmp_path, capsys):
    raw, base = bp4d
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "labels.csv").write_text("my own labels\n")
    assert affect_main("prepare", "merge", mine, base / "p0", base / "p1", "--no-progress") == 2
    assert "not a store" in one_error_line(capsys.readouterr().err)
    assert affect_main("prepare", "merge", base / "p0", base / "p0", base / "p1", "--no-progress") == 2
    one_error_line(capsys.readouterr().err)  # a part folder as the output: given twice / not this job
    # prepare with --out = --root: the corpus's own files are never written over
    root = tmp_path / "raw"
    root.mkdir()
    manifest = tmp_path / "m.csv"
    pd.DataFrame({"path": [noise(root, "a.png", 0)], "corpus": "toy", "expr": [1]}).to_csv(manifest, index=False)
    (root / "labels.csv").write_text("the user's labels\n")
    assert affect_main("prepare", "csv", "--manifest", manifest, "--root", root, "--out", root, "--no-detect",
                       "--no-progress") == 2
    assert "not a store" in one_error_line(capsys.readouterr().err)
    assert (root / "labels.csv").read_text() == "the user's labels\n" and not (root / "job.json").exists()
    # another job's store
    assert affect_main("prepare", "bp4d", "--root", raw, "--out", base / "whole", "--no-detect", "--image-size", "24",
                       "--no-progress") == 2
    assert "different job" in one_error_line(capsys.readouterr().err)


# --------------------------------------------------------------------------- one-line errors
def test_input_mistakes_are_one_line_errors(bp4d, tmp_path, capsys):
    raw, base = bp4d
    cases = [
        (["prepare", "bp4d", "--root", tmp_path / "nowhere", "--out", tmp_path / "s"], "--root"),
        (["prepare", "bp4d", "--root", tmp_path, "--out", tmp_path / "s"], "point --root at the bp4d release"),
        (["prepare", "csv", "--manifest", tmp_path / "no.csv", "--root", raw, "--out", tmp_path / "s"], "no.csv"),
        (["prepare", "merge", tmp_path / "m", base / "p0"], r"parts [1] of 2 are missing"),
        (["prepare", "merge", tmp_path / "m", base / "whole"], "not a part of a sharded run"),
        (["prepare", "merge", tmp_path / "m", tmp_path / "nowhere"], "job.json is missing"),
        (["prepare", "bp4d", "--root", raw, "--out", tmp_path / "s", "--shard", "2/2"], "--shard 2/2"),
    ]
    empty = tmp_path / "empty.csv"
    empty.write_text("path,corpus\n")
    cases.append((["prepare", "csv", "--manifest", empty, "--root", raw, "--out", tmp_path / "s"], "manifest is empty"))
    for args, said in cases:
        capsys.readouterr()
        assert affect_main(*args, "--no-progress") == 2, args
        assert said in one_error_line(capsys.readouterr().err), args
    assert not (tmp_path / "s").exists() and not (tmp_path / "m").exists()


def test_a_config_file_gives_the_store_the_command_line_gives(tmp_path):
    root = tmp_path / "raw"
    root.mkdir()
    manifest = tmp_path / "m.csv"
    pd.DataFrame({"path": [noise(root, f"{i}.png", i) for i in range(3)], "corpus": "toy", "expr": [1, 2, 3]}).to_csv(
        manifest, index=False)
    assert affect_main("prepare", "csv", "--manifest", manifest, "--root", root, "--out", tmp_path / "a",
                       "--no-detect", "--image-size", "16", "--shard-size", "2", "--no-progress") == 0
    cfg = tmp_path / "prepare.yaml"
    cfg.write_text(f"manifest: {manifest}\nroot: {root}\nout: {tmp_path / 'b'}\ndetect: never\nimage_size: 16\n"
                   "shard_size: 2\nno_progress: true\n")
    assert affect_main("prepare", "csv", "--config", cfg) == 0
    assert tree_bytes(tmp_path / "a") == tree_bytes(tmp_path / "b")
