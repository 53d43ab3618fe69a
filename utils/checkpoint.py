"""The training checkpoint: what it holds, reading it back, and whether a rerun may continue it.

A rerun into the same `--out` continues the run in its `checkpoint.pth` only with the same
settings; changes that alter what is trained are refused before anything is written.
"""

import sys
from pathlib import Path

from utils.errors import InputError
from utils.train_config import TrainConfig, resume_changes
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


def check_resumable(checkpoint: dict, config: TrainConfig, path: str | Path) -> None:
    """Refuse to continue `checkpoint` with settings that change the training; note harmless changes."""
    path = Path(path)
    refused, allowed = resume_changes(checkpoint["config"], config)
    if checkpoint["step"] > config.params.n_steps:
        refused.append(
            f"n_steps: the checkpoint is at step {checkpoint['step']}, beyond {config.params.n_steps}"
        )
    if refused:
        raise InputError(
            f"{path} comes from a run with other settings ({'; '.join(refused)}); rerun with the same "
            f"settings (e.g. --args {path.parent / 'args.json'}) to continue it, or {start_over_hint(path)}"
        )
    if allowed:
        print(f"note: continuing {path} with changed settings: {'; '.join(allowed)}", file=sys.stderr)


def read_resumable_checkpoint(path: str | Path, config: TrainConfig) -> dict | None:
    """The checkpoint in `path` if there is one and `config` may continue it (see `check_resumable`)."""
    checkpoint = read_checkpoint(path)
    if checkpoint is not None:
        check_resumable(checkpoint, config, path)
    return checkpoint
