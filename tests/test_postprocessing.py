import warnings

import pytest
import torch

from postprocessing import SegmentationInference, Threshold, connected_components_filter
from tests.fixture_files import load_fixture
from tests.weight_fill import fill_module
from UNet.unet_model import UNet


def test_connected_components_filter_reproduces_reference_without_mutating_input():
    inputs, ref = load_fixture("mask_pipeline_inputs.pt"), load_fixture("mask_pipeline.pt")
    raw = ref["pair_to_mask"].long()
    untouched = raw.clone()
    filtered = connected_components_filter(inputs["img"].float(), raw)
    assert filtered.dtype == torch.int64
    assert torch.equal(filtered, ref["connected_components"].long())
    assert torch.equal(raw, untouched)


def test_filter_keeps_components_strictly_above_a_fifth_of_the_largest():
    mask = torch.zeros(1, 12, 30, dtype=torch.uint8)
    mask[0, 0:10, 0:10] = 1  # area 100: the largest
    mask[0, 0:4, 12:17] = 1  # area 20: exactly 0.2, dropped
    mask[0, 0:3, 19:26] = 1  # area 21: kept
    mask[0, 10, 10] = 1  # touches the largest diagonally: the same 8-connected component
    filtered = connected_components_filter(None, mask)
    expected = mask.clone()
    expected[0, 0:4, 12:17] = 0
    assert filtered.dtype == torch.uint8
    assert torch.equal(filtered, expected)


@pytest.mark.parametrize("dtype", [torch.bool, torch.float32, torch.int64])
def test_filter_keeps_dtype_and_leaves_empty_masks_empty(dtype):
    mask = torch.zeros(2, 8, 8, dtype=dtype)
    mask[1, 2, 2] = 1
    filtered = connected_components_filter(None, mask)
    assert filtered.dtype == dtype
    assert not filtered[0].any() and torch.equal(filtered[1], mask[1])


@pytest.fixture(scope="module")
def inference_ref() -> dict[str, torch.Tensor]:
    return load_fixture("inference.pt")


class Recorder(torch.nn.Module):
    """Returns fixed logits and remembers what it was given."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits
        self.inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.inputs.append(x)
        return self.logits


@pytest.fixture(scope="module")
def unet_outputs(inference_ref) -> dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """(network input, network-resolution map, final map) per image, with the filled UNet."""
    unet = fill_module(UNet(), 0)
    seen = []
    unet.register_forward_hook(lambda module, args, output: seen.append((args[0], output)))
    outputs = {}
    for i in range(2):
        prob = SegmentationInference(unet, resize_to=128)(inference_ref[f"img_{i}"])
        x, logits = seen[-1]
        outputs[i] = (x, 1 - torch.softmax(logits, 1)[:, 0], prob)
    return outputs


@pytest.mark.parametrize("i", [0, 1])
def test_segmentation_inference_reproduces_reference(inference_ref, unet_outputs, i):
    x, prob_model_res, prob = unet_outputs[i]
    assert torch.equal(x, inference_ref[f"resized_{i}"])
    torch.testing.assert_close(prob_model_res, inference_ref[f"prob_model_res_{i}"], atol=1e-5, rtol=0)
    assert prob.shape == inference_ref[f"img_{i}"][:, 0].shape
    assert (prob - inference_ref[f"prob_{i}"]).abs().max() <= 1e-6


@pytest.mark.parametrize("i", [0, 1])
def test_threshold_reproduces_reference(inference_ref, i):
    # The stored logits stand in for the UNet: the network itself is checked above.
    model = Recorder(inference_ref[f"logits_{i}"])
    img = inference_ref[f"img_{i}"]
    for thr, name in [(0.5, f"thr05_{i}"), (inference_ref[f"thr_alt_value_{i}"].item(), f"thr_alt_{i}")]:
        mask = Threshold(model, thr=thr, resize_to=128)(img)
        assert mask.dtype == torch.bool
        assert torch.equal(mask, inference_ref[name])
        assert torch.equal(model.inputs[-1], inference_ref[f"resized_{i}"])


def test_without_resize_the_model_sees_the_image_and_the_map_is_not_quantised():
    g = torch.Generator().manual_seed(0)
    img = torch.rand(2, 3, 16, 21, generator=g) * 2 - 1
    logits = torch.randn(2, 2, 16, 21, generator=g)
    model = Recorder(logits)
    prob = SegmentationInference(model)(img, mask=torch.ones(2, 16, 21))
    assert len(model.inputs) == 1 and torch.equal(model.inputs[0], img)
    assert torch.equal(prob, 1 - torch.softmax(logits, 1)[:, 0])


def constant_map(value: float):
    """A model that gives the probability map itself, `[B, h, w]`, as the original allowed."""
    return lambda x: torch.full((len(x), *x.shape[-2:]), value)


@pytest.mark.parametrize("resize_to", [None, 32])
def test_a_map_of_the_images_size_is_taken_as_the_model_gives_it(resize_to):
    """No softmax over a 3-d output, and no 8-bit round trip when the map already has the image's size."""
    img = torch.zeros(1, 3, 32, 48)
    prob = SegmentationInference(constant_map(0.3), resize_to)(img)
    assert prob.shape == (1, 32, 48) and (prob == torch.tensor(0.3)).all()


def test_threshold_keeps_a_probability_exactly_at_it():
    img = torch.zeros(2, 3, 16, 16)
    assert Threshold(constant_map(0.5), thr=0.5)(img).all()
    assert not Threshold(constant_map(0.5), thr=0.5001)(img).any()


def test_batches_are_processed_image_by_image():
    unet = fill_module(UNet(base_width=4), 0)
    img = torch.rand(2, 3, 40, 30, generator=torch.Generator().manual_seed(1)) * 2 - 1
    inference = SegmentationInference(unet, resize_to=32)
    batch = inference(img)
    assert batch.shape == (2, 40, 30)
    assert torch.equal(batch, torch.cat([inference(img[:1]), inference(img[1:])]))
    assert ((batch * 255) - (batch * 255).round()).abs().max() < 1e-4  # 8-bit round trip to 40 x 30


@pytest.mark.parametrize(("height", "width", "network_size"), [(1, 1, (16, 16)), (7, 20, (16, 45))])
def test_images_below_16_px_are_resized_up_at_native_size(height, width, network_size):
    unet = fill_module(UNet(base_width=4), 0)
    seen = []
    unet.register_forward_hook(lambda module, args, output: seen.append(args[0].shape[-2:]))
    img = torch.rand(2, 3, height, width, generator=torch.Generator().manual_seed(2)) * 2 - 1
    inference = SegmentationInference(unet)
    with pytest.warns(UserWarning, match="below 16 px") as caught:
        prob = inference(img)
    assert str(caught[0].message) == (
        "images with a side below 16 px are too small for the U-Net at native size: they are resized so "
        "that their shorter side is 16 (bilinear, as with resize_to) and the prediction is resized back"
    )
    assert prob.shape == (2, height, width) and seen == [network_size] * 2
    assert torch.equal(prob, SegmentationInference(unet, resize_to=16)(img))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        inference(img)  # the note is given once
    with pytest.warns(UserWarning, match="below 16 px"):
        mask = Threshold(unet)(img)
    assert mask.dtype == torch.bool and torch.equal(mask, prob >= 0.5)
