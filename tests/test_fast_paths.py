"""The fast paths against the plain implementations of the same definitions (tests/reference_impl.py)."""

import copy

import pytest
import torch

from BigGAN.gan_load import UnconditionalBigGAN
from BigGAN.model.BigGAN import Generator
from BigGAN.model.layers import SpectralNorm, power_iteration
from gan_mask_gen import batched_histograms, count_maxima, maxes_filter, value_histograms
from metrics import F_max, precision_recall_curves, thresholds
from postprocessing import connected_components_filter
from tests.fixture_files import load_fixture
from tests.reference_impl import (
    connected_components_reference,
    maxes_filter_reference,
    normalized_weight_reference,
    precision_recall_curves_reference,
    uncached_spectral_norm,
)
from tests.weight_fill import fill_module

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]


# Two-peak filter -------------------------------------------------------------------------------------


def values_at_bin_edges(bins: int = 12, ulps: int = 24) -> torch.Tensor:
    """float32 values on, and up to `ulps` steps either side of, every bin edge of [-1, 1] (edges
    both as float32 linspace and as rounded float64), and values outside the range, NaN included."""
    edges = torch.cat(
        [torch.linspace(-1, 1, bins + 1), (-1 + torch.arange(bins + 1.0).double() * 2 / bins).float()]
    )
    values = [edges]
    for direction in (float("inf"), float("-inf")):
        step = edges
        for _ in range(ulps):
            step = torch.nextafter(step, torch.tensor(direction))
            values.append(step)
    specials = [0.0, -0.0, 1e-45, -1e-45, 1e-38, 2.0, -2.0, 1e30, float("inf"), float("-inf"), float("nan")]
    return torch.cat([*values, torch.tensor(specials)])


@pytest.mark.parametrize("device", DEVICES)
def test_histograms_put_every_edge_value_where_histc_does(device):
    values = values_at_bin_edges().to(device)
    single_value_images = values.view(-1, 1)
    expected = torch.stack([torch.histc(image, 12, -1, 1) for image in single_value_images])
    assert torch.equal(batched_histograms(single_value_images).float(), expected)
    assert torch.equal(value_histograms(single_value_images).float(), expected)
    assert expected.sum() < len(values)  # the values outside [-1, 1] were dropped
    counted = expected.sum(1) == 1
    exact_bins = ((values[counted].double() + 1) * 6).floor().clamp(max=11)
    assert (exact_bins != expected[counted].argmax(1)).any()  # float32 rounding moves some of them


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_histograms_equal_histc_per_image(dtype):
    g = torch.Generator().manual_seed(0)
    images = (torch.rand(5, 3, 17, 19, generator=g) * 2.2 - 1.1).to(dtype)
    images[0, 0, 0, :4] = torch.tensor([-1.0, 1.0, float("nan"), float("inf")], dtype=dtype)
    expected = torch.stack([torch.histc(image.float(), 12, -1, 1) for image in images])
    assert torch.equal(batched_histograms(images).float(), expected)
    assert torch.equal(value_histograms(images).float(), expected)


def test_batched_histograms_count_batches_whose_last_images_miss_the_top_bins():
    """The counts keep their shape when no value falls in the last bins of the last image."""
    images = torch.full((3, 1, 2, 2), -1.0)
    images[0] = 1.0
    expected = torch.stack([torch.histc(image, 12, -1, 1) for image in images])
    assert torch.equal(batched_histograms(images).float(), expected)


def images_with_random_histograms(count: int, values: int, seed: int) -> torch.Tensor:
    """`[count, 1, 1, values]` images of bin centres spread around a random bin, one or two modes; few
    values per image give many ties and plateaus. A sixth of the values are outside the range (2.0
    or NaN), which the histogram does not count."""
    g = torch.Generator().manual_seed(seed)
    centre = torch.randint(0, 12, (count, 1), generator=g).float()
    second = torch.where(torch.rand(count, 1, generator=g) < 0.5, centre, torch.randint(0, 12, (count, 1)))
    around = torch.where(torch.rand(count, values, generator=g) < 0.5, centre, second.float())
    spread = torch.rand(count, 1, generator=g) * 3
    index = (around + spread * torch.randn(count, values, generator=g)).round().clamp(0, 11).long()
    outside = torch.rand(count, values, generator=g) < 1 / 6
    index[outside] = torch.randint(12, 14, (int(outside.sum()),), generator=g)
    centres = torch.cat([-1 + (torch.arange(12) + 0.5) / 6, torch.tensor([2.0, float("nan")])])
    return centres[index].view(count, 1, 1, values)


@pytest.mark.parametrize("values", [30, 200, 1000])
def test_maxes_filter_equals_reference_with_ties_and_plateaus(values):
    images = images_with_random_histograms(400, values, seed=values)
    kept = maxes_filter(images)
    assert torch.equal(kept, maxes_filter_reference(images))
    assert torch.equal(count_maxima(batched_histograms(images)) >= 2, kept)
    assert 0 < int(kept.sum()) < len(images)


