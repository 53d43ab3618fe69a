"""Flag resolution of train_segmentation.py: defaults, --args files, overrides, clear errors."""

import json

import pytest

from gan_mask_gen import MaskSynthesizing
from utils.train_config import SegmentationTrainParams, resolve_config


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
        ([], "--out is required"),
        (["--out", "x", "--maxes_filter", "maybe"], "expected true or false"),
        (["--out", "x", "--synthezing", "shadows"], "expected lighting or mean_thr"),
        (["--out", "x", "--val_images_dir", "a"], "same number of folders"),
        (["--out", "x", "--gan_config", "{not json"], "not a JSON object"),
    ],
)
def test_bad_flags_are_named(argv, message, capsys):
    with pytest.raises(SystemExit):
        resolve_config(argv)
    assert message in capsys.readouterr().err


def test_unknown_entry_in_args_file_is_named(tmp_path, capsys):
    (tmp_path / "args.json").write_text(json.dumps({"out": "x", "n_stepz": 3}))
    with pytest.raises(SystemExit):
        resolve_config(["--args", str(tmp_path / "args.json")])
    assert "unknown entry 'n_stepz'" in capsys.readouterr().err
