"""Strict weight loading: a checkpoint loads completely or fails with a useful message."""

import pickle

import pytest
import torch

from BigGAN.gan_load import UnconditionalBigGAN, generator_config, make_big_gan, make_biggan_config
from BigGAN.model.BigGAN import Generator
from tests.weight_fill import fill_module
from UNet.unet_load import load_unet
from UNet.unet_model import UNet
from utils.errors import InputError
from utils.weights import WeightsError

TINY = {"G_ch": 8, "G_attn": "64"}


def tiny_generator_state(seed: int = 0) -> dict[str, torch.Tensor]:
    return fill_module(Generator(**{**make_biggan_config(128), **TINY}), seed).state_dict()


BIGBIGAN_CONFIG = {
    "G_ch": 96,
    "dim_z": 120,
    "bottom_width": 4,
    "resolution": 128,
    "G_attn": "64",
    "n_classes": 1000,
    "G_shared": True,
    "shared_dim": 128,
    "hier": True,
    "BN_eps": 1e-4,
    "SN_eps": 1e-4,
    "num_G_SVs": 1,
    "num_G_SV_itrs": 1,
    "G_activation": "relu",
    "norm_style": "bn",
}


def test_the_default_config_is_bigbigans_at_128_px():
    assert make_biggan_config() == BIGBIGAN_CONFIG
    assert generator_config() == BIGBIGAN_CONFIG
    assert make_biggan_config(64) == {**BIGBIGAN_CONFIG, "resolution": 64}


def test_overrides_win_and_their_resolution_picks_the_layout():
    assert generator_config({"G_ch": 8}) == {**BIGBIGAN_CONFIG, "G_ch": 8}
    assert generator_config({"resolution": 64}, resolution=256) == make_biggan_config(64)
    assert generator_config(None, resolution=256) == make_biggan_config(256)
    with pytest.raises(InputError) as error:
        generator_config({"resolution": 100})
    assert str(error.value) == "no generator layout for resolution 100: use one of [32, 64, 128, 256, 512]"


def test_the_resolution_argument_sizes_the_generator(tmp_path):
    config = {"G_ch": 4, "G_attn": "0"}
    state = fill_module(Generator(**generator_config(config, resolution=32))).state_dict()
    torch.save(state, tmp_path / "g32.pth")
    with torch.no_grad():
        images = make_big_gan(tmp_path / "g32.pth", resolution=32, config=config, device="cpu")(
            torch.zeros(1, 120)
        )
    assert images.shape == (1, 3, 32, 32)


def test_an_invalid_config_is_named_with_the_reason(tmp_path):
    with pytest.raises(InputError) as error:
        make_big_gan(tmp_path / "g.pth", config={"bogus": 1}, device="cpu")
    assert str(error.value).startswith('generator config {"bogus": 1} is not valid: ')
    assert "bogus" in str(error.value).split("is not valid: ")[1]


def test_round_trip_gives_identical_images(tmp_path):
    state = tiny_generator_state()
    torch.save(state, tmp_path / "g.pth")
    loaded = make_big_gan(tmp_path / "g.pth", config=TINY, device="cpu")
    reference = UnconditionalBigGAN(fill_module(Generator(**{**make_biggan_config(128), **TINY}))).eval()
    z = torch.randn(2, 120)
    with torch.no_grad():
        torch.testing.assert_close(loaded(z), reference(z), atol=0, rtol=0)
    assert not loaded.training
    assert loaded.dim_z == loaded.dim_shift == 120
    assert next(loaded.parameters()).device.type == "cpu"


def test_default_device_is_chosen_at_run_time(tmp_path):
    torch.save(tiny_generator_state(), tmp_path / "g.pth")
    loaded = make_big_gan(tmp_path / "g.pth", config=TINY)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert next(loaded.parameters()).device.type == expected


