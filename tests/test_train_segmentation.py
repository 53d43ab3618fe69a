"""End to end: train_segmentation.py on a narrow filled generator and a small PNG validation folder."""

import json
import shlex
import sys
from dataclasses import replace

import pytest
import torch
from torchvision.utils import save_image

import demo.preset
import train_segmentation
from evaluate import predictions_grid, validation_sets
from tests.tensorboard_events import logged_scalars, logged_steps
from tests.training_run import GAN_CONFIG, command, folder_state, make_inputs
from train_config import resolve_config
from UNet.unet_load import load_unet
from UNet.unet_model import UNet
from utils import distributed
from utils.errors import InputError
from utils.precision import AutocastGenerator
from utils.tensorboard import run_writer
from visualization import save_samples_grid


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_inputs(tmp_path_factory.mktemp("inputs"))


def test_training_writes_every_output_and_resumes(inputs, tmp_path, capsys, monkeypatch):
    out = tmp_path / "run"
    writers = []

    def recorded_writer(logdir, resumed_step):
        writers.append((logdir, resumed_step))
        return run_writer(logdir, resumed_step)

    monkeypatch.setattr(train_segmentation, "run_writer", recorded_writer)
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
    # Logged every 10 steps and at the end (train/), every --steps_per_log and at the end (val/loss),
    # every --steps_per_validation before the end (val/<folder>/, samples), final scores at the end.
    metrics = ("F_max", "IoU", "accuracy")
    assert logged_steps(out) == {
        "train/loss": [3],
        "train/lr": [3],
        "val/loss": [2, 3],
        **{f"val/ds/{metric}": [2] for metric in metrics},
        **{f"final/{name}/{metric}": [3] for name in ("synthetic", "ds") for metric in metrics},
        "synthetic/samples": [2, 3],
    }
    val_set = validation_sets([str(inputs / "ds/images")], [str(inputs / "ds/masks")], False)[0]
    pairs = [val_set.dataset[index] for index in range(3)]
    save_image(predictions_grid(model, pairs, 32), tmp_path / "expected.png")
    assert (out / "predictions_ds.png").read_bytes() == (tmp_path / "expected.png").read_bytes()
    assert (out / "predictions_synthetic.png").is_file()
    printed = capsys.readouterr().out
    for name in ("synthetic", "ds"):
        row = f"{name:<24}{score[name]['id']['F_max']:>8.3f}{score[name]['thr']['IoU']:>8.3f}"
        assert row in printed
    assert "baselines" not in printed

    train_segmentation.main(command(inputs, out, n_steps=5))
    assert "Resuming from" in capsys.readouterr().out
    assert torch.load(out / "checkpoint.pth", weights_only=True)["step"] == 5
    # The continued run drops events an interrupted run logged after its checkpoint (step 3).
    assert writers == [(out / "tensorboard", None), (out / "tensorboard", 3)]

    straight = tmp_path / "straight"
    train_segmentation.main(command(inputs, straight, n_steps=5))
    resumed_weights = torch.load(out / "segmentation.pth", weights_only=True)
    straight_weights = torch.load(straight / "segmentation.pth", weights_only=True)
    for key, value in straight_weights.items():
        torch.testing.assert_close(resumed_weights[key], value, atol=1e-6, rtol=0, msg=key)


def test_args_file_reproduces_a_run_configuration(inputs, tmp_path):
    from train_config import resolve_config

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
    assert dict(logged_scalars(out / "tensorboard", "train/lr")) == {
        10: pytest.approx(0.005),
        20: pytest.approx(0.0025),
    }
    checkpoint = torch.load(out / "checkpoint.pth", weights_only=False)
    assert checkpoint["opt"]["param_groups"][0]["lr"] == pytest.approx(0.0025)


