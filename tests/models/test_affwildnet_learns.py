"""A tiny AffWildNet learns VA from the procedural Aff-Wild2 sequences (issue: CCC well above 0)."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from affect.data.corpora.affwild2 import AffWild2DataModule
from affect.data.fixtures.affwild2 import write_affwild2
from affect.models.affwildnet import AffWildNetModule


@pytest.mark.slow
def test_tiny_affwildnet_learns_valence_arousal(tmp_path):
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # several threads fight over 2 shared cores (see tests/data/test_synthetic.py)
    try:
        root = write_affwild2(tmp_path / "aw2", n_videos=10, n_frames=120, size=48, seed=3)
        data = AffWild2DataModule(str(root), task="va", image_size=48, batch_size=8, sequence_length=16,
                                  sequence_stride=16)
        model = AffWildNetModule(backbone="test_resnet", fc_units=64, rnn_hidden=32, dropout=0.0, image_size=48,
                                 lr=3e-3, lr_decay_after=None, log_media=False)
        trainer = L.Trainer(accelerator="cpu", max_epochs=12, max_time="00:00:01:10", logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                            num_sanity_val_steps=0)
        trainer.fit(model, datamodule=data)
        result = trainer.validate(model, datamodule=data, verbose=False)[0]
    finally:
        torch.set_num_threads(threads)
    ccc_v, ccc_a = result["val/va/ccc_v"], result["val/va/ccc_a"]
    print(f"AffWildNet (tiny) validation CCC: valence {ccc_v:.3f}, arousal {ccc_a:.3f}")
    assert ccc_v > 0.3 and ccc_a > 0.3, (ccc_v, ccc_a)
