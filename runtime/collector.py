"""The cyclic garbage collector's pace in the processes that hold the folds' states."""

from __future__ import annotations

import gc

# The folds keep hundreds of thousands of small immutable objects alive, which the cyclic
# collector would otherwise walk every few hundred allocations (its full passes cost a
# fold about 40 % more per event); none of them needs it, so it runs seldom.
THRESHOLDS = (100_000, 50, 100)


def collect_seldom() -> None:
    gc.set_threshold(*THRESHOLDS)
