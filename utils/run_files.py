"""Writing run outputs so that an interrupted run never leaves a half-written file."""

import json
import os
from pathlib import Path

import torch


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
