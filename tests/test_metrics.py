import numpy as np
import pytest
import torch

from metrics import (
    F_max,
    F_score,
    IoU,
    accuracy,
    model_metrics,
    precision_recall,
    precision_recall_curves,
    thresholds,
)
from postprocessing import SegmentationInference, Threshold
from tests.fixture_files import load_fixture

N_PAIRS = 8


@pytest.fixture(scope="module")
def ref() -> dict[str, torch.Tensor]:
    return load_fixture("metrics.pt")


def pairs(ref) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The original's 'dataloader': (prediction as the image, GT) batches of one."""
    return [(ref[f"pred_{i}"][None], ref[f"gt_{i}"][None]) for i in range(N_PAIRS)]


def identity(x: torch.Tensor) -> torch.Tensor:
    return x


@pytest.mark.parametrize("i", range(N_PAIRS))
def test_per_pair_metrics_match_reference(ref, i):
    gt, mask = ref[f"gt_{i}"][None], ref[f"pred_{i}"][None] >= 0.5
    precision, recall = precision_recall(gt, mask)
    computed = [IoU(gt, mask), accuracy(gt, mask), precision.item(), recall.item()]
    expected = [ref[name][i].item() for name in ("IoU", "accuracy", "precision", "recall")]
    np.testing.assert_allclose(computed, expected, rtol=1e-6, atol=0)


def test_pr_curves_match_reference_exactly(ref):
    np.testing.assert_array_equal(thresholds(255), ref["pr_curve_thresholds"].numpy())
    curves = [precision_recall_curves(gt[None], pred[None]) for pred, gt in pairs(ref)]
    assert torch.equal(torch.cat([p for p, _ in curves]), ref["pr_curve_precision"])
    assert torch.equal(torch.cat([r for _, r in curves]), ref["pr_curve_recall"])


def test_mean_f_curve_and_f_max_match_reference(ref):
    precisions, recalls = ref["pr_curve_precision"], ref["pr_curve_recall"]
    torch.testing.assert_close(F_score(precisions, recalls).mean(0), ref["mean_F_curve"], rtol=1e-6, atol=0)
    assert F_max(precisions, recalls) == pytest.approx(ref["F_max"].item(), abs=1e-6)


def test_model_metrics_match_reference(ref):
    f_max = model_metrics(SegmentationInference(identity), pairs(ref), stats=(F_max,))
    assert list(f_max) == ["F_max"]
    assert f_max["F_max"] == pytest.approx(ref["F_max"].item(), abs=1e-6)
    thresholded = model_metrics(Threshold(identity, thr=0.5), pairs(ref), stats=(IoU, accuracy))
    assert thresholded["IoU"] == pytest.approx(ref["mm_IoU"].item(), abs=1e-6)
    assert thresholded["accuracy"] == pytest.approx(ref["mm_accuracy"].item(), abs=1e-6)


