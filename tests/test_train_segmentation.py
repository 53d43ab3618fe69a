"""End to end: train_segmentation.py on a narrow filled generator and a small PNG validation folder."""

import json

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import demo.preset
import train_segmentation
from tests.training_run import GAN_CONFIG, command, make_inputs
from UNet.unet_load import load_unet
from utils import distributed
from utils.train_config import resolve_config
from visualization import save_samples_grid


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_inputs(tmp_path_factory.mktemp("inputs"))


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


def test_learning_rate_decays_by_its_factor_every_interval(inputs, tmp_path):
    """StepLR after every update: the rate logged after step k is rate * decay ** (k // interval)."""
    out = tmp_path / "run"
    flags = [
        "--rate",
        "0.01",
        "--rate_decay",
        "0.5",
        "--steps_per_rate_decay",
        "10",
        "--steps_per_log",
        "100",
    ]
    flags += ["--steps_per_validation", "100", "--steps_per_checkpoint_save", "100", "--batch_size", "2"]
    train_segmentation.main(command(inputs, out, n_steps=20) + flags)
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    logged = {event.step: event.value for event in events.Scalars("train/lr")}
    assert logged == {10: pytest.approx(0.005), 20: pytest.approx(0.0025)}
    checkpoint = torch.load(out / "checkpoint.pth", weights_only=False)
    assert checkpoint["opt"]["param_groups"][0]["lr"] == pytest.approx(0.0025)


def test_the_launch_records_its_processes_and_resolves_device_and_precision():
    config = resolve_config(["--out", "x", "--device", "cpu"])
    launched, device = train_segmentation.launch_config(config, distributed.Ranks(rank=0, world_size=3))
    assert device == torch.device("cpu")
    assert launched.run.world_size == 3 and launched.run.precision == "fp32"
    assert launched.params == config.params


def test_run_files_record_the_config_the_command_and_the_first_test_batch(tmp_path):
    config = resolve_config(["--out", "x", "--n_steps", "3"])
    g = torch.Generator().manual_seed(0)
    test_set = [
        (torch.rand(2, 3, 8, 8, generator=g) * 2 - 1, torch.rand(2, 8, 8, generator=g) > 0.5)
        for _ in range(2)
    ]
    out = tmp_path / "new" / "run"
    train_segmentation.write_run_files(out, config, ["--out", "my run", "--n_steps", "3"], test_set)
    assert json.loads((out / "args.json").read_text()) == config.to_json()
    assert (out / "command.sh").read_text() == "python train_segmentation.py --out 'my run' --n_steps 3\n"
    save_samples_grid(tmp_path / "first.png", *test_set[0])
    assert (out / "gen_sample.png").read_bytes() == (tmp_path / "first.png").read_bytes()


def test_the_demo_hooks_hand_their_arguments_to_the_demo(monkeypatch):
    seen = []
    monkeypatch.setattr(
        demo.preset, "demo_score_extras", lambda scores, val_set: seen.append((scores, val_set)) or {}
    )
    monkeypatch.setattr(demo.preset, "print_demo_table", lambda score: seen.append(score))
    train_segmentation._demo_extras("scores", "val_set")
    train_segmentation._print_demo_table({"baselines": 1})
    assert seen == [("scores", "val_set"), {"baselines": 1}]
