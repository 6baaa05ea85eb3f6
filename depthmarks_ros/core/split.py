"""The real-data split rule (docs/real-data.md), one source for every dataset and command.

A file's stem (its name without folder and extension) decides its part: the report split is never
fitted, trained or tuned on; everything shipped is fitted on the fit split.
"""
import hashlib
from typing import Iterable, List

SPLIT_RULE = 'int(hashlib.sha1(stem.encode()).hexdigest(), 16) % 5 == 0 -> report split, else fit split'
PARTS = ('fit', 'report', 'all')


def is_report(stem: str) -> bool:
    """True when ``stem`` belongs to the report (held-out) split by SPLIT_RULE."""
    return int(hashlib.sha1(stem.encode()).hexdigest(), 16) % 5 == 0


def part_of(stem: str) -> str:
    """'report' or 'fit'."""
    return 'report' if is_report(stem) else 'fit'


def in_split(stem: str, split: str) -> bool:
    """Whether ``stem`` is in ``split`` ('fit', 'report' or 'all'); ValueError for any other name."""
    if split not in PARTS:
        raise ValueError(f"split must be 'fit', 'report' or 'all', not {split!r}")
    return split == 'all' or part_of(stem) == split


def split_stems(stems: Iterable[str], split: str) -> List[str]:
    """The stems of ``split``, in their order."""
    return [s for s in stems if in_split(s, split)]


FOLDS = 5


def fold_of(stem: str, folds: int = FOLDS) -> int:
    """The cross-fitting fold (0 .. folds-1) of a fit-split stem: ``int(sha1(stem)) // 5 % folds``,
    independent of the split itself (which is the sha1 value % 5)."""
    return int(hashlib.sha1(str(stem).encode()).hexdigest(), 16) // 5 % folds


def is_validation(stem: str) -> bool:
    """A validation part inside the fit split for choosing hyper-parameters (md5, not sha1, so that it
    is independent of both the split and the folds): ``int(md5(stem)) % 5 == 0``."""
    return int(hashlib.md5(str(stem).encode()).hexdigest(), 16) % 5 == 0
