"""Flag resolution of train_segmentation.py: defaults, --args files, overrides, clear errors."""

import json

import pytest

from gan_mask_gen import MaskSynthesizing
from train_config import (
    SegmentationTrainParams,
    build_parser,
    check_resumable,
    flag_fields,
    resolve_config,
    resume_changes,
)
from utils.errors import InputError


def test_defaults_are_those_of_the_original_work():
    config = resolve_config(["--out", "x"])
    assert config.params == SegmentationTrainParams()
    assert (config.params.rate, config.params.n_steps, config.params.batch_size) == (0.001, 12000, 95)
    assert config.params.synthezing is MaskSynthesizing.LIGHTING
    assert config.run.device is None and config.run.val_images_dirs == []


def test_flags_are_parsed_to_their_types():
    config = resolve_config(
        ["--out", "x", "--maxes_filter", "false", "--synthezing", "mean_thr", "--val_resize_to", "none"]
        + ["--gan_config", '{"G_ch": 4}', "--val_images_dir", "a", "b", "--val_masks_dirs", "c", "d"]
    )
    assert config.params.maxes_filter is False
    assert config.params.synthezing is MaskSynthesizing.MEAN_THR
    assert config.run.val_resize_to is None
    assert config.run.gan_config == {"G_ch": 4}
    assert config.run.val_images_dirs == ["a", "b"] and config.run.val_masks_dirs == ["c", "d"]


def test_command_line_overrides_args_file_which_overrides_preset(tmp_path):
    (tmp_path / "args.json").write_text(json.dumps({"n_steps": 7, "batch_size": 3, "synthezing": "mean_thr"}))
    config = resolve_config(
        ["--args", str(tmp_path / "args.json"), "--out", "x", "--batch_size", "5", "--demo"],
        demo_preset=lambda: {"n_steps": 1, "batch_size": 1, "rate": 0.5},
    )
    assert (config.params.n_steps, config.params.batch_size, config.params.rate) == (7, 5, 0.5)
    assert config.params.synthezing is MaskSynthesizing.MEAN_THR
    assert config.run.demo


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--out", "x", "--maxes_filter", "maybe"], "expected true or false"),
        (["--out", "x", "--synthezing", "shadows"], "expected lighting or mean_thr"),
        (["--out", "x", "--gan_config", "{not json"], "not a JSON object"),
        (["--out", "x", "--batch_size", "ten"], "invalid int value"),
    ],
)
def test_unparsable_flags_are_named(argv, message, capsys):
    with pytest.raises(SystemExit):
        resolve_config(argv)
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags, message",
    [
        ([], "--out is required"),
        (["--val_images_dir", "a"], "same number of folders"),
        (["--batch_size", "0"], "--batch_size 0: must be a whole number of at least 1"),
        (["--n_steps", "0"], "--n_steps 0: must be a whole number of at least 1"),
        (["--steps_per_checkpoint_save", "0"], "--steps_per_checkpoint_save 0: must be"),
        (["--steps_per_log", "-2"], "--steps_per_log -2: must be"),
        (["--test_samples_count", "0"], "--test_samples_count 0: must be"),
        (["--rate", "1e400"], "--rate inf: must be a finite number above 0"),
        (["--rate", "nan"], "--rate nan: must be a finite number above 0"),
        (["--rate", "0"], "--rate 0.0: must be a finite number above 0"),
        (["--rate_decay", "-0.2"], "--rate_decay -0.2: must be a finite number above 0"),
        (["--latent_shift_r", "0"], "--latent_shift_r 0.0: must be a finite number other than 0"),
        (["--mask_size_up", "0"], "--mask_size_up 0.0: must be a finite number above 0"),
        (["--z_noise", "-1"], "--z_noise -1.0: must be a finite number, 0 or above"),
        (["--unet_width", "0"], "--unet_width 0: must be"),
        (["--val_resize_to", "-5"], "--val_resize_to -5: must be"),
        (["--val_resize_to", "8"], "--val_resize_to 8: must be a whole number of at least 16"),
    ],
)
def test_bad_values_are_named_before_the_run(flags, message):
    argv = flags if message == "--out is required" else ["--out", "x", *flags]
    with pytest.raises(InputError, match=message.replace("(", r"\(")):
        resolve_config(argv)


