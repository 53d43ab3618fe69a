"""bf16 autocast: masks agree with float32 synthesis, and a run records the precision it trained with."""

import json
import warnings

import pytest
import torch

import train_segmentation
from BigGAN.gan_load import make_big_gan
from demo.assets import DEMO_DIRECTION_PATH, DEMO_GENERATOR_CONFIG, DEMO_GENERATOR_PATH
from gan_mask_gen import pair_to_mask
from tests.training_run import command, make_inputs
from utils.errors import InputError
from utils.inputs import load_direction
from utils.precision import (
    CPU_BF16_VARIABLE,
    AutocastGenerator,
    autocast,
    cpu_has_native_bf16,
    resolve_precision,
)


def test_bf16_masks_agree_with_float32_on_the_demo_generator():
    G = make_big_gan(DEMO_GENERATOR_PATH, device="cpu", config=DEMO_GENERATOR_CONFIG)
    shift = 5.0 * load_direction(DEMO_DIRECTION_PATH, G.dim_z)
    z = torch.randn(128, G.dim_z, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        fp32 = pair_to_mask(G(z), G.gen_shifted(z, shift))
        bf16_G = AutocastGenerator(G, torch.device("cpu"))
        images = bf16_G(z)
        bf16 = pair_to_mask(images, bf16_G.gen_shifted(z, shift))
    assert images.dtype == torch.float32
    agreement = (fp32 == bf16).float().mean().item()
    assert 0.99 <= agreement < 1.0  # bf16 really ran, and changed few mask pixels


def test_precision_defaults_to_bf16_on_cuda_and_on_cpus_with_native_bf16(monkeypatch):
    monkeypatch.delenv(CPU_BF16_VARIABLE)
    for native in (True, False):
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda native=native: native)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
        assert resolve_precision(None, torch.device("cpu")) == ("bf16" if native else "fp32")
        assert resolve_precision(None, torch.device("cuda")) == "bf16"
        assert resolve_precision("fp32", torch.device("cuda")) == "fp32"
        assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert cpu_has_native_bf16()
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert not cpu_has_native_bf16()  # a torch without the private checks falls back to fp32


def test_the_variable_overrides_the_detection_and_rejects_other_values(monkeypatch):
    """The suite sets BGW_CPU_BF16=0 (tests/conftest.py): its runs do not depend on the CPU."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    monkeypatch.setenv(CPU_BF16_VARIABLE, "0")
    assert resolve_precision(None, torch.device("cpu")) == "fp32"
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setenv(CPU_BF16_VARIABLE, "1")
    assert resolve_precision(None, torch.device("cpu")) == "bf16"
    monkeypatch.setenv(CPU_BF16_VARIABLE, "yes")
    with pytest.raises(InputError, match="BGW_CPU_BF16='yes': set it to 1, 0, or leave it unset"):
        resolve_precision(None, torch.device("cpu"))


def test_a_run_records_the_precision_it_resolved(tmp_path, monkeypatch):
    (tmp_path / "inputs").mkdir()
    inputs = make_inputs(tmp_path / "inputs")
    train_segmentation.main([*command(inputs, tmp_path / "bf16", 2), "--precision", "bf16"])
    assert json.loads((tmp_path / "bf16/args.json").read_text())["precision"] == "bf16"
    train_segmentation.main(command(inputs, tmp_path / "default", 2))
    assert json.loads((tmp_path / "default/args.json").read_text())["precision"] == "fp32"
    monkeypatch.setenv(CPU_BF16_VARIABLE, "1")  # as on a CPU with native bf16
    train_segmentation.main(command(inputs, tmp_path / "native", 2))
    assert json.loads((tmp_path / "native/args.json").read_text())["precision"] == "bf16"


def test_autocast_is_bf16_when_asked_for_and_off_otherwise():
    for device_type in ("cpu", "cuda"):  # CUDA's own default dtype would be float16
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # no CUDA on this machine
            assert autocast(torch.device(device_type), "bf16").fast_dtype == torch.bfloat16
            wrapped = AutocastGenerator(
                make_big_gan(DEMO_GENERATOR_PATH, device="cpu", config=DEMO_GENERATOR_CONFIG),
                torch.device(device_type),
            )
            assert wrapped._autocast().fast_dtype == torch.bfloat16
    for precision, enabled in (("bf16", True), ("fp32", False)):
        with autocast(torch.device("cpu"), precision):
            assert torch.is_autocast_enabled("cpu") == enabled


class ShiftedGenerator(torch.nn.Module):
    """A generator whose shift has its own dimension, as a wrapper must pass on."""

    dim_z, dim_shift = 6, 4


class LatentOnlyGenerator(torch.nn.Module):
    dim_z = 5


def test_the_wrapped_generator_keeps_the_latent_and_shift_dimensions():
    wrapped = AutocastGenerator(ShiftedGenerator(), torch.device("cpu"))
    assert (wrapped.dim_z, wrapped.dim_shift) == (6, 4)
    unshifted = AutocastGenerator(LatentOnlyGenerator(), torch.device("cpu"))
    assert unshifted.dim_shift == unshifted.dim_z == 5  # a generator without dim_shift shifts its latent
