"""A line of progress on stderr, for the commands that run a while."""

from __future__ import annotations

import sys
import time


class StatusLine:
    """Redrawn in place on a terminal (at most every `every` seconds), a new line every
    few seconds otherwise; a finished state is shown once, whenever it comes."""

    def __init__(self, every: float = 0.2) -> None:
        self.tty = sys.stderr.isatty()
        self.every = every if self.tty else 5.0
        self.shown = float("-inf")
        self.last = ""

    def show(self, line: str, finished: bool = False) -> None:
        now = time.monotonic()
        if line == self.last or (not finished and now - self.shown < self.every):
            return
        self.shown, self.last = now, line
        sys.stderr.write(("\r" + line + " " * 4) if self.tty else line + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.tty and self.last:
            sys.stderr.write("\n")
