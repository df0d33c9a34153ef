"""Through the real CLI (``affect.cli.main``): shipped configs by name, the short ``affect predict
INPUT... [-o OUT] [--ckpt CKPT]`` with a tiny exported default model, its one-line errors, and the
LightningCLI form's refusal of the untrained placeholder model."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from helpers.default_model import face_media, tiny_checkpoint, tiny_default_model

import affect.cli
import affect.models.default
from affect.configs import config_names, experiments_root, resolve_config_args
from affect.errors import ConfigError
from affect.labels import EXPR_CLASSES
from affect.predict.command import device_args, is_short_form, output_folder, prepare_output

ROOT = experiments_root()


def one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("affect: error:")]
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize(
    ("args", "short"),
    [
        (["clip.mp4"], True), (["clip.mp4", "photos/", "-o", "out"], True), (["-o", "out", "clip.mp4"], True),
        (["--ckpt", "x.ckpt", "clip.mp4"], True), (["--overwrite", "a.png"], True),
        (["--config", "predict/media", "--ckpt_path", "x.ckpt"], False), (["-c", "m.yaml"], False),
        (["--ckpt_path=x.ckpt"], False), (["--help"], False), ([], False), (["--print_config"], False),
    ],
)  # fmt: skip
def test_short_form_is_told_apart_from_lightningcli(args, short):
    assert is_short_form(args) is short


def test_config_names_resolve_to_the_shipped_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    row = str(ROOT / "table6" / "fbn_du2014.yaml")
    for spelled in ("table6/fbn_du2014", "table6/fbn_du2014.yaml", "experiments/table6/fbn_du2014.yaml"):
        assert resolve_config_args(["fit", "--config", spelled]) == ["fit", "--config", row]
    assert resolve_config_args(["fit", "--config=table6/fbn_du2014", "-c", "predict/media"]) == [
        "fit", f"--config={row}", "-c", str(ROOT / "predict" / "media.yaml")]  # fmt: skip
    # a local file of that path wins; inline YAML and other options pass unchanged
    (tmp_path / "table6").mkdir()
    (tmp_path / "table6" / "fbn_du2014.yaml").write_text("seed_everything: 1\n")
    assert resolve_config_args(["--config", "table6/fbn_du2014.yaml"]) == ["--config", "table6/fbn_du2014.yaml"]
    inline = ["--config", "{trainer: {max_epochs: 1}}", "--trainer.max_epochs", "table6/fbn_du2014"]
    assert resolve_config_args(inline) == inline
    names = config_names()
    assert {"predict/media", "demo/facebehaviornet", "table6/fbn_du2014", "model/facebehaviornet"} <= set(names)
    assert len(names) == len(list(ROOT.rglob("*.yaml")))


def test_unknown_config_name_is_one_line_with_the_closest_names(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert affect.cli.main(["fit", "--config", "table6/fbn_du2041"]) == 2
    line = one_error_line(capsys)
    assert "--config 'table6/fbn_du2041': no such file, and no shipped config of that name" in line
    assert "closest: table6/fbn_du2014" in line


def test_a_config_by_name_through_the_cli(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stop:
        affect.cli.main(["fit", "--config", "demo/facebehaviornet", "--print_config"])
    assert stop.value.code in (0, None)
    out = capsys.readouterr().out
    assert "class_path: affect.models.facebehaviornet.FaceBehaviorNetModule" in out
    assert "class_path: affect.data.multidomain.MultiDomainDataModule" in out


def test_short_options_map_to_lightning_keys():
    assert device_args("auto") == []
    assert device_args("cpu") == ["--trainer.accelerator", "cpu", "--trainer.devices", "1"]
    assert device_args("cuda:1") == ["--trainer.accelerator", "gpu", "--trainer.devices", "[1]"]
    with pytest.raises(ConfigError, match="--device 'tpu'"):
        device_args("tpu")
    assert output_folder(None, ["videos/clip.mp4", "b.png"]) == Path("affect_out/clip")
    assert output_folder(None, ["photos/"]) == Path("affect_out/photos")
    assert output_folder("o", ["x.png"]) == Path("o")


def test_overwrite_removes_only_an_earlier_predict_run(tmp_path):
    mine = tmp_path / "mine"
    (mine / "plots").mkdir(parents=True)
    (mine / "plots" / "holiday.png").write_bytes(b"x")
    with pytest.raises(ConfigError, match="already holds files; pass --overwrite"):
        prepare_output(mine, overwrite=False)
    prepare_output(mine, overwrite=True)  # not an affect predict folder (no summary.json): nothing removed
    assert (mine / "plots" / "holiday.png").is_file()
    earlier = tmp_path / "earlier"
    for name in ("csv/a.png.csv", "plots/contact_sheet.png", "summary.json", "predictions.csv", "notes.txt"):
        (earlier / name).parent.mkdir(parents=True, exist_ok=True)
        (earlier / name).write_text("x")
    prepare_output(earlier, overwrite=True)
    assert sorted(p.name for p in earlier.iterdir()) == ["notes.txt"]
    prepare_output(tmp_path / "new", overwrite=False)  # absent or empty: fine
    assert not (tmp_path / "new").exists()


def test_without_a_default_model_it_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(affect.models.default, "MODEL_DIR", tmp_path / "empty")
    out = tmp_path / "out"
    assert affect.cli.main(["predict", str(tmp_path / "face.png"), "-o", str(out)]) == 2
    line = one_error_line(capsys)
    assert "no default model is installed" in line and "--ckpt" in line
    assert not out.exists()


def test_lightningcli_predict_refuses_the_placeholder_model(tmp_path, capsys):
    out = tmp_path / "out"
    args = ["predict", "--config", "predict/media", "--data.init_args.inputs", json.dumps([str(tmp_path / "a.png")]),
            "--trainer.default_root_dir", str(out), "--trainer.accelerator", "cpu"]  # fmt: skip
    assert affect.cli.main(args) == 2
    line = one_error_line(capsys)
    assert "without --ckpt_path would run an untrained FaceBehaviorNetModule" in line
    assert "affect predict INPUT" in line
    assert not (out / "predictions").exists()


# ---------------------------------------------------------------------- predicting (MTCNN + the model)
QUIET = ["--device", "cpu", "--no-progress"]
EXPR = list(EXPR_CLASSES)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    work = tmp_path_factory.mktemp("short_predict")
    return {"default": tiny_default_model(work / "default", work), "ckpt": work / "tiny.ckpt",
            "other": tiny_checkpoint(work / "other.ckpt", seed=1)[0], **face_media(work / "media")}  # fmt: skip


def faces(csv: Path) -> pd.DataFrame:
    table = pd.read_csv(csv)
    return table[table["face_detected"] == 1].reset_index(drop=True)


@pytest.mark.slow
def test_short_command_with_the_default_model(tiny, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(affect.models.default, "MODEL_DIR", tiny["default"])
    out = tmp_path / "out"
    inputs = [str(tiny["image"]), str(tiny["video"])]
    assert affect.cli.main(["predict", *inputs, "-o", str(out), *QUIET]) == 0
    assert "the default model 'tiny-test' (licence: test only)" in capsys.readouterr().err
    for name in ("predictions.csv", "inputs.csv", "summary.json", "config.yaml", "csv", "plots"):
        assert (out / name).exists(), name
    got = faces(out / "predictions.csv")
    assert set(got["input"]) == set(inputs) and len(got) == 7  # the image + every frame of the 6-frame clip
    probs = got[EXPR].to_numpy()
    assert abs(probs.sum(1) - 1).max() < 1e-4 and probs.max() > 0.3  # perturbed weights: not uniform

    # the same weights through --ckpt (exactly float16-representable: the default model loses nothing)
    same = tmp_path / "same"
    assert affect.cli.main(["predict", *inputs, "-o", str(same), "--ckpt", str(tiny["ckpt"]), *QUIET]) == 0
    pd.testing.assert_frame_equal(faces(same / "predictions.csv"), got, rtol=1e-5)

    # an output folder that holds files: refused, then replaced with --overwrite (an earlier run's files go)
    assert affect.cli.main(["predict", str(tiny["image"]), "-o", str(out), *QUIET]) == 2
    assert "already holds files; pass --overwrite" in one_error_line(capsys)
    (out / "csv" / "earlier_input.csv").write_text("stale\n")
    other = ["predict", *inputs, "-o", str(out), "--ckpt", str(tiny["other"]), "--overwrite", *QUIET,
             "--data.init_args.frame_stride", "2"]  # a LightningCLI key passed through  # fmt: skip
    assert affect.cli.main(other) == 0
    assert not (out / "csv" / "earlier_input.csv").exists()
    again = faces(out / "predictions.csv")
    assert len(again) == 1 + 3 and list(again["frame"][1:]) == [0, 2, 4]
    assert abs(again[EXPR].to_numpy()[0] - probs[0]).max() > 1e-3  # another checkpoint, other answers


@pytest.mark.slow
def test_run_predict_without_a_checkpoint_uses_the_default_model(tiny, tmp_path, monkeypatch):
    from affect.predict import run_predict

    monkeypatch.setattr(affect.models.default, "MODEL_DIR", tiny["default"])
    summary = run_predict(None, tiny["image"], tmp_path / "run", ["--trainer.accelerator", "cpu",
                                                                   "--data.init_args.progress", "false"])
    assert (summary["inputs"], summary["faces"], summary["status_counts"]) == (1, 1, {"ok": 1})
    got = faces(tmp_path / "run" / "predictions" / "predictions.csv")
    ref = tmp_path / "ref"
    assert affect.cli.main(["predict", str(tiny["image"]), "-o", str(ref), "--ckpt", str(tiny["ckpt"]), *QUIET]) == 0
    pd.testing.assert_frame_equal(got, faces(ref / "predictions.csv"), rtol=1e-5)
