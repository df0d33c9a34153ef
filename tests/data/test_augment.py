"""Training-batch augmentation: flips mirror images and landmarks, shifts move both together."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from affect.data.augment import MIRROR_68, BatchAugment
from affect.data.synthetic import make_face


def face_batch(n=4, seed=0):
    rng = np.random.default_rng(seed)
    faces = [make_face(rng, size=64) for _ in range(n)]
    return {
        "image": torch.from_numpy(np.stack([f[0] for f in faces])).permute(0, 3, 1, 2).contiguous(),
        "landmarks": torch.from_numpy(np.stack([f[1] for f in faces]) / 64.0).float(),
        "expr": torch.tensor([f[2]["expr"] for f in faces]),
    }


def test_mirror_table_is_an_involution_that_swaps_sides():
    assert sorted(MIRROR_68) == list(range(68))
    assert all(MIRROR_68[MIRROR_68[i]] == i for i in range(68))
    assert MIRROR_68[36] == 45 and MIRROR_68[48] == 54 and MIRROR_68[30] == 30 and MIRROR_68[0] == 16


def test_flip_mirrors_pixels_and_landmarks():
    batch = face_batch()
    out = BatchAugment(flip=1.0, max_shift=0.0, seed=1)(batch)
    assert torch.equal(out["image"], batch["image"].flip(-1))
    lm, new = batch["landmarks"], out["landmarks"]
    # the new left eye (36-41) is the old right eye (42-47) reflected about the vertical midline
    np.testing.assert_allclose(new[:, 36:42, 0].numpy(), 1.0 - lm[:, [45, 44, 43, 42, 47, 46], 0].numpy(), atol=1e-6)
    np.testing.assert_allclose(new[:, 36:42, 1].numpy(), lm[:, [45, 44, 43, 42, 47, 46], 1].numpy(), atol=1e-6)
    # left-of-right ordering is preserved: point 36 (outer corner) stays left of point 45
    assert (new[:, 36, 0] < new[:, 45, 0]).all()
    assert torch.equal(out["expr"], batch["expr"]) and torch.equal(batch["image"], face_batch()["image"])


def test_shift_moves_image_content_and_landmarks_together():
    batch = face_batch(n=1)
    image = torch.zeros(1, 3, 20, 20, dtype=torch.uint8)
    image[0, :, 10, 10] = 255
    batch = {"image": image, "landmarks": torch.full((1, 68, 2), 0.5)}
    out = BatchAugment(flip=0.0, max_shift=0.2, seed=3)(batch)
    ys, xs = torch.nonzero(out["image"][0, 0] == 255, as_tuple=True)
    dy, dx = int(ys[0]) - 10, int(xs[0]) - 10
    assert (dy, dx) != (0, 0) and abs(dy) <= 4 and abs(dx) <= 4
    np.testing.assert_allclose(out["landmarks"][0, 0].numpy(), [0.5 + dx / 20, 0.5 + dy / 20], atol=1e-6)


def test_bad_arguments_and_sequences_raise():
    with pytest.raises(ValueError, match="flip must be in"):
        BatchAugment(flip=2.0)
    with pytest.raises(ValueError, match="frame batches"):
        BatchAugment()({"image": torch.zeros(1, 2, 3, 4, 4, dtype=torch.uint8)})


def test_datamodule_augments_training_batches_only(tmp_path):
    from affect.data.corpora.fer2013 import Fer2013DataModule
    from affect.data.fixtures import write_fixture_tree

    write_fixture_tree(tmp_path, ["fer2013"])
    plain = Fer2013DataModule(str(tmp_path / "fer2013"), batch_size=64, image_size=48)
    aug = Fer2013DataModule(str(tmp_path / "fer2013"), batch_size=64, image_size=48, augment=True)
    a = next(iter(plain.dataloader("train", shuffle=False)))
    b = next(iter(aug.dataloader("train", shuffle=False)))
    assert torch.equal(a["expr"], b["expr"]) and not torch.equal(a["image"], b["image"])
    assert torch.equal(next(iter(plain.test_dataloader()))["image"], next(iter(aug.test_dataloader()))["image"])


def test_batched_shift_equals_per_sample_crops_of_the_padded_image():
    """Each sample's output is the edge-padded input cropped at the offset its landmarks moved by."""
    gen = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (6, 3, 20, 24), dtype=torch.uint8, generator=gen)
    batch = {"image": images, "landmarks": torch.full((6, 68, 2), 0.5)}
    out = BatchAugment(flip=0.0, max_shift=0.2, seed=5)(batch)
    padded = np.pad(images.numpy(), ((0, 0), (0, 0), (4, 4), (4, 4)), mode="edge")
    moved = out["landmarks"][:, 0] - 0.5
    for i in range(6):
        dx, dy = round(float(moved[i, 0]) * 24), round(float(moved[i, 1]) * 20)
        want = padded[i, :, 4 - dy : 4 - dy + 20, 4 - dx : 4 - dx + 24]
        np.testing.assert_array_equal(out["image"][i].numpy(), want)


