"""What a new user meets first: help texts, one report of every input problem, pictures, TensorBoard
after a resume, progress lines in log files, and the README's Python snippet."""

import argparse
import io
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

import embed_images
import evaluate
import find_direction
import segment
import train_segmentation
from demo import figures, random_directions
from demo import train_gan as demo_train_gan
from tests.environments import venv_seeing_these_packages
from tests.tensorboard_events import logged_steps
from tests.training_run import command, make_inputs
from train_config import build_parser
from utils import progress
from utils.errors import InputError
from visualization import samples_grid

REPO = Path(__file__).resolve().parents[1]
PARSERS = {
    "train_segmentation.py": build_parser,
    "evaluate.py": evaluate.build_parser,
    "segment.py": segment.build_parser,
    "embed_images.py": embed_images.build_parser,
    "find_direction.py": find_direction.build_parser,
    "demo.train_gan": demo_train_gan.build_parser,
    "demo.figures": figures.build_parser,
    "demo.random_directions": random_directions.build_parser,
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_inputs(tmp_path_factory.mktemp("inputs"))


@pytest.mark.parametrize("name", PARSERS)
def test_every_flag_has_a_help_text_with_its_default_once(name):
    parser = PARSERS[name]()
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        assert action.help, f"{name} {action.option_strings} has no help"
        assert action.help.count("(default:") <= 1, action.help
        assert "(default: None)" not in action.help and not action.help.endswith("(default: )")
    assert "(default: None)" not in parser.format_help()


def test_every_missing_input_is_reported_in_one_run(inputs, tmp_path):
    argv = [
        *command(inputs, tmp_path / "run", 2),
        *("--gan_weights", str(tmp_path / "G.pth"), "--bg_direction", str(tmp_path / "d.pth")),
        *("--z", str(tmp_path / "z.npy"), "--val_images_dir", str(tmp_path / "images")),
    ]
    with pytest.raises(InputError) as error:
        train_segmentation.main(argv)
    lines = str(error.value).splitlines()
    assert len(lines) == 4
    for name, line in zip(("d.pth", "z.npy", "G.pth", "images"), lines, strict=True):
        assert name in line
    assert not (tmp_path / "run").exists()


def test_pictures_of_a_run_are_legible_and_show_predictions(inputs, tmp_path):
    out = tmp_path / "run"
    train_segmentation.main(command(inputs, out, 2))
    with Image.open(out / "gen_sample.png") as picture:
        # 64-px samples drawn as 128-px tiles: image, mask, overlay rows for 4 samples, after the names.
        assert picture.size == (5 * 130 + 2, 3 * 130 + 2)
    with Image.open(out / "predictions_synthetic.png") as picture:
        assert picture.size == (5 * 130 + 2, 5 * 130 + 2)
    with Image.open(out / "predictions_ds.png") as picture:
        assert picture.size == (4 * 130 + 2, 5 * 130 + 2)


@pytest.mark.slow
def test_every_row_of_a_prediction_picture_is_named():
    """The first column names the rows (image, true mask, overlay, probability, prediction): five tiles
    with text, each different."""
    images, masks, probabilities = torch.zeros(2, 3, 8, 8), torch.ones(2, 8, 8), torch.full((2, 8, 8), 0.7)
    grid = samples_grid(images, masks, probabilities)
    names = [grid[:, 2 + row * 130 : 130 + row * 130, 2:130] for row in range(5)]
    assert all((name < 0.5).any() for name in names)
    assert len({name.numpy().tobytes() for name in names}) == 5
    assert samples_grid(images, masks).shape[1] == 3 * 130 + 2


def test_tensorboard_has_no_doubled_steps_after_a_resume(inputs, tmp_path, event_files_of_one_second):
    out = tmp_path / "run"
    train_segmentation.main(command(inputs, out, 2))
    shutil.copy(out / "checkpoint.pth", tmp_path / "step2.pth")
    train_segmentation.main(command(inputs, out, 4))
    assert logged_steps(out)["val/loss"] == [2, 4]
    # As if the run had been killed after logging step 4 but before saving its checkpoint.
    shutil.copy(tmp_path / "step2.pth", out / "checkpoint.pth")
    train_segmentation.main(command(inputs, out, 4))
    assert logged_steps(out)["val/loss"] == [2, 4]


def test_progress_is_plain_lines_when_stderr_is_not_a_terminal(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)
    for _ in progress.progress_bar(range(3), desc="work"):
        pass
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert lines[0].startswith("work:   0%") and lines[-1].startswith("work: 100%")


@pytest.mark.slow
def test_python_snippets_of_the_docs_run_as_printed(tmp_path):
    docs = "".join(path.read_text() for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))])
    snippets = re.findall(r"```python\n(.*?)```", docs, flags=re.S)
    assert snippets
    from BigGAN.gan_load import make_biggan_config
    from BigGAN.model.BigGAN import Generator
    from UNet.unet_model import UNet

    weights = tmp_path / "BigGAN/weights"
    weights.mkdir(parents=True)
    torch.save(Generator(**make_biggan_config(128)).state_dict(), weights / "BigBiGAN_x1.pth")
    torch.save(torch.randn(120), weights / "bg_direction.pth")
    (tmp_path / "results/imagenet").mkdir(parents=True)
    torch.save(UNet().state_dict(), tmp_path / "results/imagenet/segmentation.pth")
    (tmp_path / "pretrained").mkdir()
    torch.save(UNet().state_dict(), tmp_path / "pretrained/u_net_imagenet.pth")
    shutil.copy(REPO / "hubconf.py", tmp_path)  # the torch.hub snippets load "." as a clone
    for snippet in snippets:
        result = subprocess.run(
            [sys.executable, "-c", snippet],
            cwd=tmp_path,
            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr


@pytest.mark.slow
def test_editable_install_makes_the_modules_importable_from_anywhere(tmp_path):
    python = str(venv_seeing_these_packages(tmp_path / "venv", with_pip=False))
    install = [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e", str(REPO)]
    subprocess.run(install, check=True, capture_output=True)
    probe = "import train_segmentation, demo.assets as a; print(a.DEMO_GENERATOR_PATH.is_file())"
    result = subprocess.run([python, "-c", probe], cwd=tmp_path, capture_output=True, text=True)
    assert result.stdout.strip() == "True", result.stderr
