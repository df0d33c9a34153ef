"""``affect.demo``'s choices: which video it ends on and which model predicts it."""

from __future__ import annotations

import sys
import types

import pytest

from affect import demo


@pytest.fixture
def no_shared(monkeypatch, tmp_path):
    """No shared data folder anywhere the demo looks."""
    for key in ("AFFECT_SHARED_DATA", "AFFECT_SHARED"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(demo, "__file__", str(tmp_path / "pkg" / "affect" / "demo.py"))
    monkeypatch.chdir(tmp_path)


def test_the_demo_ends_on_the_real_clip_when_the_shared_data_has_it(monkeypatch, tmp_path, no_shared):
    shared = tmp_path / "shared"
    (shared / demo.REAL_VIDEO).parent.mkdir(parents=True)
    (shared / demo.REAL_VIDEO).write_bytes(b"\0")
    monkeypatch.setenv("AFFECT_SHARED_DATA", str(shared))
    video, what = demo.demo_video(tmp_path / "data")
    assert video == shared / "videos" / "pyfeat" / "single_face.mp4"
    assert "real video" in what


def test_without_shared_data_the_demo_ends_on_a_procedural_video(tmp_path, no_shared):
    videos = tmp_path / "data" / "Aff-Wild2" / "videos"
    videos.mkdir(parents=True)
    for name in ("video2.mp4", "video1.mp4"):
        (videos / name).write_bytes(b"\0")
    video, what = demo.demo_video(tmp_path / "data")
    assert video == videos / "video1.mp4"
    assert "procedural" in what
    assert demo.demo_video(tmp_path / "data", "mine.mp4") == (demo.Path("mine.mp4"), "the given video")


def record_predict(monkeypatch) -> list:
    calls: list = []
    fake = types.ModuleType("affect.predict")
    fake.run_predict = lambda ckpt, inputs, out_dir, extra_args=(): calls.append((ckpt, inputs, out_dir)) or {}
    monkeypatch.setitem(sys.modules, "affect.predict", fake)
    return calls


def test_the_default_model_predicts_when_the_package_has_one(monkeypatch, tmp_path, capsys):
    calls = record_predict(monkeypatch)
    monkeypatch.setattr(demo, "default_model_available", lambda: (True, ""))
    demo.analyse_video("own.ckpt", tmp_path / "clip.mp4", tmp_path)
    assert calls == [(None, tmp_path / "clip.mp4", tmp_path / "predict")]  # ckpt=None: the default model
    out = capsys.readouterr().out
    assert "with the default model" in out and str(tmp_path / "predict" / "predictions" / "predictions.csv") in out


def test_without_a_default_model_the_demo_says_so_and_uses_its_own_checkpoint(monkeypatch, tmp_path, capsys):
    calls = record_predict(monkeypatch)
    monkeypatch.setattr(demo, "default_model_available", lambda: (False, "no weights file"))
    demo.analyse_video("own.ckpt", tmp_path / "clip.mp4", tmp_path)
    assert calls == [("own.ckpt", tmp_path / "clip.mp4", tmp_path / "predict")]
    assert "no default model (no weights file): predicting with the demo's own checkpoint own.ckpt" in (
        capsys.readouterr().out
    )


def test_default_model_available_reports_why_not(monkeypatch):
    from affect.errors import ConfigError

    def missing(device="cpu"):
        raise ConfigError("affect/models/default/model.json is missing\nsecond line")

    monkeypatch.setitem(sys.modules, "affect.models.default", types.SimpleNamespace(load_default_model=missing))
    assert demo.default_model_available() == (False, "affect/models/default/model.json is missing")
    monkeypatch.setitem(sys.modules, "affect.models.default",
                        types.SimpleNamespace(load_default_model=lambda device="cpu": (object(), {})))
    assert demo.default_model_available() == (True, "")
    monkeypatch.setitem(sys.modules, "affect.models.default", None)  # the module does not exist
    available, why = demo.default_model_available()
    assert not available and "no default model" in why
