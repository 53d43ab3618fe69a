"""Device choice in one place, so no module hard-codes CUDA."""

import torch


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`None` means CUDA when available, else CPU; anything else is taken as given."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device} was asked for, but CUDA is not available: use --device cpu")
    return device
