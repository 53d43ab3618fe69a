"""No entry point replaces an earlier output unasked: each refuses, naming the file and --overwrite,
and leaves it as it was; with --overwrite it writes. (Training, self-training, reproduce.py and
prepare_datasets.py resume or skip what is done instead: tests/test_train_robustness.py,
tests/test_self_train.py, tests/test_reproduce.py, tests/test_prepare_datasets.py.)"""

import numpy as np
import pytest
import torch
from PIL import Image

import embed_images
import evaluate
import find_direction
import segment
from demo.assets import DEMO_GENERATOR_CONFIG_PATH, DEMO_GENERATOR_PATH, DEMO_UNET_PATH
from utils.errors import InputError


@pytest.fixture
def folder(tmp_path):
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    Image.fromarray(np.full((32, 32, 3), 90, np.uint8)).save(tmp_path / "images" / "a.png")
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(tmp_path / "images" / "b.png")
    for name in ("a", "b"):
        Image.fromarray(np.eye(32, dtype=np.uint8) * 255).save(tmp_path / "masks" / f"{name}.png")
    return tmp_path


def test_segment_refuses_an_out_holding_earlier_masks(folder):
    out = folder / "out"
    arguments = ["--weights", str(DEMO_UNET_PATH), "--images", str(folder / "images"), "--out", str(out)]
    arguments += ["--resize_to", "32", "--device", "cpu"]
    segment.main(arguments)
    (out / "a.png").write_bytes(b"kept")
    with pytest.raises(InputError, match=r"already holds 2 of the files this run would write .*--overwrite"):
        segment.main(arguments)
    assert (out / "a.png").read_bytes() == b"kept"
    with pytest.raises(InputError, match="already holds 2 of the files"):  # new overlays, old masks
        segment.main([*arguments, "--overlay"])
    assert not (out / "overlays").exists()
    segment.main([*arguments, "--overwrite"])
    assert Image.open(out / "a.png").size == (32, 32)


def test_evaluate_keeps_an_earlier_scores_file(folder):
    out = folder / "scores.json"
    out.write_text("earlier")
    arguments = ["--weights", str(DEMO_UNET_PATH), "--images", str(folder / "images")]
    arguments += [
        "--masks",
        str(folder / "masks"),
        "--resize_to",
        "none",
        "--sod",
        "false",
        "--out",
        str(out),
    ]
    with pytest.raises(InputError, match=f"{out} exists: choose another path, or pass --overwrite"):
        evaluate.main(arguments)
    assert out.read_text() == "earlier"
    evaluate.main([*arguments, "--overwrite"])
    assert out.read_text().startswith("{")


def test_embed_images_keeps_an_earlier_matrix_and_file_list(folder):
    out = folder / "z.npy"
    np.save(out, np.zeros((1, 120), np.float32))
    arguments = [
        "--images",
        str(folder / "images"),
        "--out",
        str(out),
        "--gan_weights",
        str(DEMO_GENERATOR_PATH),
    ]
    arguments += ["--gan_config", str(DEMO_GENERATOR_CONFIG_PATH), "--steps", "1", "--device", "cpu"]
    with pytest.raises(InputError, match="z.npy exists: choose another path, or pass --overwrite"):
        embed_images.main(arguments)
    assert np.load(out).shape == (1, 120)
    embed_images.main([*arguments, "--overwrite"])
    assert np.load(out).shape == (2, 120)


def test_find_direction_keeps_an_earlier_direction_and_preview(tmp_path):
    out, preview = tmp_path / "d.pth", tmp_path / "preview.png"
    torch.save(torch.ones(120), out)
    arguments = ["--gan_weights", str(DEMO_GENERATOR_PATH), "--gan_config", str(DEMO_GENERATOR_CONFIG_PATH)]
    arguments += ["--out", str(out), "--steps", "1", "--rating_steps", "1", "--device", "cpu"]
    with pytest.raises(InputError, match="d.pth exists: choose another path, or pass --overwrite"):
        find_direction.main(arguments)
    assert torch.equal(torch.load(out), torch.ones(120))
    preview.write_bytes(b"earlier")
    with pytest.raises(InputError, match="preview.png exists"):
        find_direction.main([*arguments, "--out", str(tmp_path / "new.pth"), "--preview", str(preview)])
    assert not (tmp_path / "new.pth").exists() and preview.read_bytes() == b"earlier"
    find_direction.main([*arguments, "--overwrite", "--preview", str(preview)])
    assert not torch.equal(torch.load(out), torch.ones(120)) and preview.read_bytes() != b"earlier"
