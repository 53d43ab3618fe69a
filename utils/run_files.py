"""Writing run outputs so that an interrupted run never leaves a half-written file, and none replaces an
earlier output unasked."""

import json
import os
from pathlib import Path

import torch

from utils.errors import InputError


def atomic_torch_save(obj, path: str | Path) -> None:
    """`torch.save` to a temporary file, then rename over `path`."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def write_json(path: str | Path, obj) -> None:
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def refuse_existing(path: str | Path, overwrite: bool, flag: str = "--overwrite") -> None:
    """Refuse to replace an earlier output unless the user said so: nothing already written is lost."""
    if Path(path).exists() and not overwrite:
        raise InputError(f"{path} exists: choose another path, or pass {flag} to replace it")
