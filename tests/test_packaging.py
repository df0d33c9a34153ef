"""``affect`` from a built wheel, outside the checkout: the wheel is built offline from a copy of the
sources (``pip wheel --no-build-isolation --no-index``), installed into a fresh venv that reuses this
environment's installed dependencies (a ``.pth`` line, added after the install; ``--no-deps
--no-index``: no network), and run from an empty folder: ``--help``, a config by name, the demo's start,
and ``affect predict`` with a tiny default model dropped into the installed package.

Each command imports Lightning afresh in a subprocess (tens of seconds on a loaded 2-core machine):
``slow``; the timeouts only guard against a hang."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from helpers.default_model import face_media, tiny_default_model

from affect.labels import EXPR_CLASSES

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]
#: What the build reads.
SOURCES = ("affect", "experiments", "pyproject.toml", "setup.py", "README.md", "LICENSE")
HANG = 900


def run(cmd: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=HANG)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=ignore)
        else:
            shutil.copy2(REPO / name, src / name)
    out = run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation", "--no-index",
               "-w", work / "dist", src], cwd=work)  # fmt: skip
    log = out.stdout + out.stderr
    assert out.returncode == 0, log[-4000:]
    at = log.lower().find("deprecat")  # e.g. "`project.license` as a TOML table is deprecated"
    assert at < 0, log[max(at - 300, 0) : at + 1500]
    (whl,) = (work / "dist").glob("affect-*.whl")
    return whl


def test_wheel_carries_the_configs_and_the_licence(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        (metadata,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        meta = z.read(metadata).decode()
    shipped = {n.removeprefix("affect/experiments/") for n in names if n.startswith("affect/experiments/")}
    source = {p.relative_to(REPO / "experiments").as_posix() for p in (REPO / "experiments").rglob("*")
              if p.is_file() and "__pycache__" not in p.parts}  # fmt: skip
    assert shipped == source
    assert not any(n.startswith("experiments/") for n in names)  # inside the package only
    assert "License-Expression: Apache-2.0" in meta
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "affect/relatedness/tables.json" in names and "affect/models/default/__init__.py" in names


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> dict:
    """A fresh venv with the wheel installed; the environment for its commands."""
    work = tmp_path_factory.mktemp("venv")
    venv = work / "venv"
    assert run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=work).returncode == 0
    python = venv / "bin" / "python"
    out = run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel], cwd=work)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    # only now the dependencies (torch, lightning, ...) of this environment; its editable affect stays out:
    # .pth files of a directory named in a .pth are not processed, and the venv's own site-packages comes first
    purelib = Path(run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=work)
                   .stdout.strip())  # fmt: skip
    (purelib / "zz_affect_test_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AFFECT_DATA")}
    env.update(HF_HUB_OFFLINE="1", NO_ALBUMENTATIONS_UPDATE="1", WANDB_MODE="offline", WANDB_SILENT="true")
    empty = work / "empty"
    empty.mkdir()
    return {"venv": venv, "python": python, "affect": venv / "bin" / "affect", "purelib": purelib, "env": env,
            "cwd": empty}  # fmt: skip


def test_installed_affect_runs_from_an_empty_folder(installed):
    env, cwd, affect = installed["env"], installed["cwd"], installed["affect"]
    where = run([installed["python"], "-c", "import affect, affect.demo, affect.predict; print(affect.__file__); "
                 "print(affect.demo.CONFIG); print(affect.predict.CONFIG)"], cwd, env)  # fmt: skip
    assert where.returncode == 0, where.stderr[-3000:]
    paths = [Path(p) for p in where.stdout.split()]
    assert all(p.is_relative_to(installed["purelib"] / "affect") for p in paths), paths
    assert paths[1].is_file() and paths[2].is_file()

    help_ = run([affect, "--help"], cwd, env)
    assert help_.returncode == 0, help_.stderr[-3000:]
    assert all(word in help_.stdout for word in ("fit", "predict", "prepare", "demo"))

    # a README command (experiments/... paths) and a name, from a folder without experiments/
    fit = run([affect, "fit", "--config", "experiments/model/facebehaviornet.yaml", "--config", "data/table6",
               "--config", "trainer/gpu.yaml", "--config", "table6/fbn_du2014", "--print_config"], cwd, env)  # fmt: skip
    assert fit.returncode == 0, fit.stderr[-3000:]
    assert "affect.models.facebehaviornet.FaceBehaviorNetModule" in fit.stdout and "name: table6-fbn_du2014" in fit.stdout

    for demo in ([affect, "demo", "--help"], [installed["python"], "-m", "affect.demo", "--help"]):
        started = run(demo, cwd, env)
        assert started.returncode == 0, started.stderr[-3000:]
        assert "--epochs" in started.stdout
    assert sorted(p.name for p in cwd.iterdir()) == []  # nothing written by these


def test_installed_predict_with_a_default_model(installed, tmp_path):
    env, cwd, affect = installed["env"], installed["cwd"], installed["affect"]
    package = installed["purelib"] / "affect" / "models" / "default"
    media = face_media(tmp_path / "media")
    # the wheel ships the default model: no checkpoint needed, from an empty folder
    shipped = run([affect, "predict", media["image"], "-o", "shipped", "--device", "cpu", "--no-progress"], cwd, env)
    assert shipped.returncode == 0, shipped.stderr[-4000:]
    rows = pd.read_csv(cwd / "shipped" / "predictions.csv")
    assert (rows["face_detected"] == 1).all() and abs(rows[list(EXPR_CLASSES)].sum(axis=1) - 1).max() < 1e-4
    for f in ("model.json", "weights.pt"):
        (package / f).unlink()
    missing = run([affect, "predict", media["image"], "-o", "none"], cwd, env)
    assert missing.returncode == 2 and "affect: error: no default model is installed" in missing.stderr
    tiny_default_model(tmp_path / "model", tmp_path)
    for f in (tmp_path / "model").iterdir():
        shutil.copy2(f, package / f.name)
    out = run([affect, "predict", media["image"], media["video"], "-o", "out", "--device", "cpu", "--no-progress"],
              cwd, env)  # fmt: skip
    assert out.returncode == 0, out.stderr[-4000:]
    result = cwd / "out"
    for name in ("predictions.csv", "inputs.csv", "summary.json", "plots"):
        assert (result / name).exists(), name
    table = pd.read_csv(result / "predictions.csv")
    faces = table[table["face_detected"] == 1]
    assert len(faces) == 7 and abs(faces[list(EXPR_CLASSES)].sum(axis=1) - 1).max() < 1e-4
    assert (result / "plots" / "clip.mp4_timeline.png").is_file()
