"""Pictures of samples and predictions: mask overlays and image grids."""

from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

FOREGROUND_COLOR = (1.0, 0.15, 0.15)


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> [0, 1]."""
    return ((images + 1) / 2).clamp(0, 1)


def overlay_masks(
    images: torch.Tensor, masks: torch.Tensor, color=FOREGROUND_COLOR, alpha: float = 0.5
) -> torch.Tensor:
    """Images [B, 3, H, W] in [-1, 1] with masks [B, H, W] tinted in `color`; result in [0, 1]."""
    base = to_unit_range(images.detach().float().cpu())
    weight = alpha * masks.detach().float().cpu().unsqueeze(1)
    tint = torch.tensor(color).view(1, 3, 1, 1)
    return base * (1 - weight) + tint * weight


def masks_as_images(masks: torch.Tensor) -> torch.Tensor:
    """Masks or probability maps [B, H, W] in [0, 1] as gray RGB images [B, 3, H, W]."""
    return masks.detach().float().cpu().unsqueeze(1).expand(-1, 3, -1, -1)


def samples_grid(
    images: torch.Tensor, masks: torch.Tensor, predictions: torch.Tensor | None = None, count: int = 8
) -> torch.Tensor:
    """A grid with one column per sample: image, mask, overlay (and prediction, its overlay)."""
    images, masks = images[:count], masks[:count]
    rows = [
        to_unit_range(images.detach().float().cpu()),
        masks_as_images(masks),
        overlay_masks(images, masks),
    ]
    if predictions is not None:
        predictions = predictions[:count]
        rows += [
            masks_as_images(predictions),
            overlay_masks(images, predictions > 0.5, color=(0.1, 0.9, 0.2)),
        ]
    return make_grid(torch.cat(rows), nrow=len(images), padding=2, pad_value=1.0)


def save_samples_grid(path: str | Path, *args, **kwargs) -> None:
    """`samples_grid(*args, **kwargs)` written as an image file."""
    save_image(samples_grid(*args, **kwargs), str(path))
