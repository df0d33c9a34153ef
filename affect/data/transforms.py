"""Per-image CPU augmentation of the image-folder path with an albumentations pipeline from a file.

``data.init_args.transforms: my_augment.yaml`` names a pipeline saved with ``albumentations.save``
(YAML or JSON: only albumentations' own transform classes are built from it, nothing is unpickled); the
training split's images go through it, as uint8 ``[H, W, 3]`` after the crop and resize, before the
model. It is the per-sample alternative to ``augment`` (:class:`affect.data.augment.BatchAugment`,
whole batches on the device), for the transforms albumentations has (colour, blur, noise, geometry...).

- the pipeline must keep the image uint8 and of its size (no ``Normalize`` / ``Resize``: the model
  normalises on the device, and the crop size is ``image_size``) -- checked on every image;
- landmarks are not transformed: a corpus whose rows carry landmarks takes pixel-level transforms only
  (albumentations' ``ImageOnlyTransform``), else it is an error naming the geometric ones;
- stores (``data.init_args.store``) are read in whole batches without decoding: use ``augment`` there.

>>> import albumentations as A, numpy as np, tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "aug.yaml")
>>> A.save(A.Compose([A.InvertImg(p=1.0)]), path, data_format="yaml")
>>> load_transforms(path)(np.zeros((4, 4, 3), np.uint8))[0, 0].tolist()
[255, 255, 255]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from affect.errors import ConfigError, MissingInputError

__all__ = ["ImageTransforms", "load_transforms"]


class ImageTransforms:
    """An albumentations pipeline as ``uint8 [H, W, 3] -> uint8 [H, W, 3]`` (checked)."""

    def __init__(self, pipeline, source: str) -> None:
        self.pipeline = pipeline
        self.source = source

    def geometric(self) -> list[str]:
        """Names of the transforms that move pixels (would need the landmarks moved too)."""
        import albumentations as A

        def walk(t):
            for child in getattr(t, "transforms", []):
                yield from walk(child)
            if not hasattr(t, "transforms") and not isinstance(t, A.ImageOnlyTransform):
                yield type(t).__name__

        return list(walk(self.pipeline))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        out = self.pipeline(image=image)["image"]
        if not isinstance(out, np.ndarray) or out.dtype != np.uint8 or out.shape != image.shape:
            got = f"{getattr(out, 'dtype', type(out).__name__)} {getattr(out, 'shape', '')}"
            raise ConfigError(
                f"data.init_args.transforms: {self.source} turned a uint8 {image.shape} image into {got}; keep images "
                "uint8 and of their size (no Normalize / Resize / ToTensor: the model normalises on the device)"
            )
        return out

    def __getstate__(self) -> dict:  # DataLoader workers (spawn) rebuild the pipeline from its dict form
        import albumentations as A

        return {"spec": A.to_dict(self.pipeline), "source": self.source}

    def __setstate__(self, state: dict) -> None:
        import albumentations as A

        self.pipeline, self.source = A.from_dict(state["spec"]), state["source"]


def load_transforms(path: str | Path) -> ImageTransforms:
    """Read a pipeline written by ``albumentations.save`` (``.yaml`` / ``.yml``: YAML, else JSON)."""
    import albumentations as A

    path = Path(path).expanduser()
    if not path.is_file():
        raise MissingInputError(f"data.init_args.transforms: {path} does not exist (an albumentations.save file)")
    fmt = "yaml" if path.suffix.lower() in (".yaml", ".yml") else "json"
    try:
        pipeline = A.load(str(path), data_format=fmt)
    except Exception as err:  # noqa: BLE001 - albumentations raises KeyError / ValueError / yaml errors
        raise ConfigError(
            f"data.init_args.transforms: {path} is not an albumentations pipeline saved as {fmt} "
            f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        ) from None
    return ImageTransforms(pipeline, str(path))
