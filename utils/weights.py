"""Strict, safe loading of state dicts: a checkpoint either loads completely or raises.

`torch.load(..., weights_only=True)` refuses pickles that would run code; the key layout is
compared with the model's before anything is copied, and every missing, unexpected or
mis-shaped key is listed in the error.
"""

import pickle
import re
from pathlib import Path

import torch
from torch import nn


class WeightsError(RuntimeError):
    """A weight file is missing, unreadable, or does not match the model."""


def read_state_dict(path: str | Path, hint: str) -> dict[str, torch.Tensor]:
    """The tensors in `path`; `hint` tells the user how to obtain the file when it is missing."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist: {hint}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as error:
        raise WeightsError(
            f"{path} is not a readable weights-only checkpoint ({error.__class__.__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''}); re-download or re-save it as a "
            "plain state dict of tensors"
        ) from error
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} does not hold a state dict (a dict of tensors)")
    return state


def _fits(expected: torch.Tensor, given: torch.Tensor) -> bool:
    # torch's load_state_dict takes element 0 of a [1] tensor for a 0-dim one (converted
    # checkpoints store the attention `gamma` as [1]).
    return given.shape == expected.shape or (expected.dim() == 0 and given.shape == (1,))


def load_state_dict_strictly(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    source: str,
    tolerated_missing: str | None = None,
) -> list[str]:
    """Load `state` into `model`, or raise listing every mismatch; returns the tolerated missing keys.

    `tolerated_missing` is a regular expression of buffer names that may be absent and are then
    left at their initial value (BigGAN's `sv0` logs, which converted checkpoints lack).
    """
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    tolerated = [k for k in missing if tolerated_missing and re.fullmatch(tolerated_missing, k)]
    missing = [k for k in missing if k not in tolerated]
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(
        f"{k}: file {list(state[k].shape)} vs model {list(expected[k].shape)}"
        for k in set(state) & set(expected)
        if not _fits(expected[k], state[k])
    )
    problems = [
        f"{title} ({len(keys)}): {', '.join(keys)}"
        for title, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", misshaped))
        if keys
    ]
    if problems:
        raise WeightsError(f"{source} does not match {model.__class__.__name__}: " + "; ".join(problems))
    model.load_state_dict(state, strict=False)
    return tolerated
