"""Reading the latent-space inputs of a run: the direction file and the embeddings matrix."""

from pathlib import Path

import numpy as np
import torch


def load_direction(path: str | Path, dim: int) -> torch.Tensor:
    """The latent direction saved in `path` as a tensor of `dim` elements ([dim] or [1, dim])."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"direction file {path} does not exist: run download_all.sh for the BigBiGAN direction, "
            "or make one with find_direction.py, and pass it with --bg_direction"
        )
    try:
        direction = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise ValueError(f"{path} is not a readable tensor file ({error.__class__.__name__})") from error
    if not isinstance(direction, torch.Tensor) or direction.numel() != dim:
        shape = list(direction.shape) if isinstance(direction, torch.Tensor) else type(direction).__name__
        raise ValueError(f"{path} holds {shape}; --bg_direction must be a tensor of {dim} elements")
    return direction.reshape(dim).float()


def load_embeddings(path: str | Path | None, dim: int) -> torch.Tensor | None:
    """The latent embeddings matrix [N, dim] of a .npy or .pt file (None: sample N(0, I))."""
    if path is None:
        return None
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"--z {path} does not exist: run download_all.sh or drop --z")
    if path.suffix == ".npy":
        zs = torch.from_numpy(np.load(path, allow_pickle=False))
    else:
        zs = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(zs, torch.Tensor) or zs.dim() != 2 or zs.shape[1] != dim:
        raise ValueError(f"--z {path} must hold a matrix [N, {dim}]")
    return zs.float()