def test_the_launch_records_its_processes_and_resolves_device_and_precision():
    config = resolve_config(["--out", "x", "--device", "cpu"])
    ranks = distributed.Ranks(rank=0, world_size=3)
    launched, device = train_segmentation.launch_config(config, ranks)
    assert device == torch.device("cpu")
    assert launched.run.world_size == 3 and launched.run.precision == "fp32"
    assert launched.params == config.params
    assert launched.run == replace(config.run, world_size=3, precision="fp32")
    bf16 = resolve_config(["--out", "x", "--device", "cpu", "--precision", "bf16"])
    assert train_segmentation.launch_config(bf16, distributed.SINGLE_PROCESS)[0].run.precision == "bf16"
    with pytest.raises(InputError, match="--device cuda:99"):
        train_segmentation.launch_config(resolve_config(["--out", "x", "--device", "cuda:99"]), ranks)


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


def test_a_run_without_validation_folders_scores_the_synthetic_test_set_only(inputs, tmp_path):
    out = tmp_path / "run"
    flags = command(inputs, out, n_steps=2)
    for flag in ("--val_images_dir", "--val_masks_dir"):
        index = flags.index(flag)
        del flags[index : index + 2]
    score = train_segmentation.main(flags)
    assert set(score) == {"synthetic"}
    assert not any(tag.startswith("val/ds") for tag in logged_steps(out))
    assert sorted(path.name for path in out.glob("predictions_*.png")) == ["predictions_synthetic.png"]


def test_the_command_line_is_read_from_sys_argv(inputs, tmp_path, monkeypatch):
    out = tmp_path / "run"
    flags = command(inputs, out, 1)
    monkeypatch.setattr(sys, "argv", ["train_segmentation.py", *flags])
    train_segmentation.main()
    assert (out / "command.sh").read_text() == shlex.join(["python", "train_segmentation.py", *flags]) + "\n"


def test_threads_are_set_only_when_asked_for(inputs, tmp_path, monkeypatch):
    """`--threads` is applied before the inputs are loaded; without it torch keeps its own choice."""
    set_to = []
    monkeypatch.setattr(torch, "set_num_threads", set_to.append)
    missing = ["--bg_direction", str(tmp_path / "none.pth")]
    for threads, expected in (([], []), (["--threads", "1"], [1])):
        set_to.clear()
        with pytest.raises(FileNotFoundError):
            train_segmentation.main([*command(inputs, tmp_path / "run", 1), *missing, *threads])
        assert set_to == expected


def test_demo_flag_takes_the_demo_preset_and_reports_its_extras(inputs, tmp_path, monkeypatch, capsys):
    preset = {
        "gan_weights": str(inputs / "G.pth"),
        "gan_config": GAN_CONFIG,
        "bg_direction": str(inputs / "direction.pth"),
        "val_images_dirs": [str(inputs / "ds/images")],
        "val_masks_dirs": [str(inputs / "ds/masks")],
        **{"device": "cpu", "unet_width": 4, "n_steps": 2, "batch_size": 4, "test_samples_count": 4},
    }
    extras = {"unet_per_image": {"IoU": 0.5}, "baselines": {"mean mask": {"IoU": 0.25}}}
    seen = []
    monkeypatch.setattr(demo.preset, "demo_preset", lambda: preset)
    monkeypatch.setattr(
        demo.preset, "demo_score_extras", lambda scores, val_set: seen.append((scores, val_set)) or extras
    )
    monkeypatch.setattr(demo.preset, "print_demo_table", seen.append)
    out = tmp_path / "run"
    score = train_segmentation.main(["--demo", "--out", str(out)])
    assert json.loads((out / "args.json").read_text())["demo"] is True
    (scores, val_set), printed = seen
    assert val_set.name == "ds" and scores.to_json() == score["ds"]
    assert score == {"synthetic": score["synthetic"], "ds": score["ds"], **extras}
    assert printed == score


def launched_as(ranks: distributed.Ranks, monkeypatch) -> list[tuple[str, tuple]]:
    """`main` as process `ranks` of a torchrun launch: the process-group calls and the training itself
    (which would exchange with the other processes) are recorded, in order, instead of run."""
    calls = []
    monkeypatch.setattr(distributed, "ranks_from_environment", lambda: ranks)
    for name in ("start", "finish", "barrier", "raise_if_any_failed"):
        monkeypatch.setattr(distributed, name, lambda *args, name=name: calls.append((name, args)))
    monkeypatch.setattr(
        train_segmentation,
        "train_segmentation",
        lambda *args, **keywords: calls.append(("train", args + (keywords,))),
    )
    return calls