def test_every_bad_value_is_reported_at_once():
    with pytest.raises(InputError) as error:
        resolve_config(["--out", "x", "--batch_size", "0", "--rate", "-1", "--n_steps", "0"])
    assert str(error.value).splitlines() == [
        "--rate -1.0: must be a finite number above 0",
        "--n_steps 0: must be a whole number of at least 1",
        "--batch_size 0: must be a whole number of at least 1",
    ]


def test_negative_shift_radius_is_allowed():
    assert resolve_config(["--out", "x", "--latent_shift_r", "-5"]).params.latent_shift_r == -5


def test_unknown_entry_in_args_file_is_named(tmp_path):
    (tmp_path / "args.json").write_text(json.dumps({"out": "x", "n_stepz": 3}))
    with pytest.raises(InputError, match="unknown entry 'n_stepz'"):
        resolve_config(["--args", str(tmp_path / "args.json")])


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"val_images_dirs": "images"}, "'val_images_dirs' is \"images\": expected a list of folder paths"),
        ({"n_steps": 12.5}, "'n_steps' is 12.5: expected a whole number"),
        ({"n_steps": True}, "'n_steps' is true: expected a whole number"),
        ({"maxes_filter": 1}, "'maxes_filter' is 1: expected true or false"),
        ({"rate": [0.1]}, "'rate' is \\[0.1\\]: expected a number"),
        ({"gan_config": "G_ch"}, "'gan_config' is \"G_ch\": expected a JSON object"),
        ({"batch_size": "many"}, "'batch_size' is \"many\": invalid literal"),
        ({"gen_devices": "0 1"}, "'gen_devices' is \"0 1\": expected GPU numbers"),
    ],
)
def test_args_file_values_are_type_checked(tmp_path, entry, message):
    (tmp_path / "args.json").write_text(json.dumps({"out": "x", **entry}))
    with pytest.raises(InputError, match=message):
        resolve_config(["--args", str(tmp_path / "args.json")])


def test_args_file_values_are_range_checked(tmp_path):
    (tmp_path / "args.json").write_text(json.dumps({"out": "x", "batch_size": 0}))
    with pytest.raises(InputError, match="--batch_size 0: must be"):
        resolve_config(["--args", str(tmp_path / "args.json")])


def test_args_file_keeps_native_size_validation(tmp_path):
    (tmp_path / "args.json").write_text(json.dumps({"out": "x", "val_resize_to": None, "z": None}))
    config = resolve_config(["--args", str(tmp_path / "args.json")])
    assert config.run.val_resize_to is None and config.run.z is None


def original_args_json(**changes) -> dict:
    """An args.json as the original train_segmentation.py wrote it: argparse's namespace, unset
    training flags as null, GPU ids as integers."""
    unset = dict.fromkeys(
        ["rate", "steps_per_rate_decay", "rate_decay", "n_steps", "latent_shift_r", "batch_size"]
        + ["steps_per_log", "steps_per_checkpoint_save", "steps_per_validation", "test_samples_count"]
        + ["synthezing", "mask_size_up", "connected_components", "maxes_filter"]
    )
    return {
        "args": None,
        "out": "results",
        "gan_weights": "BigGAN/weights/BigBiGAN_x1.pth",
        "bg_direction": "BigGAN/weights/bg_direction.pth",
        "device": 0,
        "gen_devices": [0, 1],
        "seed": 2,
        "z": "embeddings/BigBiGAN_ImageNet_z.npy",
        "z_noise": 0.0,
        "val_images_dirs": [None],
        "val_masks_dirs": [None],
        **unset,
        **changes,
    }


