"""Reading the latent-space inputs of a run: the direction file and the embeddings matrix.

Both are checked before a run starts: a zero or non-finite direction would give empty masks (and a
perfect-looking synthetic score), a non-finite embedding row a NaN loss many steps later.
"""

from pathlib import Path

import numpy as np
import torch

from utils.errors import InputError, MissingInputError
from utils.weights import WEB_PAGE_REASON, file_head, is_web_page, load_torch_file

DIRECTION_HINT = (
    "run download_all.sh for the BigBiGAN direction, or make one with find_direction.py, "
    "and pass it with --bg_direction"
)
EMBEDDINGS_HINT = "run download_all.sh, or make embeddings of your images, or drop --z"


def load_direction(path: str | Path, dim: int) -> torch.Tensor:
    """The latent direction saved in `path` as a finite, non-zero tensor of `dim` elements."""
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"direction file {path} does not exist: {DIRECTION_HINT}")
    direction = load_torch_file(path, DIRECTION_HINT, what="direction file")
    if not isinstance(direction, torch.Tensor) or direction.numel() != dim:
        shape = list(direction.shape) if isinstance(direction, torch.Tensor) else type(direction).__name__
        raise InputError(f"{path} holds {shape}; --bg_direction must be a tensor of {dim} elements")
    direction = direction.reshape(dim).float()
    if not torch.isfinite(direction).all():
        raise InputError(f"--bg_direction {path} has non-finite (NaN or infinite) elements: {DIRECTION_HINT}")
    if not direction.any():
        raise InputError(f"--bg_direction {path} is all zeros, so no shift would change the image")
    return direction


def _read_matrix(path: Path):
    if path.suffix == ".npy":
        if is_web_page(file_head(path)):
            raise InputError(f"--z {path} cannot be read: {WEB_PAGE_REASON}; {EMBEDDINGS_HINT}")
        try:
            return torch.from_numpy(np.load(path, allow_pickle=False))
        except (ValueError, OSError, EOFError) as error:
            raise InputError(
                f"--z {path} is not a readable .npy array ({error}); {EMBEDDINGS_HINT}"
            ) from error
    return load_torch_file(path, EMBEDDINGS_HINT, what="embeddings file")


def load_embeddings(path: str | Path | None, dim: int) -> torch.Tensor | None:
    """The latent embeddings matrix [N >= 1, dim] of a .npy or .pt file, all finite (None: N(0, I))."""
    if path is None:
        return None
    path = Path(path)
    if not path.is_file():
        raise MissingInputError(f"--z {path} does not exist: {EMBEDDINGS_HINT}")
    zs = _read_matrix(path)
    if not isinstance(zs, torch.Tensor) or zs.dim() != 2 or zs.shape[1] != dim or not zs.is_floating_point():
        got = list(zs.shape) if isinstance(zs, torch.Tensor) else type(zs).__name__
        raise InputError(f"--z {path} must hold a float matrix [N, {dim}], got {got}")
    if len(zs) == 0:
        raise InputError(f"--z {path} holds no rows: {EMBEDDINGS_HINT}")
    bad_rows = (~torch.isfinite(zs).all(dim=1)).nonzero().flatten().tolist()
    if bad_rows:
        raise InputError(
            f"--z {path}: {len(bad_rows)} of {len(zs)} rows have NaN or infinite values "
            f"(rows {', '.join(map(str, bad_rows[:5]))}{', ...' if len(bad_rows) > 5 else ''}); "
            "remove or recompute them"
        )
    return zs.float()
