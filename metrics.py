"""Segmentation metrics: the original evaluation's IoU, accuracy, precision/recall and F_max, and the
salient-object-detection metrics as pysodmetrics computes them (`SODMetrics`; docs/evaluation.md).

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
from scipy import ndimage

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


EPS = np.spacing(1)  # MATLAB's eps, which pysodmetrics adds to denominators
N_LEVELS = 256
F_BETA2 = 0.3
WEIGHTED_F_BETA2 = 1.0
S_ALPHA = 0.5


def probability_to_uint8(probability: np.ndarray | torch.Tensor) -> np.ndarray:
    """A [0, 1] probability map as the 8-bit map one would save, by truncation of `255 p`.

    Truncation is the project's 8-bit conversion (`SegmentationInference`, torchvision's ToPILImage),
    so a map saved by this project and the map in memory score the same, and float32 maps of levels
    k/255 (what `SegmentationInference` gives after resizing) come back as exactly k.
    """
    if isinstance(probability, torch.Tensor):
        probability = probability.detach().cpu().numpy()
    probability = np.asarray(probability)
    if not np.all((probability >= 0) & (probability <= 1)):
        raise ValueError("the probability map has values outside [0, 1] (or NaN)")
    return (probability * 255).astype(np.uint8)


def normalise(prediction: np.ndarray) -> np.ndarray:
    """uint8 map -> float64 in [0, 1], min-max stretched unless constant, as pysodmetrics reads maps.

    The arithmetic (divide by 255 first) is pysodmetrics' own, so that `floor(255 p)` falls on the
    same levels to the last bit.
    """
    p = prediction / 255
    low, high = p.min(), p.max()
    return (p - low) / (high - low) if high != low else p


def mae(p: np.ndarray, gt: np.ndarray) -> float:
    """Mean absolute error between the normalised map and the mask."""
    return float(np.mean(np.abs(p - gt)))


def _object_similarity(x: np.ndarray) -> float:
    """S-measure's object term of one region's values: high mean, low spread (std with ddof 1)."""
    mean = np.mean(x)
    std = np.std(x, ddof=1) if x.size > 1 else 0.0
    return 2 * mean / (mean**2 + 1 + std + EPS)


def _ssim(p: np.ndarray, gt: np.ndarray) -> float:
    """S-measure's SSIM of one quadrant; 1 when both are constant with no correlation term."""
    n = p.size
    x, y = np.mean(p), np.mean(gt)
    dx, dy = p - x, gt - y
    var_x, var_y = np.sum(dx**2) / (n - 1 + EPS), np.sum(dy**2) / (n - 1 + EPS)
    cov = np.sum(dx * dy) / (n - 1 + EPS)
    alpha = 4 * x * y * cov
    beta = (x**2 + y**2) * (var_x + var_y)
    if alpha != 0:
        return alpha / (beta + EPS)
    return 1.0 if beta == 0 else 0.0


def _region_similarity(p: np.ndarray, gt: np.ndarray) -> float:
    """Area-weighted SSIM of the four quadrants around the mask's centroid (numpy's half-to-even rounding,
    plus 1 as in the MATLAB original's 1-based split). An empty quadrant has weight 0 and adds 0."""
    h, w = gt.shape
    object_rows, object_cols = np.nonzero(gt)
    cy, cx = int(np.round(object_rows.mean())) + 1, int(np.round(object_cols.mean())) + 1
    score = 0.0
    for rows in (slice(0, cy), slice(cy, h)):
        for cols in (slice(0, cx), slice(cx, w)):
            quadrant = p[rows, cols]
            if quadrant.size:
                score += _ssim(quadrant, gt[rows, cols]) * quadrant.size / (h * w)
    return score


def s_measure(p: np.ndarray, gt: np.ndarray, alpha: float = S_ALPHA) -> float:
    """Structure measure (Fan et al. 2017): object- and region-aware similarity, clipped at 0."""
    fg_share = np.mean(gt)
    if fg_share == 0:
        return float(1 - np.mean(p))
    if fg_share == 1:
        return float(np.mean(p))
    objects = fg_share * _object_similarity(p[gt]) + (1 - fg_share) * _object_similarity((1 - p)[~gt])
    return float(max(0.0, alpha * objects + (1 - alpha) * _region_similarity(p, gt)))