def test_erase_greys_one_square_per_chosen_image_against_a_loop():
    gen = torch.Generator().manual_seed(1)
    images = torch.randint(0, 128, (16, 3, 20, 20), dtype=torch.uint8, generator=gen)  # never 128 itself
    aug = BatchAugment(flip=0.0, max_shift=0.0, erase=0.5, erase_size=0.3, seed=2)
    out = aug({"image": images})["image"]
    # replay the generator: the same draws, a per-image loop as the reference
    ref_gen = torch.Generator().manual_seed(2)
    torch.rand(16, generator=ref_gen)  # the flip draw
    chosen = torch.rand(16, generator=ref_gen) < 0.5
    cy, cx = torch.rand(16, generator=ref_gen) * 20, torch.rand(16, generator=ref_gen) * 20
    erased_images = 0
    for i in range(16):
        expected = images[i].clone()
        if chosen[i]:
            for y in range(20):
                for x in range(20):
                    if abs(y + 0.5 - cy[i]) < 3.0 and abs(x + 0.5 - cx[i]) < 3.0:
                        expected[:, y, x] = BatchAugment.ERASE_VALUE
            erased_images += int((expected != images[i]).any())
        assert torch.equal(out[i], expected), i
    assert 0 < erased_images < 16


def test_erase_with_probability_one_hides_a_patch_of_the_expected_area():
    images = torch.zeros(64, 3, 40, 40, dtype=torch.uint8)
    out = BatchAugment(flip=0.0, max_shift=0.0, erase=1.0, erase_size=0.25, seed=0)({"image": images})["image"]
    area = (out[:, 0] == BatchAugment.ERASE_VALUE).flatten(1).sum(1).float()
    assert (area > 0).all() and (area <= 100).all()  # a 10x10 square, clipped at the borders
    assert (area == 100).float().mean() > 0.3  # centred inside the border margin ~ (30/40)^2 of the time


def test_workers_draw_different_augmentations(tmp_path):
    """Two DataLoader workers holding copies of one BatchAugment must not flip the same items."""
    from torch.utils.data import DataLoader

    from affect.data.augment import AugmentingCollate

    images = torch.arange(32 * 4, dtype=torch.uint8).reshape(32, 1, 1, 4).expand(32, 3, 1, 4).clone()
    items = [{"image": im} for im in images]
    loader = DataLoader(items, batch_size=16, num_workers=2,
                        collate_fn=AugmentingCollate(None, BatchAugment(flip=0.5, max_shift=0.0, seed=0)))  # fmt: skip
    flipped = [(b["image"][:, 0, 0, 0] > b["image"][:, 0, 0, 3]).tolist() for b in loader]
    assert flipped[0] != flipped[1]