def test_args_json_of_the_original_is_accepted(tmp_path, capsys):
    (tmp_path / "args.json").write_text(json.dumps(original_args_json(synthezing="mean_thr", rate=0.002)))
    config = resolve_config(["--args", str(tmp_path / "args.json")])
    assert config.run.device == "cuda:0"
    assert config.run.z == "embeddings/BigBiGAN_ImageNet_z.npy"
    assert config.run.val_images_dirs == [] and config.run.val_masks_dirs == []
    expected = SegmentationTrainParams(batch_size=94, rate=0.002, synthezing=MaskSynthesizing.MEAN_THR)
    assert config.params == expected
    assert (
        "gen_devices [0, 1]: the original generated 2 × 47 = 94 samples per step" in capsys.readouterr().err
    )


def test_gen_devices_flag_splits_the_batch_as_the_original(capsys):
    config = resolve_config(["--out", "x", "--gen_devices", "0", "1", "2", "--batch_size", "64"])
    assert config.params.batch_size == 63
    assert capsys.readouterr().err == (
        "note: gen_devices [0, 1, 2]: the original generated 3 × 21 = 63 samples per step on 3 GPUs; "
        "here one process generates them (--batch_size 63)\n"
    )


@pytest.mark.parametrize(
    "given, device", [("0", "cuda:0"), ("1", "cuda:1"), ("cpu", "cpu"), ("cuda", "cuda")]
)
def test_device_accepts_the_original_gpu_index(given, device):
    assert resolve_config(["--out", "x", "--device", given]).run.device == device


def test_faithful_reproduces_the_original_training():
    config = resolve_config(["--out", "x", "--faithful"])
    assert (config.params.batch_size, config.params.n_steps) == (94, 12001)
    assert config.params.synthetic_loss_train_mode and config.run.precision == "fp32"
    assert resolve_config(["--out", "x", "--faithful", "--n_steps", "5"]).params.n_steps == 5
    assert resolve_config(["--out", "x", "--faithful", "--precision", "bf16"]).run.precision == "bf16"


def test_resume_allows_logging_and_length_changes_only():
    before = resolve_config(["--out", "a"])
    after = resolve_config(["--out", "b", "--n_steps", "20000", "--steps_per_log", "5", "--device", "cpu"])
    refused, allowed = resume_changes(before.to_json(), after)
    assert refused == []
    assert allowed == [
        'out: "a" -> "b"',
        'device: null -> "cpu"',
        "n_steps: 12000 -> 20000",
        "steps_per_log: 100 -> 5",
    ]
    changed = resolve_config(["--out", "a", "--batch_size", "32", "--rate", "0.01", "--seed", "3"])
    refused, _ = resume_changes(before.to_json(), changed)
    assert refused == ["seed: 2 -> 3", "rate: 0.001 -> 0.01", "batch_size: 95 -> 32"]


def test_resume_counts_entries_an_older_checkpoint_lacks_as_defaults():
    config = resolve_config(["--out", "a"])
    saved = config.to_json()
    del saved["synthetic_loss_train_mode"], saved["skip_bad_files"]
    assert resume_changes(saved, config) == ([], [])


def test_train_mode_test_loss_makes_its_interval_part_of_the_training():
    before = resolve_config(["--out", "a", "--faithful"])
    refused, _ = resume_changes(
        before.to_json(), resolve_config(["--out", "a", "--faithful", "--steps_per_log", "7"])
    )
    assert refused == ["steps_per_log: 100 -> 7"]


def test_test_set_size_may_change_on_resume_only_with_the_eval_mode_test_loss():
    eval_mode = resume_changes(
        resolve_config(["--out", "a"]).to_json(), resolve_config(["--out", "a", "--test_samples_count", "5"])
    )
    assert eval_mode == ([], ["test_samples_count: 1000 -> 5"])
    before = resolve_config(["--out", "a", "--faithful"])
    train_mode = resume_changes(
        before.to_json(), resolve_config(["--out", "a", "--faithful", "--test_samples_count", "5"])
    )
    assert train_mode == (["test_samples_count: 1000 -> 5"], [])


def write_args(tmp_path, entries) -> str:
    path = tmp_path / "args.json"
    path.write_text(entries if isinstance(entries, str) else json.dumps(entries))
    return str(path)


