"""The TensorBoard writer of a run that may be a continuation of an interrupted one."""

import time
from pathlib import Path

from tensorboardX import SummaryWriter


def run_writer(logdir: Path, resumed_step: int | None) -> SummaryWriter:
    """A writer for `logdir`; a run resumed from a checkpoint at `resumed_step` hides the events an
    interrupted run logged after that checkpoint, so no step is shown twice.

    tensorboardX names event files by the second, so a run started within the same second as the
    previous one would overwrite its file: each file also gets its start time in nanoseconds, which
    keeps the files of one directory unique and in the order they were written.
    """
    purge_step = None if resumed_step is None else resumed_step + 1
    return SummaryWriter(str(logdir), purge_step=purge_step, filename_suffix=f".{time.time_ns()}")
