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

from utils.errors import UserError

# torch.save writes a zip archive (since 1.6) or, in the legacy format, a pickle starting with PROTO.
TORCH_FILE_MAGICS = (b"PK\x03\x04", b"\x80")


class WeightsError(UserError, RuntimeError):
    """A weight file is missing, unreadable, or does not match the model."""


WEB_PAGE_STARTS = (b"<!doctype html", b"<html", b"<?xml", b"<head")
WEB_PAGE_REASON = "it is an HTML page, not a download of the file itself (use a direct link, e.g. ?dl=1)"


def is_web_page(head: bytes) -> bool:
    """Whether a file starting with `head` is a web page (a share link saved in place of the file)."""
    return head.lstrip().lower().startswith(WEB_PAGE_STARTS)


def file_head(path: str | Path, size: int = 64) -> bytes:
    with Path(path).open("rb") as file:
        return file.read(size)


def _not_a_torch_file(head: bytes) -> str | None:
    """Why a file starting with `head` cannot be a torch.save file, or None if it may be one."""
    if not head:
        return "it is empty"
    if head.startswith(TORCH_FILE_MAGICS):
        return None
    if is_web_page(head):
        return WEB_PAGE_REASON
    return f"it starts with {head[:16]!r}, not with the header torch.save writes"


def load_torch_file(path: str | Path, hint: str, what: str = "weights file"):
    """`torch.load(path, weights_only=True)` on the CPU, with errors that say what to do.

    `hint` tells how to obtain the file when it is missing; a file of the wrong kind (text, an HTML
    page saved in place of a download), a truncated one or a pickle of code raise `WeightsError`.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{what} {path} does not exist: {hint}")
    reason = _not_a_torch_file(file_head(path))
    if reason is None:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            reason = (
                "it holds pickled objects other than tensors, which weights-only loading refuses so that "
                f"no code from the file runs ({str(error).strip().splitlines()[-1] if str(error) else ''})"
            )
        except Exception as error:  # torch raises many types for damaged files
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else "no details"
            reason = f"torch.load failed with {error.__class__.__name__}: {first_line}"
    raise WeightsError(f"{what} {path} cannot be read: {reason}; {hint}")


def as_state_dict(loaded, path: str | Path) -> dict[str, torch.Tensor]:
    """`loaded` if it is a state dict (a dict of tensors) of finite values, else a `WeightsError` naming
    `path` (and the tensors holding NaN or infinity: weights of a diverged run give garbage silently)."""
    if not isinstance(loaded, dict) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise WeightsError(f"{path} does not hold a state dict (a dict of tensors)")
    non_finite = [
        key for key, value in loaded.items() if value.is_floating_point() and not value.isfinite().all()
    ]
    if non_finite:
        shown = ", ".join(non_finite[:5]) + (
            f" and {len(non_finite) - 5} more" if len(non_finite) > 5 else ""
        )
        raise WeightsError(
            f"{path} holds NaN or infinite values in {len(non_finite)} tensor(s): {shown}; the file is "
            "damaged or was saved by a run that diverged: use another"
        )
    return loaded


def read_state_dict(path: str | Path, hint: str) -> dict[str, torch.Tensor]:
    """The tensors in `path`; `hint` tells the user how to obtain the file when it is missing."""
    return as_state_dict(load_torch_file(path, hint), path)


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
