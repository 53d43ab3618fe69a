"""train_segmentation.py with bad inputs, diverging runs, changed reruns and interruptions.

Every refusal happens before `--out` is touched; a diverging or interrupted run keeps its last good
checkpoint, and continuing it gives the same weights as a run that was never interrupted.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import train_segmentation
from gan_mask_gen import MaskGenerationError
from tests.training_run import command, folder_state, make_inputs
from UNet.unet_model import UNet
from utils.cli import run_cli
from utils.errors import InputError, MissingInputError
from utils.weights import WeightsError

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_inputs(tmp_path_factory.mktemp("inputs"))


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def save_tensor(path: Path, tensor: torch.Tensor) -> Path:
    torch.save(tensor, path)
    return path


@pytest.mark.parametrize(
    "make_direction, message",
    [
        (lambda: torch.zeros(120), "all zeros"),
        (lambda: torch.full((120,), float("nan")), "non-finite"),
        (lambda: torch.tensor([float("inf")] + [0.0] * 119), "non-finite"),
        (lambda: torch.ones(7), "tensor of 120 elements"),
    ],
)
def test_unusable_directions_are_refused_before_writing(inputs, tmp_path, make_direction, message):
    direction = save_tensor(tmp_path / "direction.pth", make_direction())
    out = tmp_path / "run"
    with pytest.raises(InputError, match=message):
        train_segmentation.main([*command(inputs, out, 2), "--bg_direction", str(direction)])
    assert not out.exists()


def test_a_direction_that_changes_nothing_fails_fast(inputs, tmp_path):
    direction = save_tensor(tmp_path / "tiny.pth", torch.full((120,), 1e-12))
    out = tmp_path / "run"
    with pytest.raises(MaskGenerationError, match="masks of a batch are empty"):
        train_segmentation.main([*command(inputs, out, 2), "--bg_direction", str(direction)])
    assert not out.exists()


@pytest.mark.parametrize(
    "make_z, message",
    [
        (lambda: np.zeros((0, 120), np.float32), "holds no rows"),
        (lambda: np.where(np.arange(5)[:, None] == 3, np.nan, np.zeros((5, 120), np.float32)), "1 of 5 rows"),
        (lambda: np.zeros((5, 7), np.float32), r"float matrix \[N, 120\]"),
    ],
)
def test_unusable_embeddings_are_refused_before_writing(inputs, tmp_path, make_z, message):
    np.save(tmp_path / "z.npy", make_z())
    out = tmp_path / "run"
    with pytest.raises(InputError, match=message):
        train_segmentation.main([*command(inputs, out, 2), "--z", str(tmp_path / "z.npy")])
    assert not out.exists()


def test_missing_embeddings_file_is_named(inputs, tmp_path):
    with pytest.raises(MissingInputError, match="--z .*absent.npy does not exist"):
        train_segmentation.main([*command(inputs, tmp_path / "run", 2), "--z", str(tmp_path / "absent.npy")])


def test_text_file_as_generator_weights_is_named(inputs, tmp_path):
    (tmp_path / "notes.pth").write_text("these are not weights\n")
    out = tmp_path / "run"
    with pytest.raises(WeightsError, match="notes.pth cannot be read: it starts with"):
        train_segmentation.main([*command(inputs, out, 2), "--gan_weights", str(tmp_path / "notes.pth")])
    assert not out.exists()


def test_truncated_validation_image_is_named_before_training(inputs, tmp_path):
    images, masks = tmp_path / "images", tmp_path / "masks"
    images.mkdir(), masks.mkdir()
    for name in ("a", "b"):
        Image.fromarray(np.full((20, 20, 3), 90, np.uint8)).save(images / f"{name}.png")
        Image.fromarray(np.full((20, 20), 255, np.uint8)).save(masks / f"{name}.png")
    data = (images / "b.png").read_bytes()
    (images / "b.png").write_bytes(data[: len(data) // 2])
    out = tmp_path / "run"
    argv = [*command(inputs, out, 2), "--val_images_dir", str(images), "--val_masks_dir", str(masks)]
    with pytest.raises(InputError, match="b.png"):
        train_segmentation.main(argv)
    assert not out.exists()


def test_diverging_run_stops_and_keeps_the_last_good_checkpoint(inputs, tmp_path, capsys):
    out = tmp_path / "run"
    argv = [*command(inputs, out, 10), "--rate", "1e20", "--steps_per_checkpoint_save", "1"]
    assert run_cli(train_segmentation.main, argv) == 1
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert message.startswith("error: training diverged at step ")
    diverged_at = int(message.split("step ")[1].split(":")[0])
    assert not (out / "segmentation.pth").exists() and not (out / "score.json").exists()
    checkpoint = torch.load(out / "checkpoint.pth", weights_only=True)
    assert checkpoint["step"] == diverged_at - 1
    assert f"the checkpoint of step {diverged_at - 1}" in message
    assert all(torch.isfinite(value).all() for value in checkpoint["model"].values())


def test_rerun_with_other_settings_is_refused_and_writes_nothing(inputs, tmp_path):
    out = tmp_path / "run"
    train_segmentation.main(command(inputs, out, 2))
    before = folder_state(out)
    for flags, named in (
        (["--batch_size", "3"], "batch_size: 4 -> 3"),
        (["--rate", "0.01"], "rate: 0.001 -> 0.01"),
        (["--seed", "5"], "seed: 2 -> 5"),
        (["--n_steps", "1"], "checkpoint is at step 2, beyond 1"),
    ):
        with pytest.raises(InputError, match=named):
            train_segmentation.main([*command(inputs, out, 2), *flags])
    with pytest.raises(InputError, match="missing_images"):
        train_segmentation.main(
            [*command(inputs, out, 4), "--val_images_dir", str(tmp_path / "missing_images")]
        )
    assert folder_state(out) == before


def test_rerun_with_longer_training_and_other_logging_continues(inputs, tmp_path, capsys):
    out = tmp_path / "run"
    train_segmentation.main(command(inputs, out, 2))
    capsys.readouterr()
    train_segmentation.main([*command(inputs, out, 4), "--steps_per_log", "1"])
    captured = capsys.readouterr()
    assert "Resuming from" in captured.out
    assert "n_steps: 2 -> 4; steps_per_log: 2 -> 1" in captured.err
    assert json.loads((out / "args.json").read_text())["n_steps"] == 4


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda data: data[: len(data) // 3], "checkpoint .*checkpoint.pth cannot be read"),
        (lambda data: b"", "it is empty"),
    ],
)
def test_damaged_checkpoint_says_how_to_start_over(inputs, tmp_path, damage, message):
    out = tmp_path / "run"
    train_segmentation.main(command(inputs, out, 2))
    path = out / "checkpoint.pth"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(InputError, match=f"{message}.*delete .*checkpoint.pth"):
        train_segmentation.main(command(inputs, out, 4))


def test_checkpoint_of_another_program_says_how_to_start_over(inputs, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    torch.save({"model": {}, "step": 3}, out / "checkpoint.pth")
    with pytest.raises(InputError, match="lacks opt, scheduler, rng, config.*start the run over"):
        train_segmentation.main(command(inputs, out, 4))


def test_user_errors_are_one_line_without_traceback(inputs, tmp_path, capsys):
    argv = [*command(inputs, tmp_path / "run", 2), "--batch_size", "0", "--rate", "nan"]
    assert run_cli(train_segmentation.main, argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines() == [
        "error: --rate nan: must be a finite number above 0",
        "--batch_size 0: must be a whole number of at least 1",
    ]
    assert run_cli(train_segmentation.main, [*argv, "--debug"]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_synthetic_loss_in_train_mode_moves_batch_norm_statistics(inputs, tmp_path):
    model = UNet(base_width=4).eval()
    test_set = [(torch.randn(3, 3, 32, 32), torch.randint(0, 2, (3, 32, 32)))]
    stats = {k: v.clone() for k, v in model.state_dict().items() if "running_mean" in k}
    train_segmentation.synthetic_loss(model, test_set)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in stats.items())
    train_segmentation.synthetic_loss(model, test_set, train_mode=True)
    assert not any(torch.equal(model.state_dict()[k], v) for k, v in stats.items())
    assert not model.training


def start_training(inputs: Path, out: Path) -> subprocess.Popen:
    """A long training run in a subprocess; returns once it has saved its first checkpoint."""
    argv = [
        sys.executable,
        "train_segmentation.py",
        *command(inputs, out, 100_000),
        "--steps_per_validation",
        "1000",
    ]
    process = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while not (out / "checkpoint.pth").exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.05)
    return process


def continued_equals_straight(inputs: Path, out: Path, tmp_path: Path, capsys) -> None:
    """Continue the run in `out` two steps past its checkpoint; compare with an uninterrupted run."""
    stopped_at = torch.load(out / "checkpoint.pth", weights_only=True)["step"]
    capsys.readouterr()
    train_segmentation.main([*command(inputs, out, stopped_at + 2), "--steps_per_validation", "1000"])
    assert f"at step {stopped_at}" in capsys.readouterr().out
    straight = tmp_path / "straight"
    train_segmentation.main([*command(inputs, straight, stopped_at + 2), "--steps_per_validation", "1000"])
    assert_same_weights(weights(out / "segmentation.pth"), weights(straight / "segmentation.pth"))


@pytest.mark.slow
def test_run_killed_with_sigkill_continues_bit_identically(inputs, tmp_path, capsys):
    out = tmp_path / "run"
    process = start_training(inputs, out)
    process.kill()
    process.communicate()
    assert process.returncode == -signal.SIGKILL
    assert not list(out.glob("*.tmp"))
    continued_equals_straight(inputs, out, tmp_path, capsys)


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_save_a_checkpoint_then_exit(inputs, tmp_path, capsys, stop_signal):
    out = tmp_path / "run"
    process = start_training(inputs, out)
    first_saved = torch.load(out / "checkpoint.pth", weights_only=True)["step"]
    os.kill(process.pid, stop_signal)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + stop_signal
    step = torch.load(out / "checkpoint.pth", weights_only=True)["step"]
    assert step >= first_saved
    assert f"stopped: checkpoint of step {step} saved in {out / 'checkpoint.pth'}" in err
    continued_equals_straight(inputs, out, tmp_path, capsys)


class PoisonedUNet(UNet):
    """A U-Net whose BatchNorm running variance turns NaN during training while its loss stays finite
    (train-mode BatchNorm normalises with batch statistics, not the running ones)."""

    def forward(self, x):
        if self.training:
            self.inc.double_conv[1].running_var.fill_(float("nan"))
        return super().forward(x)


@pytest.mark.filterwarnings("ignore:invalid value encountered in cast")  # the NaN sample grid at step 2
def test_non_finite_weights_stop_the_run_before_they_are_saved(inputs, tmp_path, monkeypatch):
    monkeypatch.setattr(train_segmentation, "UNet", PoisonedUNet)
    out = tmp_path / "run"
    with pytest.raises(
        train_segmentation.DivergenceError, match="diverged at step 2: 1 U-Net tensors are not finite"
    ):
        train_segmentation.main(command(inputs, out, 4))
    assert not (out / "checkpoint.pth").exists() and not (out / "segmentation.pth").exists()
