"""Synthetic faces: determinism, AU -> landmark geometry, Table V rates, circumplex VA, learnability."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from torch import nn

from affect.data.synthetic import (
    CIRCUMPLEX,
    Pose,
    draw_face,
    expected_au_rates,
    face_sequence,
    make_face,
    sample_labels,
    synthetic_audio,
)
from affect.labels import AU_SET, EXPR_CLASSES, NUM_AU, au_index
from affect.relatedness import load_compound_classes, load_relatedness

FRONTAL = Pose()


def _lm(aus: dict[int, float], valence: float = 0.0, arousal: float = 0.0, size: int = 96) -> np.ndarray:
    """Landmarks of a frontal face with the given AU intensities (same identity for every call)."""
    au = np.zeros(NUM_AU, np.float32)
    for unit, value in aus.items():
        au[au_index(unit)] = value
    from affect.data.synthetic import Appearance

    app = Appearance.sample(np.random.default_rng(7))
    _, lm = draw_face(au, np.random.default_rng(0), size, valence, arousal, appearance=app, pose=FRONTAL)
    return lm


def test_deterministic_for_a_seed():
    a = make_face(np.random.default_rng(5), size=64)
    b = make_face(np.random.default_rng(5), size=64)
    c = make_face(np.random.default_rng(6), size=64)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2]["expr"] == b[2]["expr"] and np.array_equal(a[2]["au"], b[2]["au"])
    assert not np.array_equal(a[0], c[0])
    s1 = face_sequence(np.random.default_rng(1), 5, size=32)
    s2 = face_sequence(np.random.default_rng(1), 5, size=32)
    np.testing.assert_array_equal(s1[0], s2[0])


def test_image_and_landmark_shapes_and_bounds():
    for size in (48, 96):
        img, lm, lab = make_face(np.random.default_rng(0), size=size)
        assert img.shape == (size, size, 3) and img.dtype == np.uint8
        assert lm.shape == (68, 2) and lm.dtype == np.float32
        assert np.all(lm > 0) and np.all(lm < size)
        assert set(lab) == {"expr", "au", "au_intensity", "valence", "arousal", "compound"}


def test_landmarks_follow_aus():
    base = _lm({})
    up = 96 * 0.02  # at least ~2 pixels at 96x96
    smile = _lm({12: 1.0})
    assert smile[48, 1] < base[48, 1] - up and smile[54, 1] < base[54, 1] - up  # AU12 lifts corners
    frown = _lm({15: 1.0})
    assert frown[48, 1] > base[48, 1] + up and frown[54, 1] > base[54, 1] + up  # AU15 drops them
    jaw = _lm({26: 1.0})
    gap = lambda lm: lm[66, 1] - lm[62, 1]  # noqa: E731
    assert gap(jaw) > gap(base) + 4 and jaw[8, 1] > base[8, 1] + 4  # AU26 opens mouth, drops chin
    parted = _lm({25: 1.0})
    assert gap(base) < 0.5 < gap(parted) < gap(jaw)  # AU25 parts the lips a little
    inner = _lm({1: 1.0})
    assert inner[21, 1] < base[21, 1] - up and inner[22, 1] < base[22, 1] - up  # AU1 inner brows
    assert inner[21, 1] < inner[17, 1] - (base[21, 1] - base[17, 1])  # ... more than the outer ends
    outer = _lm({2: 1.0})
    assert outer[17, 1] < base[17, 1] - up and outer[26, 1] < base[26, 1] - up  # AU2 outer brows
    low = _lm({4: 1.0})
    assert low[21, 1] > base[21, 1] + 1 and (low[22, 0] - low[21, 0]) < (base[22, 0] - base[21, 0]) - 2
    wide = _lm({5: 1.0})
    assert (wide[41, 1] - wide[37, 1]) > (base[41, 1] - base[37, 1]) + 2  # AU5 opens the eyes
    tight = _lm({7: 1.0})
    assert tight[41, 1] < base[41, 1] - 0.5  # AU7 raises the lower lid
    stretch = _lm({20: 1.0})
    assert (stretch[54, 0] - stretch[48, 0]) > (base[54, 0] - base[48, 0]) + 5  # AU20 widens the mouth
    tighten = _lm({23: 1.0})
    assert (tighten[57, 1] - tighten[51, 1]) < (base[57, 1] - base[51, 1]) - 1  # AU23 thins the lips
    chin = _lm({17: 1.0})
    assert chin[8, 1] < base[8, 1] - 1 and chin[57, 1] < base[57, 1] - 1  # AU17 raises chin and lower lip
    wrinkle = _lm({9: 1.0})
    assert wrinkle[33, 1] < base[33, 1] - 1  # AU9 lifts the nose base
    lip_up = _lm({10: 1.0})
    assert lip_up[51, 1] < base[51, 1] - 1  # AU10 raises the upper lip
    # VA: valence bends the corners up, arousal opens the eyes.
    pos, neg = _lm({}, valence=1.0), _lm({}, valence=-1.0)
    assert pos[48, 1] < neg[48, 1] - 2
    hi, lo = _lm({}, arousal=1.0), _lm({}, arousal=-1.0)
    assert (hi[41, 1] - hi[37, 1]) > (lo[41, 1] - lo[37, 1]) + 1


def test_every_au_changes_the_image():
    """Each AU alone changes the pixels of an otherwise identical face, also at 48x48."""
    from affect.data.synthetic import Appearance

    app = Appearance.sample(np.random.default_rng(3))
    for size in (48, 96):
        ref, _ = draw_face(np.zeros(NUM_AU), np.random.default_rng(0), size, appearance=app, pose=FRONTAL)
        for k, unit in enumerate(AU_SET):
            au = np.zeros(NUM_AU)
            au[k] = 1.0
            img, _ = draw_face(au, np.random.default_rng(0), size, appearance=app, pose=FRONTAL)
            diff = np.abs(img.astype(int) - ref.astype(int)).max(axis=2)
            assert (diff > 30).sum() >= size // 24, f"AU{unit} barely visible at {size}px"


def test_pose_transform_matches_the_documented_formula():
    pose = Pose(yaw=0.2, roll=0.1, scale=0.95, tx=0.02, ty=-0.03)
    pts = np.random.default_rng(0).uniform(0, 1, (10, 2)).astype(np.float32)
    depth = np.linspace(0, 0.1, 10)
    x = (pts[:, 0] - 0.5) * np.cos(pose.yaw) + depth * np.sin(pose.yaw)
    y = pts[:, 1] - 0.5
    c, s = np.cos(pose.roll) * pose.scale, np.sin(pose.roll) * pose.scale
    ref = np.stack([(c * x - s * y + 0.5 + pose.tx) * 96, (s * x + c * y + 0.5 + pose.ty) * 96], 1)
    np.testing.assert_allclose(pose.apply(pts, depth, 96), ref, atol=1e-3)
    np.testing.assert_allclose(Pose().apply(pts, 0.05, 48), pts * 48, atol=1e-4)  # identity pose


def test_draw_face_rejects_bad_au():
    with pytest.raises(ValueError, match=r"shape \(17,\)"):
        draw_face(np.zeros(8), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        draw_face(np.full(17, 2.0), np.random.default_rng(0))


@pytest.mark.parametrize("relatedness", ["du2014", "affwild2"])
def test_au_rates_match_table_v(relatedness):
    rel = load_relatedness(relatedness)
    rng = np.random.default_rng(0)
    n = 1500
    for e, emotion in enumerate(EXPR_CLASSES):
        au = np.stack([sample_labels(rng, expr=e, relatedness=relatedness)["au"] for _ in range(n)])
        rate = au.mean(0)
        expected = expected_au_rates(relatedness)[e]
        # independent reference straight from the table: prototypical 1, observational ~w
        for unit in rel.prototypical.get(emotion, ()):
            if unit in AU_SET:
                assert rate[au_index(unit)] == 1.0
        for unit, w in rel.observational.get(emotion, {}).items():
            if unit in AU_SET:
                assert abs(rate[au_index(unit)] - w) < 0.06, (emotion, unit, rate[au_index(unit)], w)
        np.testing.assert_allclose(rate, expected, atol=4 * np.sqrt(0.25 / n))
        if emotion == "Neutral":
            assert rate.max() < 0.03


def test_va_means_follow_circumplex():
    rng = np.random.default_rng(1)
    for e, emotion in enumerate(EXPR_CLASSES):
        va = np.array([[lab["valence"], lab["arousal"]] for lab in (sample_labels(rng, expr=e) for _ in range(600))])
        assert np.all(np.abs(va) <= 1.0)
        np.testing.assert_allclose(va.mean(0), CIRCUMPLEX[emotion], atol=0.03)


def test_intensity_and_occurrence_agree():
    rng = np.random.default_rng(2)
    for _ in range(200):
        lab = sample_labels(rng)
        np.testing.assert_array_equal(lab["au"], (lab["au_intensity"] > 0).astype(np.float32))
        assert lab["au_intensity"].max() <= 1.0
        assert lab["au_intensity"][lab["au"] == 1].min(initial=1.0) >= 0.4


def test_compound_labels():
    rng = np.random.default_rng(3)
    for cls in load_compound_classes():
        labs = [sample_labels(rng, compound=cls.name) for _ in range(50)]
        assert all(lab["expr"] == -1 and lab["compound"] == cls.name for lab in labs)
        au = np.stack([lab["au"] for lab in labs])
        for unit in cls.aus:
            assert au[:, au_index(unit)].min() == 1.0
        va = np.mean([[lab["valence"], lab["arousal"]] for lab in labs], axis=0)
        centre = np.mean([CIRCUMPLEX[c] for c in cls.components], axis=0)
        np.testing.assert_allclose(va, centre, atol=0.08)
    img, lm, lab = make_face(rng, compound="Happily Surprised", size=48)
    assert img.shape == (48, 48, 3) and lab["compound"] == "Happily Surprised" and lab["expr"] == -1
    with pytest.raises(ValueError, match="not both"):
        sample_labels(rng, expr=1, compound="Awed")
    with pytest.raises(ValueError, match="unknown compound"):
        sample_labels(rng, compound="Bored")
    with pytest.raises(ValueError, match="expr must be in 0..6"):
        sample_labels(rng, expr=7)


def test_face_sequence_is_smooth_and_changes_expression():
    imgs, lms, lab = face_sequence(np.random.default_rng(4), 180, size=32, fps=30, segment_s=(1.0, 1.5))
    assert imgs.shape == (180, 32, 32, 3) and lms.shape == (180, 68, 2)
    assert len(np.unique(lab["expr"])) >= 2  # several segments in 6 s
    step = np.abs(np.diff(lab["au_intensity"], axis=0)).max()
    assert step < 0.2  # eased transitions, no jumps
    assert np.abs(np.diff(lab["valence"])).max() < 0.2
    assert np.abs(np.diff(lms, axis=0)).max() < 3.0  # landmarks move a few pixels per frame at most
    np.testing.assert_array_equal(lab["au"], (lab["au_intensity"] >= 0.2).astype(np.float32))


def test_synthetic_audio_follows_va():
    fps, sr = 30.0, 16000
    quiet = synthetic_audio(np.full(30, 0.5), np.full(30, -0.9), fps, sr, np.random.default_rng(0))
    loud = synthetic_audio(np.full(30, 0.5), np.full(30, 0.9), fps, sr, np.random.default_rng(0))
    assert quiet.shape == (sr,) and quiet.dtype == np.float32 and np.abs(loud).max() <= 1.0
    assert np.sqrt(np.mean(loud**2)) > 2.5 * np.sqrt(np.mean(quiet**2))  # arousal -> loudness

    def pitch(wave):
        spec = np.abs(np.fft.rfft(wave))
        freqs = np.fft.rfftfreq(len(wave), 1 / sr)
        band = (freqs > 80) & (freqs < 400)
        return freqs[band][np.argmax(spec[band])]

    assert pitch(loud) > pitch(quiet) * 1.5  # arousal -> pitch (110 -> ~205 Hz)

    def flatness(wave):  # spectral flatness: ~1 for noise, ~0 for a harmonic tone
        p = np.abs(np.fft.rfft(wave)) ** 2 + 1e-12
        return np.exp(np.mean(np.log(p))) / np.mean(p)

    pos = synthetic_audio(np.full(30, 0.95), np.zeros(30), fps, sr, np.random.default_rng(0))
    neg = synthetic_audio(np.full(30, -0.95), np.zeros(30), fps, sr, np.random.default_rng(0))
    assert flatness(neg) > 5 * flatness(pos)  # valence -> harmonic vs noisy
    with pytest.raises(ValueError, match="equal length"):
        synthetic_audio(np.zeros(3), np.zeros(4), fps)


# --------------------------------------------------------------------------------------- learnability


class _TinyNet(nn.Module):
    """Three strided 3x3/5x5 conv blocks and one linear layer over the 6x6 map (geometry needs position)."""

    def __init__(self) -> None:
        super().__init__()

        def block(i: int, o: int, k: int = 3) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(i, o, k, stride=2, padding=k // 2), nn.BatchNorm2d(o), nn.ReLU())

        self.features = nn.Sequential(block(3, 24, 5), block(24, 48), block(48, 64), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(64 * 6 * 6, 7 + NUM_AU + 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x.float() / 127.5 - 1))


def _ccc(pred: np.ndarray, target: np.ndarray) -> float:
    """Concordance correlation coefficient (population moments), written out for the test."""
    mp, mt = pred.mean(), target.mean()
    cov = ((pred - mp) * (target - mt)).mean()
    return float(2 * cov / (pred.var() + target.var() + (mp - mt) ** 2))


def _data(n: int, seed: int, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    faces = [make_face(rng, size=size) for _ in range(n)]
    x = torch.from_numpy(np.stack([f[0] for f in faces])).permute(0, 3, 1, 2).contiguous()
    expr = torch.tensor([f[2]["expr"] for f in faces])
    au = torch.from_numpy(np.stack([f[2]["au"] for f in faces]))
    va = torch.tensor([[f[2]["valence"], f[2]["arousal"]] for f in faces], dtype=torch.float32)
    return x, expr, au, va


@pytest.mark.slow
def test_tiny_cnn_learns_all_three_tasks():
    """A 3-conv CNN trained for 10 epochs on 3,000 faces (48x48) beats chance clearly on held-out faces.

    The budget is in epochs, never in seconds: a loaded machine takes longer, not fewer epochs.

    Measured (10 epochs, 20-30 s on one shared core): EXPR acc ~0.90 (chance 0.14), mean F1 over
    the 17 AUs ~0.75 (the rare AU14 ~0.45 and AU23 ~0.3 pull it down), CCC V ~0.81, A ~0.74.
    """
    from sklearn.metrics import f1_score

    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one thread: on a shared CPU, oversubscription costs 10x
    try:
        _learn(f1_score)
    finally:
        torch.set_num_threads(threads)


EPOCHS = 10  # measured: every task well above its threshold after 10 epochs (values in the docstring)


def _learn(f1_score) -> None:
    size = 48
    x, expr, au, va = _data(3000, seed=0, size=size)
    xt, expr_t, au_t, va_t = _data(600, seed=1, size=size)
    net = _TinyNet()
    opt = torch.optim.Adam(net.parameters(), lr=2e-3, weight_decay=1e-4)
    start = time.perf_counter()  # only printed: the budget is EPOCHS, not time
    for _epoch in range(EPOCHS):
        net.train()
        perm = torch.randperm(len(x))
        for b in range(0, len(x), 64):
            idx = perm[b : b + 64]
            out = net(x[idx])
            p_va = torch.tanh(out[:, -2:])
            t_va = va[idx]
            mp, mt = p_va.mean(0), t_va.mean(0)
            cov = ((p_va - mp) * (t_va - mt)).mean(0)
            ccc = 2 * cov / (p_va.var(0, unbiased=False) + t_va.var(0, unbiased=False) + (mp - mt) ** 2)
            loss = (
                nn.functional.cross_entropy(out[:, :7], expr[idx])
                + nn.functional.binary_cross_entropy_with_logits(out[:, 7:-2], au[idx])
                + (1 - ccc.mean())
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
    train_s = time.perf_counter() - start
    net.eval()
    with torch.no_grad():
        out = net(xt)
    acc = float((out[:, :7].argmax(1) == expr_t).float().mean())
    au_pred = (torch.sigmoid(out[:, 7:-2]) > 0.5).numpy()
    present = au_t.numpy().sum(0) >= 10  # AUs with enough held-out positives for a meaningful F1
    f1 = f1_score(au_t.numpy()[:, present], au_pred[:, present], average="macro", zero_division=0)
    p_va = torch.tanh(out[:, -2:]).numpy()
    ccc_v, ccc_a = _ccc(p_va[:, 0], va_t[:, 0].numpy()), _ccc(p_va[:, 1], va_t[:, 1].numpy())
    print(f"\nlearnability: {EPOCHS} epochs in {train_s:.1f} s; EXPR acc {acc:.3f}, AU F1 {f1:.3f} "
          f"({int(present.sum())} AUs), CCC V {ccc_v:.3f} A {ccc_a:.3f}")
    assert acc >= 0.6, acc
    assert f1 >= 0.6, f1
    assert 0.5 * (ccc_v + ccc_a) >= 0.5, (ccc_v, ccc_a)
