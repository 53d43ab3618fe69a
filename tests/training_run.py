"""A small, complete input set for train_segmentation.py runs in tests: a narrow filled generator,
a random unit direction and a three-image PNG validation folder."""

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from BigGAN.gan_load import make_biggan_config
from BigGAN.model.BigGAN import Generator
from tests.weight_fill import fill_module

GAN_CONFIG = {"G_ch": 4, "resolution": 64, "G_attn": "0"}


def make_inputs(root: Path) -> Path:
    generator = fill_module(Generator(**{**make_biggan_config(128), **GAN_CONFIG}), seed=0)
    torch.save(generator.state_dict(), root / "G.pth")
    direction = torch.randn(120, generator=torch.Generator().manual_seed(0))
    torch.save(direction / direction.norm(), root / "direction.pth")
    rng = np.random.default_rng(0)
    for folder in ("ds/images", "ds/masks"):
        (root / folder).mkdir(parents=True)
    for index in range(3):
        image = rng.integers(0, 256, (40 + index, 50, 3), dtype=np.uint8)
        mask = np.zeros((40 + index, 50), dtype=np.uint8)
        mask[10:30, 15:35] = 255
        Image.fromarray(image).save(root / f"ds/images/{index:03d}.png")
        Image.fromarray(mask).save(root / f"ds/masks/{index:03d}.png")
    return root


def folder_state(folder: Path) -> dict[str, bytes]:
    """Relative path -> content of every file under `folder`: to check that a run wrote nothing."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def command(inputs: Path, out: Path, n_steps: int) -> list[str]:
    return [
        "--out", str(out),
        "--gan_weights", str(inputs / "G.pth"),
        "--gan_config", json.dumps(GAN_CONFIG),
        "--bg_direction", str(inputs / "direction.pth"),
        "--val_images_dir", str(inputs / "ds/images"),
        "--val_masks_dir", str(inputs / "ds/masks"),
        "--val_resize_to", "32",
        "--device", "cpu",
        "--unet_width", "4",
        "--n_steps", str(n_steps),
        "--batch_size", "4",
        "--test_samples_count", "6",
        "--steps_per_log", "2",
        "--steps_per_validation", "2",
        "--steps_per_checkpoint_save", "2",
        "--steps_per_rate_decay", "2",
        "--mask_size_up", "0.9",
    ]  # fmt: skip
