"""The generator port against the fixtures recorded with the original code."""

import pytest
import torch

from BigGAN.gan_load import UnconditionalBigGAN, make_biggan_config
from BigGAN.model.BigGAN import Generator
from tests.fixture_files import load_fixture, read_keys_file, state_dict_rows
from tests.weight_fill import fill_module


def small_config(reference_results) -> dict:
    return reference_results["generator_small"]["config"]


@pytest.fixture(scope="module")
def full_generator():
    return UnconditionalBigGAN(fill_module(Generator(**make_biggan_config(128))))


def test_full_state_dict_layout_matches_reference():
    rows = state_dict_rows(Generator(**make_biggan_config(128)))
    assert rows == read_keys_file("biggan128_keys.txt")
    assert len(rows) == 166
    numel = sum(torch.Size(shape).numel() for _, shape, _ in rows)
    assert numel == 70_497_632


def test_small_state_dict_layout_matches_reference(reference_results):
    assert state_dict_rows(Generator(**small_config(reference_results))) == read_keys_file(
        "generator_small_keys.txt"
    )


@torch.no_grad()
def test_full_generator_reproduces_reference(full_generator):
    ref = load_fixture("generator_full.pt")
    shift = ref["shift_r"] * ref["d"]
    torch.testing.assert_close(full_generator(ref["z"]), ref["img"], atol=1e-5, rtol=0)
    torch.testing.assert_close(
        full_generator.gen_shifted(ref["z"], shift), ref["img_shifted"], atol=1e-5, rtol=0
    )
    h = full_generator.big_gan.linear(ref["z"][:, :20])
    torch.testing.assert_close(h, ref["h_linear"], atol=1e-5, rtol=0)


@torch.no_grad()
def test_small_generator_reproduces_reference_and_intermediates(reference_results):
    generator = fill_module(Generator(**small_config(reference_results)))
    model = UnconditionalBigGAN(generator)
    ref = load_fixture("generator_small.pt")
    outputs = {}
    for index in range(3):
        generator.blocks[index][0].register_forward_hook(
            lambda module, args, out, index=index: outputs.__setitem__(index, out)
        )
    torch.testing.assert_close(model(ref["z"]), ref["img"], atol=1e-5, rtol=0)
    for index in range(3):
        torch.testing.assert_close(outputs[index][0], ref[f"block{index}_out_sample0"], atol=1e-5, rtol=0)
    shifted = model.gen_shifted(ref["z"], ref["shift_r"] * ref["d"])
    torch.testing.assert_close(shifted, ref["img_shifted"], atol=1e-5, rtol=0)


@torch.no_grad()
def test_spectral_norm_sigmas_match_reference(full_generator, reference_results):
    modules = dict(full_generator.big_gan.named_modules())
    for name, sigma in reference_results["generator_full"]["sn_sigma"].items():
        layer = modules[name]
        ratio = layer.weight.abs().max() / layer.normalized_weight().abs().max()
        assert ratio.item() == pytest.approx(sigma, rel=1e-5), name


@torch.no_grad()
def test_gen_shifted_is_generator_of_shifted_latent(reference_results):
    model = UnconditionalBigGAN(fill_module(Generator(**small_config(reference_results)), seed=3))
    z = torch.randn(2, model.dim_z)
    shift = torch.randn(model.dim_shift)
    torch.testing.assert_close(model.gen_shifted(z, shift), model(z + shift))
    assert not torch.allclose(model.gen_shifted(z, shift), model(z))


@pytest.mark.parametrize("resolution", [32, 64, 128, 256, 512])
def test_every_architecture_resolution_generates_its_size(resolution):
    config = {**make_biggan_config(128), "G_ch": 2, "resolution": resolution, "G_attn": "0"}
    model = UnconditionalBigGAN(Generator(**config)).eval()
    with torch.no_grad():
        images = model(torch.randn(1, model.dim_z))
    assert images.shape == (1, 3, resolution, resolution)
    assert images.abs().max() <= 1


def test_train_mode_uses_batch_statistics_and_updates_buffers(reference_results):
    generator = fill_module(Generator(**small_config(reference_results)))
    model = UnconditionalBigGAN(generator).train()
    u_before = generator.linear.u0.clone()
    mean_before = generator.blocks[0][0].bn1.stored_mean.clone()
    z = torch.randn(4, model.dim_z)
    images = model(z)
    images.mean().backward()
    assert images.shape == (4, 3, 128, 128)
    assert generator.linear.weight.grad is not None
    assert not torch.equal(generator.linear.u0, u_before)
    assert not torch.equal(generator.blocks[0][0].bn1.stored_mean, mean_before)
    assert generator.linear.sv0.item() != 1.0


def test_unknown_config_entry_is_rejected():
    with pytest.raises(TypeError, match="G_chh"):
        Generator(**{**make_biggan_config(128), "G_chh": 4})
