"""Label-free baselines for the demo's held-out folder, to show what the GAN-trained U-Net adds.

- all foreground: the whole image is the object;
- centred ellipse: a fixed centred ellipse, its radii chosen on the validation folder;
- Otsu: a global gray-level threshold, the class touching the image border more is background.
"""

import numpy as np
import torch
from skimage.filters import threshold_otsu

from gan_mask_gen import rgb2gray
from metrics import IoU

ELLIPSE_RADII = np.linspace(0.15, 0.6, 10)


def all_foreground(image: torch.Tensor) -> torch.Tensor:
    return torch.ones(image.shape[-2:], dtype=torch.bool)


def centred_ellipse(image: torch.Tensor, radius_y: float, radius_x: float) -> torch.Tensor:
    """An ellipse centred in the image, radii as fractions of its height and width."""
    height, width = image.shape[-2:]
    y = (torch.arange(height) + 0.5) / height - 0.5
    x = (torch.arange(width) + 0.5) / width - 0.5
    return (y[:, None] / radius_y) ** 2 + (x[None, :] / radius_x) ** 2 <= 1


def otsu_border_rule(image: torch.Tensor) -> torch.Tensor:
    """Otsu's threshold on gray levels; the class holding more border pixels is the background."""
    gray = rgb2gray(image[None].float())[0].numpy()
    if gray.min() == gray.max():
        return torch.zeros(gray.shape, dtype=torch.bool)
    bright = gray > threshold_otsu(gray)
    border = np.concatenate([bright[0], bright[-1], bright[1:-1, 0], bright[1:-1, -1]])
    foreground = ~bright if border.mean() > 0.5 else bright
    return torch.from_numpy(foreground)


def per_image_iou(predict, pairs) -> np.ndarray:
    """IoU of `predict(image)` against each mask of the (image [3, H, W], mask [H, W]) pairs."""
    return np.array([IoU(mask[None], predict(image)[None]) for image, mask in pairs])


def summary(ious: np.ndarray) -> dict[str, float]:
    return {"IoU": float(ious.mean()), "share_IoU_above_0.5": float((ious > 0.5).mean())}


def best_ellipse(validation_pairs) -> tuple[float, float]:
    """The centred ellipse radii with the best mean IoU on the validation pairs (never the test pairs)."""
    candidates = [(ry, rx) for ry in ELLIPSE_RADII for rx in ELLIPSE_RADII]
    scores = [
        per_image_iou(lambda im, r=r: centred_ellipse(im, *r), validation_pairs).mean() for r in candidates
    ]
    return candidates[int(np.argmax(scores))]


def evaluate_baselines(test_pairs, validation_pairs) -> dict[str, dict[str, float]]:
    """Mean IoU and the share of images above 0.5 IoU of every baseline on the test pairs."""
    radii = best_ellipse(validation_pairs)
    return {
        "all_foreground": summary(per_image_iou(all_foreground, test_pairs)),
        "centred_ellipse": {
            **summary(per_image_iou(lambda image: centred_ellipse(image, *radii), test_pairs)),
            "radii": [float(r) for r in radii],
        },
        "otsu": summary(per_image_iou(otsu_border_rule, test_pairs)),
    }