def args_error(tmp_path, entries) -> str:
    path = write_args(tmp_path, entries)
    with pytest.raises(InputError) as error:
        resolve_config(["--args", path])
    return str(error.value).replace(path, "ARGS")


@pytest.mark.parametrize(
    "entries, message",
    [
        ({"gan_weights": 5}, "entry 'gan_weights' is 5: expected a string"),
        ({"device": True}, "entry 'device' is true: expected a device name"),
        ({"device": 1.5}, "entry 'device' is 1.5: expected a device name"),
        ({"val_resize_to": 12.5}, "entry 'val_resize_to' is 12.5: expected a whole number"),
        ({"rate": True}, "entry 'rate' is true: expected a number"),
        ({"maxes_filter": 1}, "entry 'maxes_filter' is 1: expected true or false"),
        ({"gan_config": [1]}, "entry 'gan_config' is [1]: expected a JSON object"),
        ({"val_images_dirs": "a"}, "entry 'val_images_dirs' is \"a\": expected a list of folder paths"),
        ({"gen_devices": []}, "entry 'gen_devices' is []: expected GPU numbers"),
        ({"gen_devices": 5}, "entry 'gen_devices' is 5: expected GPU numbers"),
        ({"gen_devices": [0, "1"]}, "entry 'gen_devices' is [0, \"1\"]: expected GPU numbers"),
        ({"out": "x", "precision": "fp16"}, "--precision fp16: must be one of fp32, bf16"),
        ("[1, 2]", "expected a JSON object of flag values"),
    ],
)
def test_args_file_errors_name_the_file_the_entry_and_what_was_expected(tmp_path, entries, message):
    expected = message if message.startswith("--precision") else f"--args ARGS: {message}"
    assert args_error(tmp_path, entries) == expected


def test_unreadable_args_file_is_named(tmp_path):
    assert args_error(tmp_path, "{not json").startswith("--args ARGS: cannot read a JSON object (Expecting")


def test_unknown_args_entry_lists_the_known_flags(tmp_path):
    known = sorted(name for name in flag_fields())
    assert "demo" not in known and "world_size" not in known and "rate" in known
    assert (
        args_error(tmp_path, {"colour": 1})
        == f"--args ARGS: unknown entry 'colour'; known: {', '.join(known)}"
    )


def test_args_file_skips_what_the_original_and_a_distributed_run_recorded(tmp_path):
    """`args` (the original's own flag), `world_size` (ours) and nulls of any entry are left out."""
    path = write_args(
        tmp_path, {"args": "old.json", "world_size": 4, "colour": None, "rate": None, "seed": 5}
    )
    config = resolve_config(["--out", "x", "--args", path])
    assert config.run.seed == 5 and config.params.rate == 0.001 and config.run.world_size == 1


def test_zero_size_in_an_args_file_means_native_size_as_in_the_original(tmp_path):
    path = write_args(tmp_path, {"val_resize_to": 0, "device": 1})
    config = resolve_config(["--out", "x", "--args", path])
    assert config.run.val_resize_to is None and config.run.device == "cuda:1"
    assert resolve_config(["--out", "x", "--val_resize_to", "0"]).run.val_resize_to is None


def test_entries_after_a_null_one_are_read(tmp_path):
    path = write_args(tmp_path, {"val_resize_to": None, "seed": 5})
    config = resolve_config(["--out", "x", "--args", path])
    assert config.run.val_resize_to is None and config.run.seed == 5


@pytest.mark.parametrize("value, demo", [(True, True), (False, False), ("yes", False), (1, False)])
def test_demo_entry_of_an_args_file_is_on_only_when_true(tmp_path, value, demo):
    """A run's own args.json records `demo`; only `true` turns the demo preset's world on again."""
    path = write_args(tmp_path, {"demo": value, "seed": 5})
    config = resolve_config(["--out", "x", "--args", path])
    assert config.run.demo is demo and config.run.seed == 5