def test_datamodule_augment_options_mapping(tmp_path):
    from affect.data.corpora.fer2013 import Fer2013DataModule
    from affect.data.fixtures import write_fixture_tree
    from affect.errors import ConfigError

    write_fixture_tree(tmp_path, ["fer2013"])
    root = str(tmp_path / "fer2013")
    dm = Fer2013DataModule(root, batch_size=8, image_size=32, augment={"flip": 0.0, "max_shift": 0.0, "erase": 1.0})
    plain = Fer2013DataModule(root, batch_size=8, image_size=32)
    images = next(iter(dm.dataloader("train", shuffle=False)))["image"]
    original = next(iter(plain.dataloader("train", shuffle=False)))["image"]
    changed = images != original
    assert changed.flatten(1).any(1).all()  # every image got a patch
    assert (images[changed] == BatchAugment.ERASE_VALUE).all()  # and nothing else changed
    with pytest.raises(ConfigError, match="unknown option.*'mixup'"):
        Fer2013DataModule(str(tmp_path), augment={"mixup": 0.2})
    with pytest.raises(ConfigError, match="erase must be in"):
        Fer2013DataModule(str(tmp_path), augment={"erase": 2.0})


def _bright_spots(image: torch.Tensor, threshold: int = 100) -> np.ndarray:
    """Intensity-weighted centre (x, y) in pixels of each of the bright blobs, left to right."""
    from scipy import ndimage

    plane = image[0, 0].numpy().astype(float)
    labels, count = ndimage.label(plane > threshold)
    centres = ndimage.center_of_mass(plane, labels, range(1, count + 1))
    return np.array(sorted((x + 0.5, y + 0.5) for y, x in centres))


@pytest.mark.parametrize("non_square", [False, True])
def test_rotate_scale_moves_pixels_and_landmarks_together(non_square):
    h, w = (40, 60) if non_square else (48, 48)
    image = torch.zeros(1, 3, h, w, dtype=torch.uint8)
    points = np.array([[0.3, 0.35], [0.7, 0.6]])  # two 3x3 bright squares at these normalised points
    for x, y in points:
        cx, cy = int(x * w), int(y * h)
        image[0, :, cy - 1 : cy + 2, cx - 1 : cx + 2] = 255
    centres = _bright_spots(image) / [w, h]  # the squares' centres, normalised
    batch = {"image": image, "landmarks": torch.tensor(centres, dtype=torch.float32)[None]}
    aug = BatchAugment(flip=0.0, max_shift=0.0, max_rotate=30.0, max_scale=0.2, seed=5)
    out = aug(batch)
    moved = _bright_spots(out["image"]) / [w, h]
    np.testing.assert_allclose(out["landmarks"][0].numpy(), moved, atol=0.6 / min(h, w))
    assert np.abs(moved - centres).max() > 2 / min(h, w)  # it did move them
    # an independent reference for the landmarks: the rotation and scale recovered from the two points
    # give the same distance ratio and angle change for the pixels
    d0, d1 = (centres[1] - centres[0]) * [w, h], (moved[1] - moved[0]) * [w, h]
    assert 0.8 - 0.02 <= np.linalg.norm(d1) / np.linalg.norm(d0) <= 1.2 + 0.02
    turn = np.degrees(np.arctan2(d1[1], d1[0]) - np.arctan2(d0[1], d0[0]))
    assert abs(turn) <= 30 + 1


def test_rotate_scale_off_by_default_and_checked():
    batch = face_batch(n=2)
    out = BatchAugment(flip=0.0, max_shift=0.0, seed=0)(batch)
    assert torch.equal(out["image"], batch["image"]) and torch.equal(out["landmarks"], batch["landmarks"])
    with pytest.raises(ValueError, match="max_rotate must be in"):
        BatchAugment(max_rotate=-1.0)
    with pytest.raises(ValueError, match="max_scale"):
        BatchAugment(max_scale=1.5)
