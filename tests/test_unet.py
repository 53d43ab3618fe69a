import pytest
import torch

from tests.fixture_files import load_fixture, read_keys_file, state_dict_rows
from tests.weight_fill import fill_module
from UNet.unet_model import UNet


def test_state_dict_layout_matches_reference():
    assert state_dict_rows(UNet()) == read_keys_file("unet_keys.txt")


@torch.no_grad()
def test_forward_reproduces_reference():
    ref = load_fixture("unet_forward.pt")
    logits = fill_module(UNet())(ref["x"])
    torch.testing.assert_close(logits, ref["logits"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("size", [(33, 47), (65, 64), (100, 150), (17, 16)])
@pytest.mark.parametrize("bilinear", [True, False])
def test_any_input_size_gives_logits_of_that_size(size, bilinear):
    model = UNet(base_width=4, bilinear=bilinear).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, *size))
    assert logits.shape == (2, 2, *size)


def test_narrow_unet_keeps_key_names():
    assert list(UNet(base_width=8).state_dict()) == list(UNet().state_dict())


def test_train_mode_backpropagates():
    model = UNet(base_width=4).train()
    loss = torch.nn.functional.cross_entropy(
        model(torch.randn(2, 3, 32, 32)), torch.randint(0, 2, (2, 32, 32))
    )
    loss.backward()
    assert model.inc.double_conv[0].weight.grad.abs().sum() > 0
    assert model.inc.double_conv[1].num_batches_tracked.item() == 1
