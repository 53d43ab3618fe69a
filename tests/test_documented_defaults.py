"""Every default a user reads in the README's flag table is pinned here literally, and the table is
checked against the same literals, so that neither the code nor the README can drift alone."""

import re
from pathlib import Path

import pytest

from gan_mask_gen import MaskSynthesizing
from utils.train_config import RunConfig, SegmentationTrainParams, resolve_config

README = Path(__file__).resolve().parents[1] / "README.md"

TRAINING_DEFAULTS = {
    "rate": 0.001,
    "steps_per_rate_decay": 8000,
    "rate_decay": 0.2,
    "n_steps": 12000,
    "latent_shift_r": 5.0,
    "batch_size": 95,
    "steps_per_log": 100,
    "steps_per_checkpoint_save": 1000,
    "steps_per_validation": 1000,
    "test_samples_count": 1000,
    "synthezing": MaskSynthesizing.LIGHTING,
    "mask_size_up": 0.5,
    "connected_components": True,
    "maxes_filter": True,
    "synthetic_loss_train_mode": False,
}
RUN_DEFAULTS = {
    "gan_weights": "BigGAN/weights/BigBiGAN_x1.pth",
    "gan_config": {},
    "bg_direction": "BigGAN/weights/bg_direction.pth",
    "z": None,
    "z_noise": 0.0,
    "val_images_dirs": [],
    "val_masks_dirs": [],
    "val_resize_to": 128,
    "skip_bad_files": False,
    "unet_width": 64,
    "threads": None,
    "precision": None,
    "seed": 2,
}
# The README's default cell of each flag, as printed (several flags may share a row).
README_CELLS = {
    "--rate": "0.001",
    "--steps_per_rate_decay": "8000",
    "--rate_decay": "0.2",
    "--n_steps": "12000",
    "--batch_size": "95",
    "--latent_shift_r": "5.0",
    "--synthezing": "`lighting`",
    "--mask_size_up": "0.5",
    "--connected_components": "true",
    "--maxes_filter": "true",
    "--steps_per_log": "100",
    "--steps_per_validation": "1000",
    "--steps_per_checkpoint_save": "1000",
    "--test_samples_count": "1000",
    "--synthetic_loss_train_mode": "false",
    "--gan_weights": "`BigGAN/weights/BigBiGAN_x1.pth`",
    "--bg_direction": "`BigGAN/weights/bg_direction.pth`",
    "--z": "none",
    "--z_noise": "0.0",
    "--val_resize_to": "128",
    "--skip_bad_files": "false",
    "--unet_width": "64",
    "--seed": "2",
    "--precision": "bf16 on CUDA",
}


def readme_flag_defaults() -> dict[str, str]:
    """`--flag` -> its default cell in the README's training flag table; a row naming k flags has k
    comma-separated defaults (or one shared default)."""
    table = README.read_text().split("Every flag, with its default", 1)[1].split("Outputs in `--out`", 1)[0]
    defaults = {}
    for row in table.splitlines():
        cells = [cell.strip() for cell in row.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`--"):
            continue
        flags = re.findall(r"`(--\w+)`", cells[0])
        values = cells[1].split(", ") if len(flags) > 1 else [cells[1]]
        defaults.update(zip(flags, values if len(values) == len(flags) else values * len(flags), strict=True))
    return defaults


def test_training_defaults_are_the_documented_ones():
    params = SegmentationTrainParams()
    assert {name: getattr(params, name) for name in TRAINING_DEFAULTS} == TRAINING_DEFAULTS


def test_run_defaults_are_the_documented_ones():
    run = RunConfig()
    assert {name: getattr(run, name) for name in RUN_DEFAULTS} == RUN_DEFAULTS


def test_command_line_without_flags_gives_the_documented_defaults():
    config = resolve_config(["--out", "x"])
    assert {name: getattr(config.params, name) for name in TRAINING_DEFAULTS} == TRAINING_DEFAULTS
    assert config.run.val_resize_to == 128 and config.run.seed == 2 and config.run.unet_width == 64


@pytest.mark.parametrize("flag, cell", sorted(README_CELLS.items()))
def test_readme_table_prints_the_default(flag, cell):
    assert readme_flag_defaults()[flag].startswith(cell)


def test_readme_table_lists_every_training_flag():
    documented = set(readme_flag_defaults())
    assert {f"--{name}" for name in [*TRAINING_DEFAULTS, *RUN_DEFAULTS]} <= documented