@pytest.mark.parametrize("width", [5, 7])
def test_maxes_filter_equals_reference_for_other_box_widths(width):
    images = images_with_random_histograms(400, 200, seed=width)
    kept = maxes_filter(images, width=width)
    assert torch.equal(kept, maxes_filter_reference(images, width=width))
    assert 0 < int(kept.sum()) < len(images)


def test_maxes_filter_equals_reference_on_the_pipeline_fixture():
    shifted = load_fixture("mask_pipeline_inputs.pt")["img_shifted"].float()
    assert torch.equal(maxes_filter(shifted), maxes_filter_reference(shifted))
    assert torch.equal(maxes_filter(shifted), load_fixture("mask_pipeline.pt")["maxes_filter"])


@pytest.mark.parametrize("width", [1, 3, 5])
def test_maxes_filter_equals_reference_for_other_bins_and_widths(width):
    images = torch.rand(50, 3, 8, 8, generator=torch.Generator().manual_seed(width)) * 2 - 1
    for bins in (5, 12, 20):
        assert torch.equal(maxes_filter(images, bins, width), maxes_filter_reference(images, bins, width))


# Connected components --------------------------------------------------------------------------------


def test_connected_components_equal_reference_on_the_pipeline_fixture():
    masks = load_fixture("mask_pipeline.pt")
    raw = masks["pair_to_mask"].long()
    assert torch.equal(connected_components_reference(raw), masks["connected_components"].long())
    assert torch.equal(connected_components_filter(None, raw), connected_components_reference(raw))


@pytest.mark.parametrize("density", [0.2, 0.45, 0.6, 0.8])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.bool, torch.float32])
def test_connected_components_equal_reference_on_noise(density, dtype):
    g = torch.Generator().manual_seed(int(density * 100))
    masks = (torch.rand(6, 37, 53, generator=g) < density).to(dtype)
    masks[0] = 0  # empty
    masks[1] = 1  # one component covering everything
    filtered = connected_components_filter(None, masks)
    assert filtered.dtype == dtype
    assert torch.equal(filtered, connected_components_reference(masks))


def test_connected_components_equal_reference_at_the_exact_share():
    mask = torch.zeros(2, 9, 40, dtype=torch.long)
    mask[:, 0:5, 0:10] = 1  # area 50: the largest
    mask[0, 0:2, 12:17] = 1  # area 10 = 0.2 x 50: dropped
    mask[1, 0:1, 12:23] = 1  # area 11: kept
    mask[:, 8, 39] = 1  # area 1: dropped
    assert torch.equal(connected_components_filter(None, mask), connected_components_reference(mask))


# F_max -----------------------------------------------------------------------------------------------


def test_pr_curves_equal_reference_on_the_metrics_fixture():
    ref = load_fixture("metrics.pt")
    for i in range(8):
        gt, prob = ref[f"gt_{i}"][None], ref[f"pred_{i}"][None]
        fast, plain = precision_recall_curves(gt, prob), precision_recall_curves_reference(gt, prob)
        assert torch.equal(fast[0], plain[0]) and torch.equal(fast[1], plain[1])


@pytest.mark.parametrize("prob_bins", [255, 10])
def test_f_max_equals_reference_on_a_batch(prob_bins):
    g = torch.Generator().manual_seed(prob_bins)
    prob = torch.rand(5, 24, 31, generator=g)
    prob[0, :3] = torch.arange(3 * 31).view(3, 31).float() / 255  # values on the thresholds
    prob[1] = 0.0
    gt = torch.rand(prob.shape, generator=g) < prob
    gt[2] = False
    fast = precision_recall_curves(gt, prob, prob_bins)
    plain = precision_recall_curves_reference(gt, prob, prob_bins)
    assert torch.equal(fast[0], plain[0]) and torch.equal(fast[1], plain[1])
    assert F_max(*fast) == F_max(*plain)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("prob_bins", [255, 1000, 10, 7, 3, 1])
def test_pr_curves_equal_reference_at_every_threshold_and_special_value(prob_bins, dtype):
    """Each threshold, its float neighbours on both sides, NaN, infinities and values outside [0, 1]."""
    levels = torch.from_numpy(thresholds(prob_bins)).to(dtype)
    up, down = torch.tensor(2.0, dtype=dtype), torch.tensor(-2.0, dtype=dtype)
    specials = torch.tensor([-0.0, 1.0, 1.5, -0.5, -1e-30, 1e30, float("nan"), float("inf"), float("-inf")])
    g = torch.Generator().manual_seed(prob_bins)
    prob = torch.cat([levels, levels.nextafter(up), levels.nextafter(down), specials.to(dtype)])
    prob = torch.cat([prob, torch.rand(2000, generator=g).to(dtype)]).repeat(3, 1)
    gt = torch.rand(prob.shape, generator=g) < 0.4
    fast = precision_recall_curves(gt, prob, prob_bins)
    plain = precision_recall_curves_reference(gt, prob, prob_bins)
    assert torch.equal(fast[0], plain[0]) and torch.equal(fast[1], plain[1])


