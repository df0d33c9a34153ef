"""Post-processing (paper Sec. V-B): medians, eq. 3, OMG utterance aggregation, validation-chosen chain."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.ndimage import median_filter as scipy_median_filter

from affect.models.postprocess import (
    PostProcessChain,
    PostStep,
    decision_level_fusion,
    group_means,
    group_medians,
    median_filter,
    moving_average,
    omg_chain,
    sequence_medians,
    utterance_estimates,
)


def _ccc(x: np.ndarray, y: np.ndarray) -> float:
    """Eq. 1 with population moments, written out independently of affect.metrics."""
    sxy = np.mean((x - x.mean()) * (y - y.mean()))
    return float(2 * sxy / (x.var() + y.var() + (x.mean() - y.mean()) ** 2))


def test_sequence_medians_hand_computed() -> None:
    preds = torch.tensor(
        [
            [[0.1, 0.9], [0.4, 0.2], [0.3, 0.5], [5.0, 5.0]],  # last frame padding
            [[-0.2, 0.0], [0.6, 0.4], [0.2, 0.8], [0.0, 0.1]],  # 4 valid frames: even count
        ]
    )
    mask = torch.tensor([[True, True, True, False], [True, True, True, True]])
    out = sequence_medians(preds, mask)
    # seq 0: valence {0.1, 0.4, 0.3} -> 0.3; arousal {0.9, 0.2, 0.5} -> 0.5
    # seq 1: valence {-0.2, 0.6, 0.2, 0.0} -> (0.0 + 0.2)/2 = 0.1; arousal {0, .4, .8, .1} -> (.1+.4)/2
    torch.testing.assert_close(out, torch.tensor([[0.3, 0.5], [0.1, 0.25]]))
    # without a mask the padding counts
    torch.testing.assert_close(sequence_medians(preds)[0], torch.tensor([0.35, 0.7]))


def test_sequence_medians_matches_numpy_random() -> None:
    g = torch.Generator().manual_seed(0)
    preds = torch.randn(5, 9, 2, generator=g)
    lengths = [9, 1, 4, 7, 2]
    mask = torch.arange(9)[None] < torch.tensor(lengths)[:, None]
    ref = np.stack([np.median(preds[b, :n].numpy(), axis=0) for b, n in enumerate(lengths)])
    np.testing.assert_allclose(sequence_medians(preds, mask).numpy(), ref, rtol=1e-6)


def test_sequence_medians_errors() -> None:
    with pytest.raises(ValueError, match="no valid entry"):
        sequence_medians(torch.zeros(2, 3, 2), torch.tensor([[True, False, False], [False, False, False]]))
    with pytest.raises(ValueError, match=r"expects predictions \[B, T, D\]"):
        sequence_medians(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="frame_mask shape"):
        sequence_medians(torch.zeros(2, 3, 2), torch.ones(2, 4, dtype=torch.bool))


def test_group_medians_and_means() -> None:
    values = torch.tensor([[1.0, 0.0], [3.0, 2.0], [10.0, 10.0], [2.0, 4.0], [20.0, 0.0]])
    ids = ["a", "a", "b", "a", "b"]
    uniq, med = group_medians(values, ids)
    assert uniq == ["a", "b"]
    torch.testing.assert_close(med, torch.tensor([[2.0, 2.0], [15.0, 5.0]]))
    uniq, mean = group_means(values, ids)
    torch.testing.assert_close(mean, torch.tensor([[2.0, 2.0], [15.0, 5.0]]))
    with pytest.raises(ValueError, match="2 ids for 5 rows"):
        group_means(values, ["a", "b"])


def test_decision_level_fusion_worked_example() -> None:
    # Eq. 3 by hand. CNN-1RNN: val CCC (v, a) = (0.449, 0.303); CNN-3RNN: (0.472, 0.329).
    # Sample estimates: CNN-1RNN (0.2, -0.1), CNN-3RNN (0.4, 0.3).
    # O_v = (0.449 * 0.2 + 0.472 * 0.4) / (0.449 + 0.472) = 0.2786 / 0.921 = 0.302497...
    # O_a = (0.303 * -0.1 + 0.329 * 0.3) / (0.303 + 0.329) = 0.0684 / 0.632 = 0.108227...
    one = torch.tensor([[0.2, -0.1]])
    three = torch.tensor([[0.4, 0.3]])
    fused = decision_level_fusion([one, three], val_ccc=[[0.449, 0.303], [0.472, 0.329]])
    torch.testing.assert_close(fused, torch.tensor([[0.2786 / 0.921, 0.0684 / 0.632]]))
    # per-frame estimates [B, T, 2] work the same, weights per dimension
    fused_t = decision_level_fusion(
        [one.expand(3, 4, 2), three.expand(3, 4, 2)], [[0.449, 0.303], [0.472, 0.329]]
    )
    torch.testing.assert_close(fused_t, fused.expand(3, 4, 2))
    # equal weights = plain average; one zero weight = the other network
    torch.testing.assert_close(decision_level_fusion([one, three], [[1, 1], [1, 1]]), (one + three) / 2)
    torch.testing.assert_close(
        decision_level_fusion([one, three], [[0, 0.5], [0.7, 0.0]]), torch.tensor([[0.4, -0.1]])
    )


def test_decision_level_fusion_errors() -> None:
    one = torch.zeros(2, 2)
    with pytest.raises(ValueError, match=r"shape \[2, 2\]"):
        decision_level_fusion([one, one], [[0.5, 0.5]])
    with pytest.raises(ValueError, match="must be >= 0"):
        decision_level_fusion([one, one], [[0.5, -0.1], [0.4, 0.3]])
    with pytest.raises(ValueError, match="positive sum"):
        decision_level_fusion([one, one], [[0.0, 0.5], [0.0, 0.3]])
    with pytest.raises(ValueError, match="at least one"):
        decision_level_fusion([], [])


def test_utterance_estimates_median_then_mean() -> None:
    # utterance u1 split into 2 sequences, u2 into 1 sequence
    frames = torch.tensor(
        [
            [[0.1, 0.0], [0.5, 0.2], [0.3, 0.4]],  # u1 seq A: medians (0.3, 0.2)
            [[0.9, 0.6], [0.7, 0.8], [0.0, 0.0]],  # u1 seq B, last frame padding: (0.8, 0.7)
            [[-0.5, 0.1], [-0.1, 0.3], [-0.3, 0.9]],  # u2: (-0.3, 0.3)
        ]
    )
    mask = torch.tensor([[True, True, True], [True, True, False], [True, True, True]])
    ids, est = utterance_estimates(frames, mask, ["u1", "u1", "u2"])
    assert ids == ["u1", "u2"]
    # u1 = mean of the sequence medians = ((0.3 + 0.8)/2, (0.2 + 0.7)/2) = (0.55, 0.45)
    torch.testing.assert_close(est, torch.tensor([[0.55, 0.45], [-0.3, 0.3]]))
    with pytest.raises(ValueError, match="1 utterance ids for 3 sequences"):
        utterance_estimates(frames, mask, ["u1"])


def test_median_filter_against_scipy() -> None:
    g = torch.Generator().manual_seed(1)
    preds = torch.randn(3, 11, 2, generator=g)
    for k in (1, 3, 5, 7):
        ref = scipy_median_filter(preds.numpy(), size=(1, k, 1), mode="nearest")
        np.testing.assert_allclose(median_filter(preds, k).numpy(), ref)
    # with trailing padding: each sequence filtered over its own valid prefix; padding untouched
    mask = torch.arange(11)[None] < torch.tensor([11, 5, 1])[:, None]
    out = median_filter(preds, 3, mask)
    for b, n in enumerate([11, 5, 1]):
        ref = scipy_median_filter(preds[b, :n].numpy(), size=(3, 1), mode="nearest")
        np.testing.assert_allclose(out[b, :n].numpy(), ref)
        torch.testing.assert_close(out[b, n:], preds[b, n:])


def test_median_filter_errors() -> None:
    with pytest.raises(ValueError, match="positive odd"):
        median_filter(torch.zeros(1, 4, 2), 4)
    with pytest.raises(ValueError, match="trailing padding"):
        median_filter(torch.zeros(1, 4, 2), 3, torch.tensor([[True, False, True, False]]))


def test_moving_average_against_pandas() -> None:
    g = torch.Generator().manual_seed(2)
    values = torch.randn(9, 2, generator=g, dtype=torch.float64)
    groups = ["v1", "v2", "v1", "v1", "v2", "v1", "v2", "v1", "v1"]
    out = moving_average(values, 3, groups)
    frame = pd.DataFrame(values.numpy(), columns=["v", "a"]).assign(g=groups)
    ref = frame.groupby("g")[["v", "a"]].transform(lambda s: s.rolling(3, center=True, min_periods=1).mean())
    np.testing.assert_allclose(out.numpy(), ref.to_numpy())
    # hand example, one group: [0, 3, 6, 3] with w=3 -> [1.5, 3, 4, 4.5]
    out = moving_average(torch.tensor([[0.0], [3.0], [6.0], [3.0]]), 3)
    torch.testing.assert_close(out, torch.tensor([[1.5], [3.0], [4.0], [4.5]]))
    with pytest.raises(ValueError, match="positive odd"):
        moving_average(values, 2)


def test_chain_keeps_only_improving_steps_and_applies_them_unchanged() -> None:
    # state: a 1-D numpy series. Score = -|mean - 1|. "add" steps move the mean.
    calls: list[str] = []

    def add(c: float):
        def f(x):
            calls.append(f"add{c}")
            return x + c

        return f

    chain = PostProcessChain(
        steps=[
            PostStep("shift", {"+0.5": add(0.5), "+0.8": add(0.8), "+3": add(3.0)}),
            PostStep("double", {"x2": lambda x: x * 2}, optional=False),
            PostStep("hurt", {"+5": add(5.0)}),
        ]
    )
    with pytest.raises(RuntimeError, match="must run before"):
        chain(np.zeros(3))
    val = np.zeros(3)  # baseline after the fixed step: mean 0 -> score -1
    chain.fit(val, score=lambda x: -abs(float(np.mean(x)) - 1.0))
    # +0.5 -> x2 -> mean 1.0 (score 0) beats +0.8 (mean 1.6, -0.6) and +3 (-7); "hurt" never helps.
    assert chain.choices == {"shift": "+0.5", "hurt": None}
    assert chain.scores["baseline"] == -1.0 and chain.scores["shift:+0.5"] == 0.0
    calls.clear()
    # applied unchanged to "test": only the kept configuration and the fixed step run
    np.testing.assert_allclose(chain(np.full(2, 10.0)), np.full(2, 21.0))
    assert calls == ["add0.5"]


def test_chain_step_validation() -> None:
    with pytest.raises(ValueError, match="no candidate"):
        PostStep("empty", {})
    with pytest.raises(ValueError, match="exactly one candidate"):
        PostStep("fixed", {"a": abs, "b": abs}, optional=False)


def test_omg_chain_on_noisy_predictions() -> None:
    # 6 utterances in 2 videos, each split into 2 sequences of 15 frames; targets per utterance.
    # Per-frame predictions = utterance target + impulsive noise spikes: the median filter should be
    # kept, and the chain's utterance estimates should equal the manual median-then-mean pipeline.
    g = torch.Generator().manual_seed(3)
    utt_target = torch.tensor([[0.1, 0.2], [0.5, 0.1], [-0.4, 0.6], [0.3, -0.3], [0.0, 0.4], [-0.2, 0.0]])
    utt = [f"u{i}" for i in range(6) for _ in range(2)]
    video = ["a" if i < 3 else "b" for i in range(6) for _ in range(2)]
    frames = utt_target.repeat_interleave(2, 0)[:, None, :].expand(12, 15, 2).clone()
    frames += 0.05 * torch.randn(12, 15, 2, generator=g)
    spikes = torch.rand(12, 15, 2, generator=g) < 0.45
    frames[spikes] += 1.5
    state = {"frames": frames, "frame_mask": None, "utterance": utt, "video": video}
    target_of = dict(zip([f"u{i}" for i in range(6)], utt_target.numpy(), strict=True))

    def score(s) -> float:
        y = np.stack([target_of[u] for u in s["utterance"]])
        x = s["va"].numpy()
        return 0.5 * (_ccc(x[:, 0], y[:, 0]) + _ccc(x[:, 1], y[:, 1]))

    chain = omg_chain(median_kernels=(3, 5), smoothing_windows=(3,)).fit(state, score)
    assert chain.choices["median_filter"] is not None
    assert chain.scores[f"median_filter:{chain.choices['median_filter']}"] > chain.scores["baseline"]
    # the manual pipeline: median filter -> medians per sequence -> mean per utterance
    k = int(chain.choices["median_filter"].split("=")[1])
    filtered = scipy_median_filter(frames.numpy(), size=(1, k, 1), mode="nearest")
    manual = np.median(filtered, axis=1).reshape(6, 2, 2).mean(1)
    out = chain(state)
    assert out["utterance"] == [f"u{i}" for i in range(6)] and out["video"] == ["a"] * 3 + ["b"] * 3
    if chain.choices["smoothing"] is None:
        np.testing.assert_allclose(out["va"].numpy(), manual, rtol=1e-5)
    assert score(out) == pytest.approx(max(chain.scores.values()))
