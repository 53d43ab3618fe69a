"""Plain implementations of the definitions that the fast paths compute, for equality tests and the bench.

Each one follows its definition literally (one `histc` per image, one pass over the mask per
component, one thresholding per level, W / sigma recomputed on every call), as the original work did.
"""

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from skimage.measure import label

from BigGAN.model.layers import SpectralNorm, power_iteration
from metrics import precision_recall, thresholds


def maxes_filter_reference(images: torch.Tensor, bins: int = 12, width: int = 3) -> torch.Tensor:
    """The two-peak filter with one `torch.histc` per image and a float32 box filter (as before)."""
    hists = torch.stack([torch.histc(image.float(), bins, -1, 1) for image in images])
    box = torch.ones(1, 1, width, device=images.device, dtype=hists.dtype)
    smooth = F.conv1d(hists[:, None], box, padding=width // 2)[:, 0].cpu().numpy()
    ones = np.ones((len(smooth), 1), dtype=bool)
    not_below_left = np.concatenate([ones, smooth[:, 1:] >= smooth[:, :-1]], axis=1)
    not_below_right = np.concatenate([smooth[:, :-1] >= smooth[:, 1:], ones], axis=1)
    maxima = (not_below_left & not_below_right).sum(axis=1)
    return torch.from_numpy(maxima >= 2)


def connected_components_reference(mask: torch.Tensor) -> torch.Tensor:
    """The original's filter: per mask, measure each 8-connected component with its own pass over the
    labels and keep those whose area / largest area > 0.2; the result has the mask's dtype."""
    kept = np.zeros(mask.shape, dtype=bool)
    for i, image_mask in enumerate((mask != 0).cpu().numpy()):
        labels, count = label(image_mask, return_num=True, connectivity=2, background=0)
        areas = [np.sum(labels == component) for component in range(1, count + 1)]
        largest = max(areas, default=0)
        for component, area in enumerate(areas, start=1):
            if area / largest > 0.2:
                kept[i][labels == component] = True
    return torch.from_numpy(kept).to(mask.dtype)


def precision_recall_curves_reference(
    gt: torch.Tensor, prob: torch.Tensor, prob_bins: int = 255
) -> tuple[torch.Tensor, torch.Tensor]:
    """One `precision_recall(gt, prob > t)` per threshold, stacked to `[B, K]` (the original's loop)."""
    curves = [precision_recall(gt, prob > t) for t in thresholds(prob_bins)]
    return torch.stack([p for p, _ in curves], 1), torch.stack([r for _, r in curves], 1)


def normalized_weight_reference(layer: SpectralNorm) -> torch.Tensor:
    """W / sigma recomputed from the stored vectors on every call (eval mode, no update of `u`)."""
    weight = layer.weight.reshape(layer.weight.size(0), -1)
    us = [getattr(layer, f"u{i}") for i in range(layer.num_svs)]
    for _ in range(layer.num_itrs):
        sigmas = power_iteration(weight, us, update=False, eps=layer.sn_eps)
    return layer.weight / sigmas[0]


@contextlib.contextmanager
def uncached_spectral_norm() -> Iterator[None]:
    """Every spectral-norm layer recomputes W / sigma in each forward while this is active (eval only)."""
    cached = SpectralNorm.normalized_weight
    SpectralNorm.normalized_weight = normalized_weight_reference
    try:
        yield
    finally:
        SpectralNorm.normalized_weight = cached


def mask_batch_reference(generator) -> tuple[torch.Tensor, torch.Tensor, int]:
    """A `MaskGenerator` batch made as the original made it: every latent of every attempt generated,
    the first passing samples kept. Also returns how many samples were generated."""
    images, masks, generated = [], [], 0
    while sum(len(mask) for mask in masks) < generator.p.batch_size:
        img, img_shifted, mask = generator.gen_samples(generator.make_noise(generator.p.batch_size))
        _, keep = generator.filter_decisions(img_shifted, mask)
        images.append(img[keep])
        masks.append(mask[keep])
        generated += len(mask)
    return torch.cat(images)[: generator.p.batch_size], torch.cat(masks)[: generator.p.batch_size], generated