def test_object_and_boolean_entries_of_an_args_file_are_taken(tmp_path):
    path = write_args(tmp_path, {"gan_config": {"G_ch": 4}, "skip_bad_files": True, "maxes_filter": False})
    config = resolve_config(["--out", "x", "--args", path])
    assert config.run.gan_config == {"G_ch": 4} and config.run.skip_bad_files is True
    assert config.params.maxes_filter is False


def test_gan_config_may_be_a_json_file(tmp_path):
    (tmp_path / "config.json").write_text('{"G_ch": 4}')
    assert resolve_config(["--out", "x", "--gan_config", str(tmp_path / "config.json")]).run.gan_config == {
        "G_ch": 4
    }


def test_gan_config_that_is_not_an_object_is_named(capsys):
    with pytest.raises(SystemExit):
        resolve_config(["--out", "x", "--gan_config", "[1, 2]"])
    assert "argument --gan_config: expected a JSON object, got '[1, 2]'" in capsys.readouterr().err


def test_debug_flag_changes_no_setting():
    assert resolve_config(["--out", "x", "--debug"]) == resolve_config(["--out", "x"])


def test_config_records_the_mask_synthesis_by_its_lower_case_name():
    assert resolve_config(["--out", "x"]).to_json()["synthezing"] == "lighting"
    assert resolve_config(["--out", "x", "--synthezing", "mean_thr"]).to_json()["synthezing"] == "mean_thr"


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "--out is required: the folder for checkpoints, weights and scores"),
        (
            ["--out", "x", "--val_images_dirs", "a", "b", "--val_masks_dirs", "c"],
            "--val_images_dirs and --val_masks_dirs need the same number of folders",
        ),
    ],
)
def test_missing_and_unmatched_flags_are_explained(argv, message):
    with pytest.raises(InputError) as error:
        resolve_config(argv)
    assert str(error.value) == message


HELP_TEXTS = [
    "usage: train_segmentation.py --out DIR [--demo | --gan_weights FILE --bg_direction FILE ...] [options]",
    "Train a U-Net for object segmentation on GAN-synthesised image/mask pairs, then evaluate it on "
    "image/mask folders. See docs/training.md.",
    "--args JSON a run's args.json (this project's or the original's)",
    "--demo the embedded demo world: runs anywhere, in minutes on a CPU (docs/demo.md)",
    "--faithful the original's training: 94 samples per step, 12,001 updates, train-mode test loss, fp32",
    "--gen_devices GPU [GPU ...] the original's generator GPUs: k of them make the batch "
    "k × (batch_size // k) samples",
    "inputs, outputs and hardware:",
    "training (the method's parameters):",
]


def test_help_shows_usage_description_groups_and_the_top_level_flags():
    shown = " ".join(build_parser().format_help().split())
    for text in HELP_TEXTS:
        assert text in shown
    inputs, training = shown.index("inputs, outputs and hardware:"), shown.index("training (")
    assert inputs < shown.index("--out DIR ", inputs) < training < shown.index("--rate ", training)


def test_a_refused_resume_names_every_change_and_both_ways_out(tmp_path):
    path = tmp_path / "run" / "checkpoint.pth"
    saved = resolve_config(["--out", str(tmp_path / "run")])
    changed = resolve_config(["--out", str(tmp_path / "run"), "--rate", "0.01", "--seed", "5"])
    with pytest.raises(InputError) as refused:
        check_resumable({"config": saved.to_json(), "step": 3}, changed, path)
    assert str(refused.value) == (
        f"{path} comes from a run with other settings (seed: 2 -> 5; rate: 0.001 -> 0.01); rerun with the "
        f"same settings (e.g. --args {tmp_path / 'run' / 'args.json'}) to continue it, or delete {path} "
        "(or move it away) to start the run over from step 0, or pass another --out"
    )


def test_a_finished_run_may_be_continued_to_its_own_length():
    config = resolve_config(["--out", "run", "--n_steps", "5"])
    check_resumable({"config": config.to_json(), "step": 5}, config, "run/checkpoint.pth")
