"""Subject-independent k-fold protocols of the AU corpora (DISFA, BP4D, BP4D+).

AU papers report 3-fold subject-independent cross-validation: train on two folds, test on the
third. The fold lists below are the ones used by JAA-Net (Shao et al., ECCV 2018) and reused by
most later work (e.g. ME-GraphAU's ``tool/*_image_label_process.py``), so numbers compare.
Subjects outside a standard list, or another number of folds, fall back to a round-robin over
the sorted subject ids (deterministic, and interleaves F/M ids in BP4D-like corpora).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

DISFA_3FOLD: tuple[tuple[str, ...], ...] = (
    ("SN002", "SN010", "SN001", "SN026", "SN027", "SN032", "SN030", "SN009", "SN016"),
    ("SN013", "SN018", "SN011", "SN028", "SN012", "SN006", "SN031", "SN021", "SN024"),
    ("SN003", "SN029", "SN023", "SN025", "SN008", "SN005", "SN007", "SN017", "SN004"),
)
BP4D_3FOLD: tuple[tuple[str, ...], ...] = (
    ("F001", "M007", "F018", "F008", "F002", "M004", "F010", "F009", "M012", "M001", "F016", "M014", "F023", "M008"),
    ("M011", "F003", "M010", "M002", "F005", "F022", "M018", "M017", "F013", "M016", "F020", "F011", "M013", "M005"),
    ("F007", "F015", "F006", "F019", "M006", "M009", "F012", "M003", "F004", "F021", "F017", "M015", "F014"),
)


def subject_folds(
    subjects: Iterable[str], num_folds: int, standard: Sequence[Sequence[str]] | None = None
) -> dict[str, int]:
    """Map each subject to a fold in ``0..num_folds-1``.

    Uses ``standard`` when it has ``num_folds`` folds and lists every subject; otherwise a
    round-robin over the sorted ids.

    >>> subject_folds(["SN001", "SN003", "SN013"], 3, DISFA_3FOLD)
    {'SN001': 0, 'SN003': 2, 'SN013': 1}
    >>> subject_folds(["b", "a", "c", "d"], 2)
    {'a': 0, 'b': 1, 'c': 0, 'd': 1}
    """
    if num_folds < 2:
        raise ValueError(f"num_folds must be >= 2, got {num_folds}")
    subjects = sorted(set(subjects))
    if standard is not None and len(standard) == num_folds:
        lookup = {s: k for k, fold in enumerate(standard) for s in fold}
        if all(s in lookup for s in subjects):
            return {s: lookup[s] for s in subjects}
    return {s: i % num_folds for i, s in enumerate(subjects)}


def check_fold(fold: int | None, num_folds: int) -> None:
    if fold is not None and not 0 <= fold < num_folds:
        raise ValueError(f"fold must be in 0..{num_folds - 1} (or None for no held-out fold), got {fold}")
