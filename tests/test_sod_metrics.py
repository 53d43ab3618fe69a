import numpy as np
import py_sod_metrics  # requirements-dev.txt: the comparison must run, not skip
import pytest
import torch

import metrics
from metrics import SODMetrics, probability_to_uint8

SIZES = [(8, 9), (32, 32), (45, 30), (17, 64)]


class SmeasureEmptyQuadrantsZero(py_sod_metrics.Smeasure):
    """pysodmetrics' S-measure with an empty quadrant (weight 0) adding 0 instead of NaN."""

    def ssim(self, pred: np.ndarray, gt: np.ndarray) -> float:
        return 0.0 if pred.size == 0 else super().ssim(pred, gt)


def reference(pairs, smeasure=py_sod_metrics.Smeasure) -> dict[str, float]:
    """pysodmetrics' numbers, fed as its users do: 8-bit maps and 0/255 masks."""
    mae, sm, em = py_sod_metrics.MAE(), smeasure(), py_sod_metrics.Emeasure()
    wfm = py_sod_metrics.WeightedFmeasure()
    handler = py_sod_metrics.FmeasureHandler(with_dynamic=True, with_adaptive=True, beta=0.3)
    fm = py_sod_metrics.FmeasureV2({"fm": handler})
    for prediction, mask in pairs:
        for metric in (mae, sm, em, wfm, fm):
            metric.step(pred=prediction, gt=mask.astype(np.uint8) * 255)
    e, f = em.get_results()["em"], fm.get_results()["fm"]
    return {
        "MAE": mae.get_results()["mae"],
        "S_measure": sm.get_results()["sm"],
        "E_measure_max": e["curve"].max(),
        "E_measure_mean": e["curve"].mean(),
        "E_measure_adaptive": e["adp"],
        "weighted_F": wfm.get_results()["wfm"],
        "F_measure_max": f["dynamic"].max(),
        "F_measure_mean": f["dynamic"].mean(),
        "F_measure_adaptive": f["adaptive"],
    }


def ours(pairs) -> dict[str, float]:
    metrics = SODMetrics()
    for prediction, mask in pairs:
        metrics.update(prediction, mask)
    return metrics.results()


def as_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(values, 0, 255).astype(np.uint8)