# Spectral norm ---------------------------------------------------------------------------------------


@pytest.fixture
def small_generator(reference_results) -> Generator:
    return fill_module(Generator(**reference_results["generator_small"]["config"]))


def sn_layers(module: torch.nn.Module) -> list[SpectralNorm]:
    return [layer for layer in module.modules() if isinstance(layer, SpectralNorm)]


@torch.no_grad()
def test_eval_generator_is_bit_identical_to_recomputing_sigma(small_generator):
    G = UnconditionalBigGAN(small_generator)
    z = torch.randn(2, G.dim_z, generator=torch.Generator().manual_seed(0))
    cached = [G(z), G(z + 1)]
    with uncached_spectral_norm():
        plain = [G(z), G(z + 1)]
    assert all(torch.equal(a, b) for a, b in zip(cached, plain, strict=True))


@torch.no_grad()
def test_normalized_weight_is_computed_once_until_an_input_changes(small_generator):
    layer = sn_layers(small_generator)[5]
    first = layer.normalized_weight()
    assert layer.normalized_weight() is first
    assert torch.equal(first, normalized_weight_reference(layer))
    changes = [
        lambda: layer.weight.mul_(1.5),
        lambda: layer.u0.copy_(torch.randn(layer.u0.shape)),
        lambda: layer.load_state_dict(fill_module(copy.deepcopy(layer), seed=7).state_dict()),
        lambda: layer.double(),
    ]
    for change in changes:
        before = layer.normalized_weight()
        change()
        after = layer.normalized_weight()
        assert after is not before and torch.equal(after, normalized_weight_reference(layer))


@torch.no_grad()
def test_changes_through_data_need_an_explicit_clear(small_generator):
    layer = sn_layers(small_generator)[0]
    stale = layer.normalized_weight()
    layer.weight.data.mul_(2)  # bypasses the version counter
    assert layer.normalized_weight() is stale
    layer.clear_normalized_weight_cache()
    assert torch.equal(layer.normalized_weight(), normalized_weight_reference(layer))


@torch.no_grad()
def test_train_mode_updates_u_every_call_as_before(small_generator):
    layer = sn_layers(small_generator)[3]
    layer.normalized_weight()  # fills the eval cache
    layer.train()
    for _ in range(2):
        expected_layer = copy.deepcopy(layer)
        weight = expected_layer.weight.reshape(expected_layer.weight.size(0), -1)
        (sigma,) = power_iteration(weight, [expected_layer.u0], update=True, eps=layer.sn_eps)
        assert torch.equal(layer.normalized_weight(), layer.weight / sigma)
        assert torch.equal(layer.u0, expected_layer.u0) and layer.sv0.item() == sigma.item()
    layer.eval()
    assert torch.equal(layer.normalized_weight(), normalized_weight_reference(layer))


def test_gradients_reach_the_weights_on_every_forward(small_generator):
    layer = sn_layers(small_generator)[2]
    x = torch.randn(1, layer.in_channels, 4, 4)
    for _ in range(2):  # a cached graph would fail on the second backward
        layer(x).sum().backward()
    expected = layer.weight.grad.clone()
    layer.weight.grad = None
    with uncached_spectral_norm():
        for _ in range(2):
            layer(x).sum().backward()
    assert torch.equal(layer.weight.grad, expected)


def test_frozen_generator_passes_gradients_to_the_latent(small_generator):
    G = UnconditionalBigGAN(small_generator.requires_grad_(False))
    z = torch.randn(1, G.dim_z, generator=torch.Generator().manual_seed(1)).requires_grad_(True)
    for _ in range(2):
        G(z).square().mean().backward()
    cached_grad, z.grad = z.grad.clone(), None
    with uncached_spectral_norm():
        for _ in range(2):
            G(z).square().mean().backward()
    assert torch.equal(z.grad, cached_grad)


@torch.no_grad()
def test_autocast_gets_its_own_normalized_weight(small_generator):
    layer = sn_layers(small_generator)[1]
    fp32 = layer.normalized_weight()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(layer.normalized_weight(), normalized_weight_reference(layer))
    assert torch.equal(layer.normalized_weight(), fp32)


@torch.no_grad()
def test_channels_last_generator_runs(small_generator):
    G = UnconditionalBigGAN(small_generator)
    z = torch.randn(2, G.dim_z, generator=torch.Generator().manual_seed(2))
    expected = G(z)
    contiguous = [layer.normalized_weight() for layer in sn_layers(G)]
    G.to(memory_format=torch.channels_last)
    assert sn_layers(G)[-1].weight.is_contiguous(memory_format=torch.channels_last)
    channels_last = [layer.normalized_weight() for layer in sn_layers(G)]
    assert all(torch.equal(a, b) for a, b in zip(contiguous, channels_last, strict=True))
    torch.testing.assert_close(G(z), expected, atol=1e-5, rtol=0)