def _counts_at_levels(p: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(predicted, true positive) pixel counts of `floor(255 p) >= t` for t = 0..255, from histograms."""
    levels = (p * 255).astype(np.uint8)
    hist = np.bincount((levels + N_LEVELS * gt).ravel(), minlength=2 * N_LEVELS).reshape(2, N_LEVELS)
    at_or_above = hist[:, ::-1].cumsum(1)[:, ::-1]
    return at_or_above.sum(0), at_or_above[1]


def _adaptive_counts(p: np.ndarray, gt: np.ndarray) -> tuple[int, int]:
    """(predicted, true positive) counts of `p >= min(2 mean(p), 1)`."""
    binary = p >= min(2 * np.mean(p), 1)
    return np.count_nonzero(binary), np.count_nonzero(binary & gt)


def _enhanced_alignment(a: float, b: float) -> float:
    """E-measure's per-pixel score of demeaned prediction `a` and demeaned mask `b`."""
    return (2 * a * b / (a**2 + b**2 + EPS) + 1) ** 2 / 4


def e_measure_from_counts(
    n_pred: np.ndarray | int, tp: np.ndarray | int, n_gt: int, size: int
) -> np.ndarray | float:
    """Enhanced-alignment measure (Fan et al. 2018) of binary maps given by their pixel counts.

    A binary map has four kinds of pixels (TP, FP, FN, TN), each with one score, so the counts suffice;
    they may be arrays (one entry per threshold). An empty or full mask scores the pixels that agree.
    """
    n_pred = np.asarray(n_pred, dtype=np.float64)
    if n_gt == 0:
        total = size - n_pred
    elif n_gt == size:
        total = n_pred
    else:
        fp, fn = n_pred - tp, n_gt - tp
        tn = size - n_pred - fn
        pred_fg, pred_bg = 1 - n_pred / size, -n_pred / size
        gt_fg, gt_bg = 1 - n_gt / size, -n_gt / size
        total = (
            tp * _enhanced_alignment(pred_fg, gt_fg)
            + fp * _enhanced_alignment(pred_fg, gt_bg)
            + fn * _enhanced_alignment(pred_bg, gt_fg)
            + tn * _enhanced_alignment(pred_bg, gt_bg)
        )
    return total / (size - 1 + EPS)


def f_measure_from_counts(
    n_pred: np.ndarray | int, tp: np.ndarray | int, n_gt: int, beta2: float = F_BETA2
) -> np.ndarray | float:
    """F_beta from counts (scalars or arrays); P = 0 with nothing predicted, R = 0 for an empty mask."""
    tp = np.asarray(tp, dtype=np.float64)
    precision, recall = tp / np.maximum(n_pred, 1), tp / max(n_gt, 1)
    numerator = (1 + beta2) * precision * recall
    return numerator / np.where(numerator == 0, 1, beta2 * precision + recall)


def weighted_f_measure(p: np.ndarray, gt: np.ndarray, beta2: float = WEIGHTED_F_BETA2) -> float:
    """Weighted F-measure (Margolin et al. 2014); 0 for an empty mask.

    Background errors are taken at the nearest object pixel (scipy's Euclidean distance transform, as
    MATLAB's bwdist) and smoothed with MATLAB's `fspecial('gaussian', 7, 5)` (zero padding), which is a
    7-tap Gaussian of sigma 5 per axis; object errors keep the smaller of raw and smoothed, background
    errors grow with the distance to the object (2 - 0.5^(d/5)).
    """
    if not gt.any():
        return 0.0
    distance, (rows, cols) = ndimage.distance_transform_edt(~gt, return_indices=True)
    error = np.abs(p - gt)
    smoothed = ndimage.gaussian_filter(error[rows, cols], sigma=5, radius=3, mode="constant")
    error = np.where(gt & (smoothed < error), smoothed, error)
    weighted = error * np.where(gt, 1.0, 2 - np.exp(np.log(0.5) / 5 * distance))
    tp = np.count_nonzero(gt) - weighted[gt].sum()
    recall = 1 - weighted[gt].mean()
    precision = tp / (tp + weighted[~gt].sum() + EPS)
    return float((1 + beta2) * recall * precision / (recall + beta2 * precision + EPS))


class SODMetrics:
    """Accumulates per-image SOD metrics over a dataset (pysodmetrics conventions)."""

    def __init__(self) -> None:
        self._scores: dict[str, list] = {
            name: [] for name in ("MAE", "S_measure", "E_adaptive", "weighted_F", "F_adaptive", "E", "F")
        }

    def update(self, prediction: np.ndarray, mask: np.ndarray) -> None:
        """prediction: uint8 [H, W] 0..255 (an 8-bit probability map, as saved);
        mask: bool [H, W] (True = object)."""
        if prediction.dtype != np.uint8 or mask.dtype != bool:
            raise TypeError(f"need a uint8 prediction and a bool mask, not {prediction.dtype}, {mask.dtype}")
        if prediction.ndim != 2 or prediction.shape != mask.shape:
            raise ValueError(f"prediction {prediction.shape} and mask {mask.shape} must be the same [H, W]")
        p = normalise(prediction)
        n_gt, size = np.count_nonzero(mask), mask.size
        n_pred, tp = _counts_at_levels(p, mask)
        adaptive = _adaptive_counts(p, mask)
        for name, score in (
            ("MAE", mae(p, mask)),
            ("S_measure", s_measure(p, mask)),
            ("E", e_measure_from_counts(n_pred, tp, n_gt, size)),
            ("E_adaptive", e_measure_from_counts(*adaptive, n_gt, size)),
            ("weighted_F", weighted_f_measure(p, mask)),
            ("F", f_measure_from_counts(n_pred, tp, n_gt)),
            ("F_adaptive", f_measure_from_counts(*adaptive, n_gt)),
        ):
            self._scores[name].append(score)

    def results(self) -> dict[str, float]:
        """{"MAE", "S_measure", "E_measure_max", "E_measure_mean", "E_measure_adaptive", "weighted_F",
        "F_measure_max", "F_measure_mean", "F_measure_adaptive"} averaged over images as pysodmetrics does."""
        if not self._scores["MAE"]:
            raise ValueError("no images were added")
        mean = {name: np.mean(scores, axis=0) for name, scores in self._scores.items()}
        return {
            "MAE": float(mean["MAE"]),
            "S_measure": float(mean["S_measure"]),
            "E_measure_max": float(mean["E"].max()),
            "E_measure_mean": float(mean["E"].mean()),
            "E_measure_adaptive": float(mean["E_adaptive"]),
            "weighted_F": float(mean["weighted_F"]),
            "F_measure_max": float(mean["F"].max()),
            "F_measure_mean": float(mean["F"].mean()),
            "F_measure_adaptive": float(mean["F_adaptive"]),
        }