def loop_curves(gt: torch.Tensor, prob: torch.Tensor, prob_bins: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The original's definition: one `precision_recall(gt, prob > t)` per threshold."""
    curves = [precision_recall(gt, prob > t) for t in thresholds(prob_bins)]
    return torch.stack([p for p, _ in curves], 1), torch.stack([r for _, r in curves], 1)


@pytest.mark.parametrize("prob_bins", [255, 10, 7])
def test_curves_equal_threshold_loop_including_values_on_thresholds(prob_bins):
    g = torch.Generator().manual_seed(1)
    prob = torch.rand(4, 20, 30, generator=g)
    levels = torch.from_numpy(thresholds(prob_bins)).float()
    on_level = torch.rand(prob.shape, generator=g) < 0.3
    prob[on_level] = levels[torch.randint(len(levels), (int(on_level.sum()),), generator=g)]
    prob[1] = 0.0  # empty prediction at every threshold
    gt = torch.rand(prob.shape, generator=g) < prob
    gt[2] = False  # empty ground truth
    computed = precision_recall_curves(gt, prob, prob_bins)
    expected = loop_curves(gt, prob, prob_bins)
    assert computed[0].shape == (4, len(levels))
    assert torch.equal(computed[0], expected[0]) and torch.equal(computed[1], expected[1])


def test_empty_prediction_and_empty_gt_conventions():
    gt = torch.tensor([[[1, 0]], [[0, 0]], [[0, 0]]])
    pred = torch.tensor([[[0, 0]], [[1, 0]], [[0, 0]]])
    precision, recall = precision_recall(gt, pred)
    assert precision.tolist() == [1.0, 0.0, 1.0]
    assert recall.tolist() == [0.0, 1.0, 1.0]
    assert F_score(precision, recall).tolist() == [0.0, 0.0, 1.0]


def test_iou_and_accuracy_average_per_image_over_the_batch():
    gt = torch.tensor([[[1, 1, 0, 0]], [[1, 0, 0, 0]]])
    pred = torch.tensor([[[1, 0, 0, 0]], [[1, 0, 0, 1]]], dtype=torch.bool)
    assert IoU(gt, pred) == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert accuracy(gt, pred) == pytest.approx((3 / 4 + 3 / 4) / 2)
    assert IoU(gt[:1].squeeze(0), pred[:1]) == pytest.approx(0.5)


def test_mask_stats_refuse_probability_maps():
    message = (
        "the prediction is a probability map, not a mask: binarise it first "
        "(e.g. evaluate `Threshold(model)` instead of `SegmentationInference(model)`)"
    )
    for value in (0.7, 2.0, -1.0):
        with pytest.raises(ValueError) as error:
            IoU(torch.ones(1, 2, 2), torch.tensor([[[0.0, 1.0], [value, 1.0]]]))
        assert str(error.value) == message


def test_mask_stats_take_float_masks_of_zeros_and_ones_as_masks():
    gt = torch.tensor([[[1, 1], [0, 0]], [[1, 0], [0, 0]]])
    pred = torch.tensor([[[1, 0], [1, 0]], [[0, 0], [0, 0]]])
    for stat in (IoU, accuracy):
        assert stat(gt.float(), pred.float()) == stat(gt.bool(), pred.bool()) == stat(gt, pred)
    assert IoU(gt, pred) == pytest.approx((1 / 3 + 0) / 2)


def test_one_pixel_masks_have_precision_and_recall_one():
    mask = torch.zeros(1, 3, 3, dtype=torch.bool)
    mask[0, 1, 1] = True
    precision, recall = precision_recall(mask, mask)
    assert precision.tolist() == [1.0] and recall.tolist() == [1.0]
    precision, recall = precision_recall_curves(mask, mask.float(), prob_bins=2)
    assert precision.tolist() == [[1.0, 1.0]] and recall.tolist() == [[1.0, 1.0]]


def test_thresholds_default_to_the_originals_255():
    levels = thresholds()
    assert len(levels) == 255 and levels[1] == 1 / 255
    np.testing.assert_array_equal(levels, np.arange(0.0, 1.0, 1.0 / 255))


def test_f_max_uses_the_given_beta():
    precision, recall = torch.tensor([[1.0, 0.5]]), torch.tensor([[0.25, 1.0]])
    assert F_max(precision, recall, beta2=1.0) == pytest.approx(2 * 0.5 / 1.5)  # F1 of (0.5, 1.0)
    assert F_max(precision, recall) == pytest.approx(1.3 * 0.25 / (0.3 + 0.25))  # F0.3 of (1.0, 0.25)


def test_masks_of_other_sizes_than_their_ground_truth_are_refused():
    message = r"^ground truth \[1, 2, 2\] and prediction \[1, 3, 3\] do not match$"
    for stat in (IoU, accuracy, precision_recall):
        with pytest.raises(ValueError, match=message):
            stat(torch.ones(1, 2, 2), torch.ones(1, 3, 3))
    with pytest.raises(ValueError, match=message):
        precision_recall_curves(torch.ones(1, 2, 2), torch.ones(1, 3, 3))


def test_integer_maps_give_the_curves_of_their_float_values():
    """A 0/1 map of any dtype is a probability map of 0.0 and 1.0 (only values above a threshold count)."""
    gt = torch.tensor([[[1, 0], [1, 0]]])
    ints = torch.tensor([[[1, 1], [0, 0]]])
    for dtype in (torch.uint8, torch.long, torch.bool):
        got = precision_recall_curves(gt, ints.to(dtype), prob_bins=4)
        want = precision_recall_curves(gt, ints.float(), prob_bins=4)
        assert all(torch.equal(g, w) for g, w in zip(got, want, strict=True))


def test_f_score_replaces_only_nan():
    scores = F_score(torch.tensor([0.0, 1.0, 0.5]), torch.tensor([0.0, 1.0, 0.25]))
    expected = torch.tensor([0.0, 1.0, 1.3 * 0.5 * 0.25 / (0.3 * 0.5 + 0.25)])
    torch.testing.assert_close(scores, expected)


def test_model_metrics_averages_over_images_and_limits_steps():
    gt = torch.tensor([[[1, 1, 0, 0]], [[1, 0, 0, 0]], [[0, 1, 1, 1]]])
    pred = torch.tensor([[[1, 0, 0, 0]], [[1, 0, 0, 1]], [[0, 1, 1, 1]]], dtype=torch.bool)
    batches = [(pred[:2], gt[:2]), (pred[2:], gt[2:])]
    every = model_metrics(identity, batches, stats=(IoU, accuracy))
    assert every == pytest.approx({"IoU": (0.5 + 0.5 + 1) / 3, "accuracy": (0.75 + 0.75 + 1) / 3})
    first = model_metrics(identity, iter(batches), n_steps=1, stats=(IoU,))
    assert first == pytest.approx({"IoU": 0.5})


def test_model_metrics_f_max_is_max_of_mean_curve_not_per_image_optimum():
    gt = torch.tensor([[[1, 0]], [[1, 0]]])
    prob = torch.tensor([[[0.9, 0.5]], [[0.3, 0.1]]])
    batches = [(prob[i : i + 1], gt[i : i + 1]) for i in range(2)]
    precision, recall = loop_curves(gt, prob, 255)
    expected = F_score(precision, recall).mean(0).max().item()
    assert model_metrics(identity, batches, stats=(F_max,))["F_max"] == pytest.approx(expected)
    assert expected < 1.0  # each image alone reaches F = 1 at its own threshold


def quantised_set(seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(8-bit level map, non-empty GT) pairs, as SegmentationInference outputs with resizing."""
    rng = np.random.default_rng(seed)
    out = []
    for h, w in [(20, 30), (32, 32), (17, 41), (25, 25), (40, 12)]:
        gt = rng.random((h, w)) < rng.uniform(0.1, 0.6)
        gt[0, 0] = True
        levels = np.clip(rng.normal(np.where(gt, 170, 90), 60), 0, 255).astype(np.uint8)
        out.append((levels, gt))
    return out


@pytest.mark.filterwarnings("ignore:This class will be removed")
def test_f_max_agrees_with_pysodmetrics_on_8_bit_maps():
    """pysodmetrics' F curve uses `floor(255 p) >= j` for j = 255..0 (256 thresholds, F(beta2=0.3)
    averaged over images, maximum over thresholds), P = 0 for an empty prediction and R = 0 for an
    empty GT. On maps of 8-bit levels q/255 with non-empty GTs, our `p > k/255` is its `q >= k+1`
    and both conventions give F = 0, so its curve entries j = 1..255 equal ours; its extra
    j = 0 (everything foreground) has no counterpart here. On non-quantised maps the two differ
    by design (its truncation to 8 bits versus our exact comparison)."""
    py_sod_metrics = pytest.importorskip("py_sod_metrics")
    fmeasure = py_sod_metrics.Fmeasure(beta=0.3)
    batches = []
    for levels, gt in quantised_set(seed=3):
        # Mid-level values (1.0 for level 255) so that its own `floor(255 p)` recovers the level.
        fmeasure.step(pred=np.minimum((levels + 0.5) / 255, 1.0), gt=gt, normalize=False)
        batches.append((torch.from_numpy(levels).float()[None] / 255, torch.from_numpy(gt)[None]))
    theirs = fmeasure.get_results()["fm"]["curve"]  # index i: floor(255 p) >= 255 - i
    precision, recall = zip(*(precision_recall_curves(gt, prob) for prob, gt in batches), strict=True)
    ours = F_score(torch.cat(precision), torch.cat(recall)).mean(0).double().numpy()
    np.testing.assert_allclose(ours, theirs[:255][::-1], atol=1e-6)
    f_max = model_metrics(identity, batches, stats=(F_max,))["F_max"]
    assert f_max == pytest.approx(theirs[:255].max(), abs=1e-6)


def identity_batches(count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`count` batches of one probability map and a mask drawn from it (the model is the identity)."""
    g = torch.Generator().manual_seed(count)
    prob = torch.rand(count, 1, 6, 7, generator=g)
    return [(prob[i], (torch.rand(1, 6, 7, generator=g) < prob[i]).long()) for i in range(count)]


def test_model_metrics_reports_progress_over_the_batches_it_evaluates(capsys):
    batches = identity_batches(3)
    model_metrics(lambda prob: prob, batches, stats=(F_max,))
    lines = capsys.readouterr().err.splitlines()  # the opening line only: the bar is not left behind
    assert len(lines) == 1 and lines[0].startswith("metrics:   0%|") and " 0/3 " in lines[0]
    model_metrics(lambda prob: prob, batches, n_steps=2, stats=(F_max,))
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("metrics:   0%|") and " 0/2 " in lines[0]


def test_model_metrics_takes_loaders_without_a_length(capsys):
    batches = identity_batches(3)
    from_generator = model_metrics(lambda prob: prob, (batch for batch in batches), stats=(F_max,))
    assert from_generator == model_metrics(lambda prob: prob, batches, stats=(F_max,))
    assert " 0/" not in capsys.readouterr().err.splitlines()[0]  # no total to show


def test_model_metrics_counts_every_image_once_and_uses_the_given_thresholds():
    batches = identity_batches(1)
    one = model_metrics(lambda prob: prob, batches, stats=(F_max,), prob_bins=3)
    gt, prob = batches[0][1], batches[0][0]
    assert one == {"F_max": F_max(*precision_recall_curves(gt, prob, 3))}
    assert one != model_metrics(lambda prob: prob, batches, stats=(F_max,))
    with pytest.raises(ValueError) as error:
        model_metrics(lambda prob: prob, [], stats=(F_max,))
    assert str(error.value) == "the loader gave no batches to evaluate"
