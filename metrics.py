"""Segmentation metrics of the original evaluation: IoU, accuracy, precision/recall and F_max.

The function names are the original's (they are the keys of `model_metrics`'s results).

Masks are `[B, ...]` batches; a mask is compared as bool (nonzero = foreground = class 1).
The original's quirks are kept on purpose so that numbers stay comparable with the paper:
precision is 1 when nothing is predicted, recall is 1 when the ground truth is empty, F_max
thresholds with a strict `>` at `np.arange(0, 1, 1 / prob_bins)` (1.0 excluded) and takes the
maximum of the F curve averaged over images (one global threshold, not a per-image optimum).
"""

import itertools
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch

from utils.progress import progress_bar

Stat = Callable[..., float]


def _flatten(gt: torch.Tensor, pred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`[B, N]` views of a GT batch (moved to the prediction's device) and a prediction batch."""
    gt = torch.as_tensor(gt).to(pred.device)
    if gt.numel() != pred.numel():
        raise ValueError(f"ground truth {list(gt.shape)} and prediction {list(pred.shape)} do not match")
    # A GT without its batch dimension (e.g. `[H, W]` for a `[1, H, W]` prediction) is accepted.
    return gt.reshape(len(pred), -1), pred.reshape(len(pred), -1)


def _as_masks(gt: torch.Tensor, pred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Bool `[B, N]` masks; refuses probability maps, which bool() would turn into 'all foreground'."""
    pred = torch.as_tensor(pred)
    if pred.is_floating_point() and bool(((pred != 0) & (pred != 1)).any()):
        raise ValueError(
            "the prediction is a probability map, not a mask: binarise it first "
            "(e.g. evaluate `Threshold(model)` instead of `SegmentationInference(model)`)"
        )
    gt, pred = _flatten(gt, pred)
    return gt.bool(), pred.bool()


def IoU(gt: torch.Tensor, pred: torch.Tensor) -> float:  # noqa: N802
    """|gt AND pred| / |gt OR pred| per image (float32), averaged over the batch; 0/0 gives NaN."""
    gt, pred = _as_masks(gt, pred)
    intersection = (gt & pred).sum(1).float()
    union = (gt | pred).sum(1).float()
    return (intersection / union).mean().item()


def accuracy(gt: torch.Tensor, pred: torch.Tensor) -> float:
    """Fraction of pixels where prediction and ground truth agree (float32), averaged over the batch."""
    gt, pred = _as_masks(gt, pred)
    return ((gt == pred).sum(1).float() / gt.shape[1]).mean().item()


def _precision_recall_from_counts(
    tp: torch.Tensor, n_pred: torch.Tensor, n_gt: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    # The original's conventions: an empty prediction has precision 1, an empty GT has recall 1.
    tp, n_pred, n_gt = tp.float(), n_pred.float(), n_gt.float()
    precision = torch.where(n_pred > 0, tp / n_pred.clamp(min=1), 1.0)
    recall = torch.where(n_gt > 0, tp / n_gt.clamp(min=1), 1.0)
    return precision, recall


def precision_recall(gt: torch.Tensor, pred: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image precision and recall, float32 tensors `[B]`.

    Precision is 1.0 when nothing is predicted and recall is 1.0 when the GT is empty (the
    original's convention), so an empty GT with a non-empty prediction gives P=0, R=1.
    Unlike the original (which returned `.item()` and so only took batches of one), the values
    are returned per image, because averaging precisions over images is not what a PR curve needs.
    """
    gt, pred = _as_masks(gt, pred)
    return _precision_recall_from_counts((gt & pred).sum(1), pred.sum(1), gt.sum(1))


def thresholds(prob_bins: int = 255) -> np.ndarray:
    """The original's F_max thresholds `np.arange(0, 1, 1 / prob_bins)` (float64; 1.0 excluded)."""
    return np.arange(0.0, 1.0, 1.0 / prob_bins)


def precision_recall_curves(
    gt: torch.Tensor, prob: torch.Tensor, prob_bins: int = 255
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image precision and recall of `prob > t_k` at every threshold, float32 `[B, K]`.

    Equals calling `precision_recall(gt, prob > t_k)` for each `t_k` of `thresholds(prob_bins)`,
    with the comparison in the map's dtype (the original compared a float32 map with a Python
    float, which torch casts to float32), but without a loop over thresholds: each value's
    position (how many thresholds it is above) is counted once per image and GT class, and the
    per-threshold counts are suffix sums of that histogram.
    """
    prob = torch.as_tensor(prob)
    if not prob.is_floating_point():
        prob = prob.float()
    gt, prob = _flatten(gt, prob)
    gt = gt.bool()
    above = _position_histograms(gt, prob, prob_bins).flip(2).cumsum(2).flip(2)[:, :, 1:]
    return _precision_recall_from_counts(above[:, 1], above.sum(1), gt.sum(1, keepdim=True))


def _position_histograms(gt: torch.Tensor, prob: torch.Tensor, prob_bins: int) -> torch.Tensor:
    """int64 `[B, 2, K + 1]`: per image and GT class (0, 1), how many values are above exactly k thresholds.

    A value's position is within one of a cheap guess (`_position_guesses`), so it is the guess - 1
    plus its comparisons with the three thresholds around the guess. The comparisons and the GT class
    go into a 3-bit code, one `bincount` counts (image, guess, code), and the codes are folded onto
    positions afterwards: a few cheap passes over the values instead of a binary search each.
    """
    levels = torch.from_numpy(thresholds(prob_bins)).to(prob.dtype)
    n_levels, n_images = len(levels), len(prob)
    guesses = _position_guesses(prob, levels, prob_bins)
    inf = levels.new_tensor([float("inf")])
    around = torch.cat([-inf, levels, inf]).to(prob.device)  # around[k + 1] is threshold k
    code = gt.to(torch.uint8) * 4
    flat = guesses.flatten()
    for offset in range(3):
        code += prob > around.index_select(0, flat + offset).view(prob.shape)
    cell = guesses.mul_(8).add_(code)
    cell += 8 * n_levels * torch.arange(n_images, device=prob.device)[:, None]
    hist = torch.bincount(cell.flatten(), minlength=n_images * n_levels * 8).view(n_images, n_levels, 2, 4)
    counts = hist.new_zeros(n_images, 2, n_levels + 3)
    for above_of_three in range(4):
        counts[:, :, above_of_three : above_of_three + n_levels] += hist[..., above_of_three].transpose(1, 2)
    # position = guess - 1 + above_of_three. K + 1 cannot occur; -1 (NaN, -inf: above no threshold, as
    # position 0) is dropped, which changes no count of values above a threshold.
    return counts[:, :, 1:-1]


def _position_guesses(prob: torch.Tensor, levels: torch.Tensor, prob_bins: int) -> torch.Tensor:
    """For each value, an int64 index g in [0, K - 1] whose position is g - 1, g, g + 1 or g + 2.

    The thresholds are spaced 1 / prob_bins from 0, so `trunc(prob * prob_bins)` is such an index
    (NaN and -inf are above no threshold, like -1) unless `levels` (cast to the map's dtype) lie a quarter
    spacing or more off that grid, as in bfloat16 with many bins; then a binary search finds it.
    """
    last = len(levels) - 1
    if (levels.double() * prob_bins - torch.arange(len(levels))).abs().max() >= 0.25:
        levels = levels.to(prob.device)
        return (torch.searchsorted(levels, prob.nan_to_num(nan=-1.0).contiguous()) - 1).clamp_(0, last)
    scaled = torch.nan_to_num(prob.float() * prob_bins, nan=0.0, posinf=float(last), neginf=0.0)
    return scaled.clamp_(0, last).long()


def F_score(precision: torch.Tensor, recall: torch.Tensor, beta2: float = 0.3) -> torch.Tensor:  # noqa: N802
    """F_beta = (1 + beta2) P R / (beta2 P + R), elementwise; NaN (P = R = 0) becomes 0."""
    score = ((1 + beta2) * precision * recall) / (beta2 * precision + recall)
    return torch.where(torch.isnan(score), 0.0, score)


def F_max(precisions: torch.Tensor, recalls: torch.Tensor, beta2: float = 0.3) -> float:  # noqa: N802
    """Max over thresholds of the F score averaged over images.

    `precisions` and `recalls` are `[N images, K thresholds]` curves as given by
    `precision_recall_curves`; `model_metrics` builds them when `F_max` is among its stats.
    """
    return F_score(precisions, recalls, beta2).mean(dim=0).max().item()


def model_metrics(
    model: Callable[[torch.Tensor], torch.Tensor],
    loader: Iterable[tuple[torch.Tensor, torch.Tensor]],
    n_steps: int | None = None,
    stats: Sequence[Stat] = (IoU, accuracy, F_max),
    prob_bins: int = 255,
) -> dict[str, float]:
    """Evaluate `model` on (image, mask) batches of `loader`; keys are the stats' function names.

    `model` maps an image batch to a `[B, H, W]` prediction: a probability map for `F_max`
    (e.g. `SegmentationInference`), a mask for mask stats such as `IoU` and `accuracy`
    (e.g. `Threshold`; these refuse probability maps). Masks are moved to the prediction's
    device. Mask stats are averaged over images (the original averaged per batch, the same
    for its batch size of 1); `F_max` is the maximum over the `prob_bins` thresholds of the
    per-threshold mean F over images. `n_steps` limits the number of batches.
    """
    mask_stats = [stat for stat in stats if stat is not F_max]
    sums = dict.fromkeys((stat.__name__ for stat in mask_stats), 0.0)
    precisions, recalls = [], []
    n_images = 0
    batches = loader if n_steps is None else itertools.islice(loader, n_steps)
    # Without n_steps, tqdm takes the total from len(loader) where there is one.
    for img, mask in progress_bar(batches, total=n_steps, leave=False, desc="metrics"):
        prediction = model(img)
        mask = torch.as_tensor(mask).to(prediction.device)
        if F_max in stats:
            precision, recall = precision_recall_curves(mask, prediction, prob_bins)
            precisions.append(precision)
            recalls.append(recall)
        for stat in mask_stats:
            sums[stat.__name__] += stat(mask, prediction) * len(prediction)
        n_images += len(prediction)
    if n_images == 0:
        raise ValueError("the loader gave no batches to evaluate")
    return {
        stat.__name__: (
            F_max(torch.cat(precisions), torch.cat(recalls))
            if stat is F_max
            else sums[stat.__name__] / n_images
        )
        for stat in stats
    }
