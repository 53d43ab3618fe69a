"""bf16 autocast: masks agree with float32 synthesis, and a run records the precision it trained with."""

import json

import torch

import train_segmentation
from BigGAN.gan_load import make_big_gan
from demo.assets import DEMO_DIRECTION_PATH, DEMO_GENERATOR_CONFIG, DEMO_GENERATOR_PATH
from gan_mask_gen import pair_to_mask
from tests.training_run import command, make_inputs
from utils.inputs import load_direction
from utils.precision import AutocastGenerator, resolve_precision


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


def test_precision_defaults_to_bf16_on_cuda_and_fp32_on_the_cpu():
    assert resolve_precision(None, torch.device("cuda")) == "bf16"
    assert resolve_precision(None, torch.device("cpu")) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"


def test_a_bf16_run_trains_and_records_its_precision(tmp_path):
    (tmp_path / "inputs").mkdir()
    inputs = make_inputs(tmp_path / "inputs")
    train_segmentation.main([*command(inputs, tmp_path / "bf16", 2), "--precision", "bf16"])
    assert json.loads((tmp_path / "bf16/args.json").read_text())["precision"] == "bf16"
    train_segmentation.main(command(inputs, tmp_path / "default", 2))
    assert json.loads((tmp_path / "default/args.json").read_text())["precision"] == "fp32"