def test_missing_sv_logs_are_tolerated_and_converted_gamma_shape_accepted(tmp_path):
    state = {k: v for k, v in tiny_generator_state().items() if not k.endswith(".sv0")}
    state["blocks.3.1.gamma"] = torch.tensor([0.25])
    torch.save(state, tmp_path / "converted.pth")
    loaded = make_big_gan(tmp_path / "converted.pth", config=TINY, device="cpu")
    assert loaded.big_gan.blocks[3][1].gamma.item() == 0.25
    assert loaded.big_gan.linear.sv0.item() == 1.0


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda s: s.pop("linear.weight"), r"missing \(1\): linear.weight"),
        (lambda s: s.pop("blocks.0.0.bn1.stored_mean"), r"missing \(1\): blocks.0.0.bn1.stored_mean"),
        (lambda s: s.__setitem__("extra.weight", torch.zeros(1)), r"unexpected \(1\): extra.weight"),
        (
            lambda s: s.__setitem__("linear.bias", torch.zeros(7)),
            r"wrong shape \(1\): linear.bias: file \[7\]",
        ),
    ],
)
def test_generator_layout_mismatch_is_listed(tmp_path, corrupt, message):
    state = tiny_generator_state()
    corrupt(state)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match=message) as error:
        make_big_gan(tmp_path / "bad.pth", config=TINY, device="cpu")
    assert str(error.value).startswith(f"{tmp_path / 'bad.pth'} does not match Generator: ")


def test_missing_generator_file_says_how_to_get_it(tmp_path):
    with pytest.raises(WeightsError, match="download_all.sh.*--gan_weights"):
        make_big_gan(tmp_path / "BigBiGAN_x1.pth", device="cpu")


class NotATensor:
    pass


def test_pickle_refused_by_weights_only_is_an_error(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"linear.weight": NotATensor()}, f)
    with pytest.raises(WeightsError, match="pickled objects other than tensors"):
        make_big_gan(path, config=TINY, device="cpu")


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "it is empty"),
        (b"hello, these are not weights\n", "it starts with b'hello"),
        (b"\n<!DOCTYPE html><html><body>Dropbox</body></html>", "HTML page"),
    ],
)
def test_files_that_are_not_checkpoints_are_named(tmp_path, content, reason):
    path = tmp_path / "BigBiGAN_x1.pth"
    path.write_bytes(content)
    with pytest.raises(WeightsError, match=f"{path}.*{reason}.*download_all.sh"):
        make_big_gan(path, config=TINY, device="cpu")
    with pytest.raises(WeightsError, match=reason):
        load_unet(path, device="cpu")


def test_truncated_checkpoint_is_named(tmp_path):
    torch.save(tiny_generator_state(), tmp_path / "whole.pth")
    data = (tmp_path / "whole.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match="cut.pth cannot be read: torch.load failed"):
        make_big_gan(tmp_path / "cut.pth", config=TINY, device="cpu")


def test_unet_loading_is_strict(tmp_path):
    state = fill_module(UNet(base_width=4)).state_dict()
    torch.save(state, tmp_path / "unet.pth")
    model = load_unet(tmp_path / "unet.pth", device="cpu", base_width=4)
    torch.testing.assert_close(model.state_dict()["outc.conv.weight"], state["outc.conv.weight"])
    with pytest.raises(WeightsError, match="base width 4, not 8"):
        load_unet(tmp_path / "unet.pth", device="cpu", base_width=8)
    del state["outc.conv.bias"]
    torch.save(state, tmp_path / "unet_missing.pth")
    with pytest.raises(WeightsError, match=r"missing \(1\): outc.conv.bias"):
        load_unet(tmp_path / "unet_missing.pth", device="cpu")
    with pytest.raises(WeightsError, match="download_all.sh --unets"):
        load_unet(tmp_path / "absent.pth", device="cpu")


@pytest.mark.parametrize("width, bilinear", [(4, True), (6, False), (16, True)])
def test_unet_layout_is_read_from_the_file(tmp_path, width, bilinear):
    state = fill_module(UNet(base_width=width, bilinear=bilinear)).state_dict()
    torch.save(state, tmp_path / "unet.pth")
    model = load_unet(tmp_path / "unet.pth", device="cpu")
    assert (model.base_width, model.bilinear) == (width, bilinear)
    for key, value in state.items():
        assert torch.equal(model.state_dict()[key], value), key


def test_state_dict_of_another_model_is_not_taken_for_a_unet(tmp_path):
    torch.save(tiny_generator_state(), tmp_path / "G.pth")
    with pytest.raises(WeightsError, match="is not a U-Net state dict"):
        load_unet(tmp_path / "G.pth", device="cpu")


def test_unet_of_a_training_checkpoint_loads(tmp_path):
    state = fill_module(UNet(base_width=4)).state_dict()
    torch.save({"model": state, "opt": {}, "step": 7}, tmp_path / "checkpoint.pth")
    model = load_unet(tmp_path / "checkpoint.pth", device="cpu")
    assert model.base_width == 4
    assert torch.equal(model.state_dict()["outc.conv.weight"], state["outc.conv.weight"])
