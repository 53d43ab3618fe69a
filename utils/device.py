"""Device choice in one place, so no module hard-codes CUDA."""

import torch

from utils.errors import InputError


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`None` means CUDA when available, else CPU; anything else is taken as given."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError as error:
        raise InputError(f"--device {device}: not a device name ({error}); use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"--device {device}: CUDA is not available on this machine; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise InputError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return device