def random_pairs(seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per size: a noisy map of a random-pixel mask, a uniform map, and a blurred, low-contrast map
    of a rectangle (distances matter for weighted F; min-max stretching matters everywhere)."""
    rng = np.random.default_rng(seed)
    pairs = []
    for h, w in SIZES:
        mask = rng.random((h, w)) < rng.uniform(0.1, 0.7)
        pairs.append((as_uint8(rng.normal(np.where(mask, 160, 80), 70)), mask))
        pairs.append((rng.integers(0, 256, (h, w), dtype=np.uint8), mask))
        box = np.zeros((h, w), bool)
        box[h // 4 : h // 2 + 2, w // 5 : w // 2 + 3] = True
        blurred = np.cumsum(np.cumsum(box, 0), 1) % 7 * 3 + np.where(box, 120, 100)
        pairs.append((as_uint8(blurred + rng.normal(0, 5, (h, w))), box))
    return pairs


def special_pairs() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """pysodmetrics' special cases: constant maps (not stretched), empty and full masks, exact maps."""
    rng = np.random.default_rng(7)
    h, w = 8, 9
    mask = rng.random((h, w)) < 0.4
    noise = rng.integers(0, 256, (h, w), dtype=np.uint8)
    empty, full = np.zeros((h, w), bool), np.ones((h, w), bool)
    corner = empty.copy()
    corner[0, 0] = True
    pairs = {f"constant {v}": (np.full((h, w), v, np.uint8), mask) for v in (0, 77, 255)}
    pairs |= {f"constant {v}, empty mask": (np.full((h, w), v, np.uint8), empty) for v in (0, 200)}
    pairs |= {f"constant {v}, full mask": (np.full((h, w), v, np.uint8), full) for v in (30, 255)}
    pairs |= {"empty mask": (noise, empty), "full mask": (noise, full), "one-pixel object": (noise, corner)}
    two = corner.copy()
    two[0, 1] = True
    pairs |= {"two-pixel object": (noise, two), "two-pixel background": (noise, ~two)}
    pairs |= {"exact binary map": (mask * np.uint8(255), mask), "inverted": (~mask * np.uint8(255), mask)}
    return pairs


@pytest.mark.parametrize("name", list(special_pairs()))
def test_special_cases_agree_with_pysodmetrics(name):
    pair = special_pairs()[name]
    assert ours([pair]) == pytest.approx(reference([pair]), abs=1e-6, rel=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_each_random_image_agrees_with_pysodmetrics(seed):
    for pair in random_pairs(seed):
        assert ours([pair]) == pytest.approx(reference([pair]), abs=1e-6, rel=0), pair[0].shape


def test_dataset_averages_agree_with_pysodmetrics():
    pairs = random_pairs(2) + list(special_pairs().values())
    assert ours(pairs) == pytest.approx(reference(pairs), abs=1e-6, rel=0)


def test_s_measure_empty_quadrant_adds_zero_where_pysodmetrics_gives_nan():
    """A centroid rounding to the last row or column leaves a quadrant empty; pysodmetrics' S is NaN."""
    rng = np.random.default_rng(3)
    last_row, corner = np.zeros((8, 9), bool), np.zeros((8, 9), bool)
    last_row[-1, 2:] = True
    corner[-1, -1] = True
    row_image = rng.random((1, 20)) < 0.5
    for mask in (last_row, corner, row_image):
        pair = (rng.integers(0, 256, mask.shape, dtype=np.uint8), mask)
        expected = reference([pair], smeasure=SmeasureEmptyQuadrantsZero)
        assert np.isfinite(expected["S_measure"])
        assert ours([pair]) == pytest.approx(expected, abs=1e-6, rel=0)


def test_probability_to_uint8_truncates_and_keeps_8_bit_levels():
    assert probability_to_uint8(np.array([0.0, 0.5, 0.999, 1.0])).tolist() == [0, 127, 254, 255]
    levels = np.arange(256)
    assert np.array_equal(probability_to_uint8(np.float32(levels) / np.float32(255)), levels)
    assert np.array_equal(probability_to_uint8(torch.arange(256) / 255.0), levels)
    for bad in (np.array([0.5, 1.5]), np.array([np.nan])):
        with pytest.raises(ValueError) as error:
            probability_to_uint8(bad)
        assert str(error.value) == "the probability map has values outside [0, 1] (or NaN)"


def test_update_refuses_other_types_and_shapes_and_results_needs_images():
    metrics = SODMetrics()
    prediction, mask = np.zeros((4, 5), np.uint8), np.zeros((4, 5), bool)
    with pytest.raises(TypeError) as error:
        metrics.update(prediction, mask.astype(np.uint8))
    assert str(error.value) == "need a uint8 prediction and a bool mask, not uint8, uint8"
    with pytest.raises(TypeError) as error:
        metrics.update(prediction / 255, mask)
    assert str(error.value) == "need a uint8 prediction and a bool mask, not float64, bool"
    with pytest.raises(ValueError) as error:
        metrics.update(prediction, mask.T)
    assert str(error.value) == "prediction (4, 5) and mask (5, 4) must be the same [H, W]"
    with pytest.raises(ValueError) as error:
        metrics.update(prediction[..., None], mask[..., None])
    assert str(error.value) == "prediction (4, 5, 1) and mask (4, 5, 1) must be the same [H, W]"
    with pytest.raises(ValueError) as error:
        metrics.results()
    assert str(error.value) == "no images were added"


def test_counts_are_per_level_at_or_above_it():
    """Level t counts pixels with floor(255 p) >= t; the results' max and mean alone cannot show the order."""
    p = np.array([[0.0, 1 / 255, 1.0]])
    n_pred, tp = metrics._counts_at_levels(p, np.array([[False, True, True]]))
    assert n_pred.tolist() == [3, 2] + [1] * 254
    assert tp.tolist() == [2, 2] + [1] * 254