def test_other_processes_train_their_share_and_write_nothing(inputs, tmp_path, monkeypatch):
    """A torchrun process other than the main one: no test set, validation, logging or files; it
    continues the checkpoint with the others. (Real multi-process runs: tests/test_distributed.py.)"""
    out = tmp_path / "run"
    train_segmentation.main(command(inputs, out, n_steps=2))
    # Made into the checkpoint of a two-process run: one latent stream state per process.
    checkpoint = torch.load(out / "checkpoint.pth", weights_only=True)
    checkpoint["config"]["world_size"] = 2
    checkpoint["rng"] = [checkpoint["rng"], checkpoint["rng"]]
    torch.save(checkpoint, out / "checkpoint.pth")
    written = folder_state(out)

    ranks = distributed.Ranks(rank=1, world_size=2, local_rank=1)
    calls = launched_as(ranks, monkeypatch)
    assert train_segmentation.main(command(inputs, out, n_steps=4)) == {}

    cpu = torch.device("cpu")
    assert [name for name, _ in calls] == ["start", "raise_if_any_failed", "train", "barrier", "finish"]
    assert calls[0][1] == (ranks, cpu) and calls[1][1] == (None, ranks, cpu)
    assert calls[3][1] == calls[4][1] == (ranks,)
    model, mask_generator, config, device, keywords = calls[2][1]
    assert isinstance(model, UNet) and model.inc.double_conv[0].out_channels == 4
    assert mask_generator.p.batch_size == 2 and set(keywords) == {"checkpoint", "ranks"}  # no log
    assert config.run.world_size == 2 and config.params.n_steps == 4 and device == cpu
    assert keywords["checkpoint"]["step"] == 2 and keywords["ranks"] is ranks
    assert folder_state(out) == written


def test_the_main_process_of_a_launch_trains_with_the_others_then_writes_the_results(
    inputs, tmp_path, monkeypatch
):
    ranks = distributed.Ranks(rank=0, world_size=2)
    calls = launched_as(ranks, monkeypatch)
    out = tmp_path / "run"
    score = train_segmentation.main(command(inputs, out, n_steps=2))

    assert [name for name, _ in calls] == ["start", "raise_if_any_failed", "train", "barrier", "finish"]
    _, mask_generator, config, _, keywords = calls[2][1]
    log = keywords["log"]
    assert mask_generator.p.batch_size == 2 and len(log.test_set) == 2 and log.val_set.name == "ds"
    assert log.writer is not None and keywords["checkpoint"] is None and keywords["ranks"] is ranks
    assert json.loads((out / "score.json").read_text()) == score and set(score) == {"synthetic", "ds"}


def test_prepare_draws_the_test_set_from_the_embeddings_with_noise(inputs, tmp_path):
    """The test set's latents: rows of --z plus --z_noise, from the stream seeded with --seed + 1,
    synthesised at the run's precision."""
    zs = torch.randn(5, 120, generator=torch.Generator().manual_seed(3))
    torch.save(zs, tmp_path / "z.pth")
    flags = ["--z", str(tmp_path / "z.pth"), "--z_noise", "0.3", "--seed", "5", "--precision", "bf16"]
    config = resolve_config(command(inputs, tmp_path / "run", n_steps=2) + flags)
    cpu = torch.device("cpu")
    loaded, test_set = train_segmentation.prepare(config, distributed.SINGLE_PROCESS, cpu)
    assert torch.equal(loaded.zs, zs) and [val_set.name for val_set in loaded.val_sets] == ["ds"]
    assert isinstance(loaded.G, AutocastGenerator) and loaded.G.device_type == "cpu"
    generator = train_segmentation.build_mask_generator(
        loaded.G, loaded.direction, config.params, zs, 0.3, 6, cpu
    )
    expected = train_segmentation.make_test_set(generator, 6)
    assert len(test_set) == len(expected) == 2
    for (images, masks), (expected_images, expected_masks) in zip(test_set, expected, strict=True):
        assert torch.equal(images, expected_images) and torch.equal(masks, expected_masks)


