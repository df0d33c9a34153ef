"""The error types a user can fix (bad input, bad option, bad file), one home for all of them.

``affect``'s command line (:func:`affect.cli.main`) catches :class:`AffectError` — also when a
library (jsonargparse, Lightning) wrapped it in its own exception — and prints its message as
one line (``affect: error: ...``); ``--debug`` or ``AFFECT_DEBUG=1`` shows the traceback instead.
Every message names the file or the config key at fault and says how to fix it.

Each type also derives from the builtin a caller would catch without knowing this module
(``ValueError``, ``FileNotFoundError``, ``RuntimeError``), so existing ``except`` clauses keep working.
"""

from __future__ import annotations

import zipfile
from pathlib import Path


class AffectError(Exception):
    """Base class: a mistake in the user's input, reported as one line at the command line."""


class ConfigError(AffectError, ValueError):
    """An option or config key has a value we cannot use (the message names the key)."""


class InputFileError(AffectError, ValueError):
    """A file the user handed us cannot be read or has the wrong content (the message names it)."""


class MissingInputError(AffectError, FileNotFoundError):
    """A file or folder the user pointed us to does not exist."""


class CheckpointError(InputFileError):
    """A file given as a checkpoint is not a PyTorch checkpoint."""


#: ``--ckpt_path`` values Lightning resolves itself (not files).
CKPT_ALIASES = ("best", "last", "hpc", "registry")


def check_checkpoint_file(path: str | Path, what: str = "checkpoint") -> Path:
    """Fail early, with the file's name and the fix, unless ``path`` is a file written by ``torch.save``.

    ``torch.save`` (and Lightning's ``.ckpt``) writes a zip archive; anything else (a text file, a
    truncated download, a legacy pickle) would otherwise reach ``torch.load`` and fail with a
    message about ``weights_only`` that points the user the wrong way.

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "notes.txt"); _ = open(p, "w").write("hello")
    >>> check_checkpoint_file(p)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    affect.errors.CheckpointError: checkpoint '...notes.txt' is not a PyTorch checkpoint (not a torch.save zip archive); ...
    """
    p = Path(path)
    if not p.is_file():
        raise MissingInputError(f"{what} {str(p)!r} does not exist; check the path")
    if not zipfile.is_zipfile(p):
        raise CheckpointError(
            f"{what} {str(p)!r} is not a PyTorch checkpoint (not a torch.save zip archive); pass the .ckpt "
            "file that training wrote (runs/<name>/.../checkpoints/*.ckpt)"
        )
    return p


def find_affect_error(exc: BaseException | None) -> AffectError | None:
    """The first :class:`AffectError` in ``exc``'s chain of causes / contexts (libraries wrap ours)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, AffectError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


class DefaultModelError(ConfigError):
    """The default model that ships with the package (``affect/models/default/``) is missing or its
    files do not match (checksum, format, tensors); the message names the file and the fix."""
