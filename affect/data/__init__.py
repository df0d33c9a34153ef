"""The data layer: corpus parsers and datamodules, batches, augmentation, fixtures and procedural faces."""
