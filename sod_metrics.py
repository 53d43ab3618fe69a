"""Salient-object-detection metrics as pysodmetrics computes them, without pysodmetrics or OpenCV.

MAE, S-measure (alpha 0.5), E-measure (max, mean, adaptive), weighted F-measure (beta^2 = 1) and
F-measure (max, mean, adaptive; beta^2 = 0.3) of 8-bit probability maps, the numbers SOD papers report
(pysodmetrics 1.6 conventions, reproduced to 1e-6; `tests/test_sod_metrics.py` compares).

Conventions, and how they differ from the paper's `F_max` of `metrics.py`:

- A prediction is a uint8 map (as saved to PNG). It is divided by 255 and, unless it is constant,
  min-max stretched to [0, 1] (MATLAB's `mapminmax(im2double(...))`); `F_max` uses the map as it is.
- The curves binarise with `floor(255 p) >= t` at the 256 levels t = 0..255 (`F_max`: `p > k/255`,
  k = 0..254). Precision is 0 when nothing is predicted (`F_max`: 1), recall 0 when the mask is empty
  (`F_max`: 1), and F = 0 when P = R = 0.
- Each image's curve is averaged over images and the maximum (or mean) is taken of that average curve,
  one global threshold as in `F_max`. "Adaptive" scores binarise each image with `p >= min(2 mean(p), 1)`.
- Images whose mask is empty or all foreground have pysodmetrics' special cases: S = 1 - mean(p) or
  mean(p), E counts the pixels predicted as the mask's one class, weighted F is 0 for an empty mask.
- One deliberate difference: when the mask's centroid rounds to the last row or column, one S-measure
  quadrant is empty and pysodmetrics returns NaN (as the MATLAB original); here that quadrant, whose
  weight is 0, adds 0.
"""

import numpy as np
import torch
from scipy import ndimage

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
