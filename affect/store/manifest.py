"""The manifest as ``affect prepare`` reads it: a user's CSV, its ``landmarks`` cells and its digest.

The manifest columns themselves are defined once in :mod:`affect.data.manifest`.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from affect.data.manifest import validate_manifest
from affect.errors import InputFileError, MissingInputError
from affect.store.format import FLOAT_FORMAT


def parse_landmarks(value: object) -> np.ndarray | None:
    """A ``landmarks`` cell -> float32 [68, 2] or None (arrays, or 136 numbers split by ';', ',' or spaces).

    >>> parse_landmarks(";".join(["1"] * 136)).shape
    (68, 2)
    >>> parse_landmarks(float("nan")) is None
    True
    """
    if value is None or (isinstance(value, float) and np.isnan(value)) or (isinstance(value, str) and not value):
        return None
    if isinstance(value, str):
        arr = np.array(value.replace(";", " ").replace(",", " ").split(), dtype=np.float32)
    else:
        arr = np.asarray(value, dtype=np.float32)
    if arr.size != 136:
        raise ValueError(f"landmarks must hold 68 (x, y) points = 136 numbers; got {arr.size}")
    return arr.reshape(68, 2)


def read_manifest_csv(path: str | Path) -> pd.DataFrame:
    """A manifest CSV (``affect prepare csv --manifest``), validated; one-line errors name the file."""
    if not Path(path).is_file():
        raise MissingInputError(f"--manifest {path} does not exist; give the manifest CSV file")
    try:
        df = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"path": str, "subject": str, "video": str})
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as e:
        raise InputFileError(f"--manifest {path} is not a readable CSV ({' '.join(str(e).split())})") from None
    for col in ("subject", "video"):
        if col in df.columns:
            df[col] = df[col].fillna("").astype(str)
    try:
        return validate_manifest(df)
    except InputFileError:
        raise
    except ValueError as e:
        raise InputFileError(f"--manifest {path}: {e}") from None


def _landmark_bytes(value: object) -> bytes:
    try:
        lm = parse_landmarks(value)
    except ValueError:  # a malformed cell: its row becomes a "corrupt" row; the digest hashes the text
        return b"?" + str(value).encode()
    return b"-" if lm is None else lm.tobytes()


def manifest_digest(df: pd.DataFrame) -> str:
    """A content hash of the manifest (identifies the job; a resumed run must see the same one)."""
    h = hashlib.sha256()
    cols = [c for c in df.columns if c != "landmarks"]
    h.update(df[cols].to_csv(index=False, float_format=FLOAT_FORMAT).encode())
    if "landmarks" in df.columns:
        for v in df["landmarks"]:
            h.update(_landmark_bytes(v))
    return h.hexdigest()
