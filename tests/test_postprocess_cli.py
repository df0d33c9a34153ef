"""``affect postprocess`` through the real CLI, against hand-computed fusion (eq. 3) and a scipy median filter."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.ndimage import median_filter as scipy_median

from affect.cli import main


def predictions(rng, n=9) -> pd.DataFrame:
    rows = []
    for inp, fids in (("a.mp4", (0, 1)), ("b.jpg", (0,))):
        for k in range(n if inp == "a.mp4" else 1):
            for f in fids:
                rows.append({"input": inp, "kind": "video", "frame": k, "face_id": f, "face_detected": 1})
        if inp == "a.mp4":
            rows.append({"input": inp, "kind": "video", "frame": n, "face_id": -1, "face_detected": 0})
    df = pd.DataFrame(rows)
    df["valence"] = np.where(df["face_id"] >= 0, rng.uniform(-1, 1, len(df)), np.nan)
    df["arousal"] = np.where(df["face_id"] >= 0, rng.uniform(-1, 1, len(df)), np.nan)
    df["Happiness"] = rng.uniform(0, 1, len(df))
    return df


def test_fusion_and_median_filter(tmp_path, capsys):
    rng = np.random.default_rng(0)
    a, b = predictions(rng), predictions(rng)
    b = b.sample(frac=1.0, random_state=0)  # the same rows in another order
    a.to_csv(tmp_path / "a.csv", index=False)
    b.to_csv(tmp_path / "b.csv", index=False)
    assert main(["postprocess", str(tmp_path / "a.csv"), str(tmp_path / "b.csv"), "--ccc", "0.6,0.2",
                 "--ccc", "0.2,0.6", "--median-filter", "3", "-o", str(tmp_path / "out.csv")]) == 0  # fmt: skip
    out = pd.read_csv(tmp_path / "out.csv")
    bb = b.set_index(["input", "frame", "face_id"]).loc[list(a[["input", "frame", "face_id"]].itertuples(index=False))]
    fused_v = (0.6 * a["valence"].to_numpy() + 0.2 * bb["valence"].to_numpy()) / 0.8
    fused_a = (0.2 * a["arousal"].to_numpy() + 0.6 * bb["arousal"].to_numpy()) / 0.8
    for fid in (0, 1):
        m = ((a["input"] == "a.mp4") & (a["face_id"] == fid)).to_numpy()
        np.testing.assert_allclose(out.loc[m, "valence"], scipy_median(fused_v[m], 3, mode="nearest"), rtol=1e-12)
        np.testing.assert_allclose(out.loc[m, "arousal"], scipy_median(fused_a[m], 3, mode="nearest"), rtol=1e-12)
    single = (a["input"] == "b.jpg").to_numpy()
    np.testing.assert_allclose(out.loc[single, "valence"], fused_v[single])
    assert out.loc[a["face_id"] == -1, ["valence", "arousal"]].isna().all().all()
    np.testing.assert_allclose(out["Happiness"], a["Happiness"])  # other columns: the first file's
    assert "2 file(s)" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--median-filter", "4"], "positive odd"),
    (["X"], "one --ccc V,A per file"),
    (["X", "--ccc", "0.5,0.5", "--ccc=-1,0.5"], "must be >= 0"),
])  # fmt: skip
def test_bad_options_are_one_line_errors(tmp_path, capsys, args, message):
    rng = np.random.default_rng(1)
    predictions(rng).to_csv(tmp_path / "a.csv", index=False)
    predictions(rng).to_csv(tmp_path / "b.csv", index=False)
    args = [str(tmp_path / "b.csv") if x == "X" else x for x in args]
    assert main(["postprocess", str(tmp_path / "a.csv"), *args, "-o", str(tmp_path / "o.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("affect: error:") and message in err and len(err.strip().splitlines()) == 1


def test_a_file_without_va_or_with_other_rows_is_refused(tmp_path, capsys):
    rng = np.random.default_rng(2)
    df = predictions(rng)
    df.drop(columns=["arousal"]).to_csv(tmp_path / "nova.csv", index=False)
    assert main(["postprocess", str(tmp_path / "nova.csv"), "-o", str(tmp_path / "o.csv")]) == 2
    assert "lacks the columns ['arousal']" in capsys.readouterr().err
    df.to_csv(tmp_path / "a.csv", index=False)
    df.iloc[:-2].to_csv(tmp_path / "short.csv", index=False)
    assert main(["postprocess", str(tmp_path / "a.csv"), str(tmp_path / "short.csv"), "--ccc", "1,1", "--ccc", "1,1",
                 "-o", str(tmp_path / "o.csv")]) == 2  # fmt: skip
    assert "does not hold the same rows" in capsys.readouterr().err
