"""Progress bars that also read well in log files: tqdm on a terminal, plain periodic lines elsewhere."""

import sys

from tqdm import tqdm

# How often a progress line is written when stderr is a file or a pipe (a job log, CI).
LOG_INTERVAL_S = 30.0


class _Lines:
    """A stream for tqdm that turns each carriage-return redraw into one line of its own."""

    def __init__(self, stream):
        self.stream = stream
        self.last = ""

    def write(self, text: str) -> None:
        line = text.replace("\r", "").strip()
        if line and line != self.last:
            self.stream.write(line + "\n")
            self.last = line

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(iterable=None, **kwargs) -> tqdm:
    """`tqdm(iterable, **kwargs)` on a terminal; otherwise an ASCII status line every 30 s and at the end."""
    if sys.stderr.isatty():
        return tqdm(iterable, dynamic_ncols=True, **kwargs)
    return tqdm(
        iterable, file=_Lines(sys.stderr), mininterval=LOG_INTERVAL_S, ascii=True, ncols=100, **kwargs
    )
