"""End to end: train_segmentation.py on a narrow filled generator and a small PNG validation folder."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import train_segmentation
from BigGAN.gan_load import make_biggan_config
from BigGAN.model.BigGAN import Generator
from tests.weight_fill import fill_module
from UNet.unet_load import load_unet

GAN_CONFIG = {"G_ch": 4, "resolution": 64, "G_attn": "64"}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
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


def command(inputs, out, n_steps: int) -> list[str]:
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


def test_training_writes_every_output_and_resumes(inputs, tmp_path, capsys):
    out = tmp_path / "run"
    score = train_segmentation.main(command(inputs, out, n_steps=3))
    for name in (
        "segmentation.pth",
        "checkpoint.pth",
        "score.json",
        "args.json",
        "command.sh",
        "gen_sample.png",
    ):
        assert (out / name).is_file(), name
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    written = json.loads((out / "score.json").read_text())
    assert written == score
    assert set(written) == {"synthetic", "ds"}
    for entry in written.values():
        assert 0 <= entry["id"]["F_max"] <= 1
        assert set(entry["thr"]) == {"IoU", "accuracy"}
    args = json.loads((out / "args.json").read_text())
    assert args["n_steps"] == 3 and args["unet_width"] == 4 and args["gan_config"] == GAN_CONFIG
    assert "train_segmentation.py" in (out / "command.sh").read_text()
    model = load_unet(out / "segmentation.pth", device="cpu", base_width=4)
    assert not model.training
    assert torch.load(out / "checkpoint.pth", weights_only=True)["step"] == 3

    capsys.readouterr()
    train_segmentation.main(command(inputs, out, n_steps=5))
    assert "Resuming from" in capsys.readouterr().out
    assert torch.load(out / "checkpoint.pth", weights_only=True)["step"] == 5

    straight = tmp_path / "straight"
    train_segmentation.main(command(inputs, straight, n_steps=5))
    resumed_weights = torch.load(out / "segmentation.pth", weights_only=True)
    straight_weights = torch.load(straight / "segmentation.pth", weights_only=True)
    for key, value in straight_weights.items():
        torch.testing.assert_close(resumed_weights[key], value, atol=1e-6, rtol=0, msg=key)


def test_args_file_reproduces_a_run_configuration(inputs, tmp_path):
    from utils.train_config import resolve_config

    first = resolve_config(command(inputs, tmp_path / "a", n_steps=2))
    (tmp_path / "args.json").write_text(json.dumps(first.to_json()))
    again = resolve_config(["--args", str(tmp_path / "args.json")])
    assert again == first
    overridden = resolve_config(["--args", str(tmp_path / "args.json"), "--n_steps", "7"])
    assert overridden.params.n_steps == 7


def test_bad_inputs_fail_before_anything_is_written(inputs, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(FileNotFoundError, match="--bg_direction"):
        train_segmentation.main([*command(inputs, out, 1), "--bg_direction", str(tmp_path / "none.pth")])
    with pytest.raises(ValueError, match="missing_images"):
        train_segmentation.main(
            [*command(inputs, out, 1), "--val_images_dir", str(tmp_path / "missing_images")]
        )
    assert not out.exists()
