"""A tiny default model for the packaging and short-command tests: a Lightning checkpoint of a
test-size FaceBehaviorNet (saved as ``affect fit`` saves one, with LightningCLI's ``_class_path``),
exported through :func:`affect.models.default.export_default_model`, and a generated face image."""

from __future__ import annotations

from pathlib import Path

import numpy as np

IMAGE = 32
CLASS_PATH = "affect.models.facebehaviornet.FaceBehaviorNetModule"


def tiny_checkpoint(path: Path, seed: int = 0):
    """``(path, module)``: a FaceBehaviorNet (test backbone, 32x32) with perturbed weights (so that its
    outputs are far from uniform), every float tensor exactly representable in float16 (so that the
    exported default model computes exactly what the checkpoint does), saved by a Lightning Trainer."""
    import lightning as L
    import torch

    from affect.models.facebehaviornet import FaceBehaviorNetModule

    torch.manual_seed(seed)
    module = FaceBehaviorNetModule(backbone="test_resnet", hidden=16, image_size=IMAGE)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.3 * torch.randn_like(p))
        for t in module.state_dict().values():
            if t.is_floating_point():
                t.copy_(t.half().to(t.dtype))
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)  # fmt: skip
    trainer.strategy.connect(module)
    path.parent.mkdir(parents=True, exist_ok=True)
    trainer.save_checkpoint(path)
    ckpt = torch.load(path, weights_only=True)
    ckpt["hyper_parameters"]["_class_path"] = CLASS_PATH
    torch.save(ckpt, path)
    return path, module.eval()


def tiny_default_model(folder: Path, work: Path) -> Path:
    """Export :func:`tiny_checkpoint` as a default model into ``folder``; returns ``folder``."""
    from affect.models.default import export_default_model

    ckpt, _ = tiny_checkpoint(work / "tiny.ckpt")
    export_default_model(ckpt, folder, name="tiny-test", licence="test only", card="docs/model_card.md")
    return folder


def face_media(folder: Path, size: int = 96, n_frames: int = 6) -> dict[str, Path]:
    """A procedural face (``affect.data.synthetic``) as a PNG (``image``) and a short MP4 (``video``)."""
    from PIL import Image

    from affect.data.synthetic import face_sequence
    from affect.io import write_video

    frames, _, _ = face_sequence(np.random.default_rng(0), n_frames, size=size, fps=10)
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(frames[0]).save(folder / "face.png")
    return {"image": folder / "face.png", "video": write_video(folder / "clip.mp4", frames, fps=10)}
