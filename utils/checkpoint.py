"""The training checkpoint: what it holds and reading it back (`train_config.check_resumable` decides
whether a rerun may continue it)."""

from pathlib import Path

from utils.errors import InputError
from utils.weights import WeightsError, load_torch_file

CHECKPOINT_NAME = "checkpoint.pth"
CHECKPOINT_KEYS = ("model", "opt", "scheduler", "rng", "step", "config")


def start_over_hint(path: Path) -> str:
    return f"delete {path} (or move it away) to start the run over from step 0, or pass another --out"


def read_checkpoint(path: str | Path) -> dict | None:
    """The checkpoint in `path`, None when there is none; a damaged one raises with what to do."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        checkpoint = load_torch_file(path, start_over_hint(path), what="checkpoint")
    except WeightsError as error:
        raise InputError(str(error)) from error
    missing = [key for key in CHECKPOINT_KEYS if not isinstance(checkpoint, dict) or key not in checkpoint]
    if missing:
        raise InputError(
            f"checkpoint {path} lacks {', '.join(missing)}: it was not written by train_segmentation.py "
            f"of this version; {start_over_hint(path)}"
        )
    return checkpoint
