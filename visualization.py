"""Pictures of samples and predictions: mask overlays and image grids.

Tiles are drawn at `TILE` pixels a side, so that 32-px demo samples are as legible as 128-px
BigBiGAN ones: enlarged by whole factors with nearest-neighbour sampling (pixels stay sharp),
otherwise resized bilinearly. The first column of a grid names its rows.
"""

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image, ImageDraw, ImageFont
from torchvision.utils import make_grid, save_image

FOREGROUND_COLOR = (1.0, 0.15, 0.15)
PREDICTION_COLOR = (0.1, 0.9, 0.2)
TILE = 128
LABEL_FONT_SIZE = 16


def as_tiles(batch: torch.Tensor, side: int = TILE) -> torch.Tensor:
    """[B, C, H, W] pictures resized to [B, C, side, side] (see the module doc); bilinear weights are
    convex, so values stay in their range."""
    height, width = batch.shape[-2:]
    if (height, width) == (side, side):
        return batch
    whole_factor = height == width and side % height == 0
    mode = "nearest" if whole_factor else "bilinear"
    return F.interpolate(batch, size=(side, side), mode=mode, antialias=not whole_factor)


def square_tiles(pictures: Sequence[torch.Tensor], side: int = TILE) -> torch.Tensor:
    """Pictures of different sizes ([C, H, W] or [H, W]) centre-cropped to squares, made `side`
    pixels a side and stacked, for a grid of real images of any shape."""
    tiles = []
    for picture in pictures:
        batch = picture.detach().float().cpu().reshape(1, -1, *picture.shape[-2:])
        square = TF.center_crop(batch, min(batch.shape[-2:]))
        tiles.append(as_tiles(square, side)[0].reshape(-1, side, side).squeeze(0))
    return torch.stack(tiles)


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


def label_tile(text: str, side: int = TILE) -> torch.Tensor:
    """A white [3, side, side] tile with `text` in black, naming the row it starts."""
    tile = Image.new("RGB", (side, side), "white")
    ImageDraw.Draw(tile).text((4, side // 2), text, fill="black", anchor="lm", font=label_font())
    return TF.to_tensor(tile)


def label_font() -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=LABEL_FONT_SIZE)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def samples_grid(
    images: torch.Tensor,
    masks: torch.Tensor | None,
    predictions: torch.Tensor | None = None,
    count: int = 8,
    tile: int = TILE,
) -> torch.Tensor:
    """A grid with a column of row names, then one column per sample; rows: image, then the true mask
    and its overlay (when `masks` are given), then the predicted probability and the overlay of its 0.5
    threshold, the prediction (when given)."""
    images = images[:count]
    rows = {"image": to_unit_range(images.detach().float().cpu())}
    if masks is not None:
        masks = masks[:count]
        rows |= {"true mask": masks_as_images(masks), "overlay": overlay_masks(images, masks)}
    if predictions is not None:
        predictions = predictions[:count]
        rows |= {
            "probability": masks_as_images(predictions),
            "prediction": overlay_masks(images, predictions > 0.5, PREDICTION_COLOR),
        }
    tiles = [torch.cat([label_tile(name, tile)[None], as_tiles(row, tile)]) for name, row in rows.items()]
    return make_grid(torch.cat(tiles), nrow=len(images) + 1, padding=2, pad_value=1.0)


def save_samples_grid(path: str | Path, *args, **kwargs) -> None:
    """`samples_grid(*args, **kwargs)` written as an image file."""
    save_image(samples_grid(*args, **kwargs), str(path))