def test_prepare_on_other_processes_loads_no_folders_and_makes_no_test_set(inputs, tmp_path, monkeypatch):
    reported = []
    monkeypatch.setattr(distributed, "raise_if_any_failed", lambda *args: reported.append(args))
    config = resolve_config(command(inputs, tmp_path / "run", n_steps=2))
    ranks, cpu = distributed.Ranks(rank=1, world_size=2), torch.device("cpu")
    loaded, test_set = train_segmentation.prepare(config, ranks, cpu)
    assert loaded.val_sets == [] and test_set == [] and reported == [(None, ranks, cpu)]


def test_prepare_raises_the_first_problem_of_its_process(inputs, tmp_path):
    flags = [*command(inputs, tmp_path / "run", 1), "--bg_direction", str(tmp_path / "none.pth")]
    with pytest.raises(FileNotFoundError, match="--bg_direction"):
        train_segmentation.prepare(resolve_config(flags), distributed.SINGLE_PROCESS, torch.device("cpu"))


@pytest.mark.parametrize(("flags", "precision"), [((), "bf16"), (("--faithful",), "fp32")])
def test_on_cuda_the_faithful_run_records_fp32_and_the_default_bf16(flags, precision, tmp_path, monkeypatch):
    """The original trained in float32: --faithful keeps it on a GPU, where the default is bf16."""
    monkeypatch.setattr(train_segmentation, "resolve_device", lambda name: torch.device("cuda"))
    config = resolve_config(["--out", str(tmp_path / "run"), *flags])
    config, device = train_segmentation.launch_config(config, distributed.Ranks())
    assert device == torch.device("cuda")
    test_set = [(torch.zeros(1, 3, 8, 8), torch.zeros(1, 8, 8, dtype=torch.long))]
    train_segmentation.write_run_files(tmp_path / "run", config, ["--out", "run", *flags], test_set)
    assert json.loads((tmp_path / "run" / "args.json").read_text())["precision"] == precision


def test_the_run_ends_by_printing_its_wall_time(inputs, tmp_path, monkeypatch, capsys):
    clock = iter([100.0, 165.4])
    monkeypatch.setattr(train_segmentation.time, "monotonic", lambda: next(clock, 165.4))
    train_segmentation.main(command(inputs, tmp_path / "run", 1))
    assert capsys.readouterr().out.endswith("\nwall time: 1 min 05 s\n")


def test_training_runs_channels_last_and_saves_the_usual_layout(inputs, tmp_path):
    """Convolutions run on channels-last weights (faster); what is saved and scored afterwards is in the
    usual layout, as evaluate.py loads it."""
    config = resolve_config(command(inputs, tmp_path / "run", n_steps=2))
    loaded = train_segmentation.load_inputs(config, torch.device("cpu"))
    generator_convs = [p for p in loaded.G.parameters() if p.dim() == 4]
    assert generator_convs and all(
        p.is_contiguous(memory_format=torch.channels_last) for p in generator_convs
    )

    train_segmentation.main(command(inputs, tmp_path / "run", n_steps=2))
    trained = torch.load(tmp_path / "run/checkpoint.pth", weights_only=True)["model"]
    saved = torch.load(tmp_path / "run/segmentation.pth", weights_only=True)
    convs = [key for key, tensor in saved.items() if tensor.dim() == 4]
    assert convs and all(saved[key].is_contiguous() for key in convs)
    assert all(trained[key].is_contiguous(memory_format=torch.channels_last) for key in convs)
    assert not any(trained[key].is_contiguous() for key in convs if trained[key][0, 0].numel() > 1)


def test_a_run_that_gets_no_signal_is_not_stopped(inputs, tmp_path):
    """Stopping is a KeyboardInterrupt, which pytest would take for the user's: fail the test instead."""
    try:
        train_segmentation.main(command(inputs, tmp_path / "run", n_steps=3))
    except KeyboardInterrupt as stopped:
        pytest.fail(f"stopped without a signal: {stopped}")
    assert torch.load(tmp_path / "run/checkpoint.pth", weights_only=True)["step"] == 3
