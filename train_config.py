"""Flags of `train_segmentation.py` as dataclasses, and their resolution from the command line.

Precedence, lowest first: dataclass defaults, the `--faithful` and `--demo` presets, the `--args`
JSON file, flags given on the command line. Every value is type- and range-checked here, before the
run touches its output folder. `--args` also takes the `args.json` of the original implementation.
"""

import argparse
import dataclasses
import json
import sys
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path

from gan_mask_gen import MaskSynthesizing
from postprocessing import MIN_NATIVE_SIDE
from refinement import refine_flag
from utils.checkpoint import read_checkpoint, start_over_hint
from utils.checks import at_least, check_fields, non_negative, nonzero, one_of, optional, positive
from utils.cli import add_debug_flag
from utils.errors import InputError
from utils.flags import (
    add_flags,
    device_flag,
    field_default,
    flag,
    flag_converter,
    optional_int,
    threads_flag,
)
from utils.precision import PRECISIONS

BIGBIGAN_WEIGHTS = "BigGAN/weights/BigBiGAN_x1.pth"
BIGBIGAN_DIRECTION = "BigGAN/weights/bg_direction.pth"

# The original's default run: `--gen_devices 0 1` split the batch of 95 into 2 × 47 = 94 samples per
# step, its loop ran steps 0..n_steps inclusive (12,001 updates), its synthetic test loss ran the U-Net
# in train mode (batch statistics, running averages updated by the test batches), all in float32.
# `--faithful --precision bf16` keeps the rest and trains under bf16 autocast (faster on GPUs).
FAITHFUL_PRESET = {"batch_size": 94, "n_steps": 12001, "synthetic_loss_train_mode": True, "precision": "fp32"}


def parse_synthezing(text: str | MaskSynthesizing) -> MaskSynthesizing:
    if isinstance(text, MaskSynthesizing):
        return text
    try:
        return MaskSynthesizing[str(text).upper()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"expected lighting or mean_thr, got {text!r}") from None


def parse_json_object(text: str) -> dict:
    """A JSON object given inline or as the path of a .json file."""
    try:
        value = json.loads(Path(text).read_text() if Path(text).suffix == ".json" else text)
    except (json.JSONDecodeError, OSError) as error:
        raise argparse.ArgumentTypeError(f"not a JSON object or .json file: {text!r} ({error})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


@dataclass
class SegmentationTrainParams:
    """The method's training parameters (flag values of the original work; see FAITHFUL_PRESET)."""

    rate: float = flag(0.001, "Adam learning rate", check=positive)
    steps_per_rate_decay: int = flag(
        8000, "multiply the rate by --rate_decay every this many steps", check=at_least(1)
    )
    rate_decay: float = flag(0.2, "factor of each rate decay", check=positive)
    n_steps: int = flag(12000, "training steps (updates of the U-Net)", check=at_least(1))
    latent_shift_r: float = flag(
        5.0, "shift radius r: masks compare G(z) with G(z + r d); negative: the other end", check=nonzero
    )
    batch_size: int = flag(95, "synthetic image/mask pairs per step", check=at_least(1))
    steps_per_log: int = flag(100, "log the synthetic test loss every this many steps", check=at_least(1))
    steps_per_checkpoint_save: int = flag(
        1000, "save checkpoint.pth every this many steps", check=at_least(1)
    )
    steps_per_validation: int = flag(
        1000, "score the first validation folder every this many steps", check=at_least(1)
    )
    test_samples_count: int = flag(1000, "size of the fixed synthetic test set", check=at_least(1))
    synthezing: MaskSynthesizing = flag(
        MaskSynthesizing.LIGHTING,
        "mask = pixels brighter after the shift (lighting) or than the shifted image's mean (mean_thr)",
        metavar="{lighting,mean_thr}",
        parse=parse_synthezing,
    )
    mask_size_up: float = flag(
        0.5, "drop masks covering this share of the image or more (1 or more: keep all)", check=positive
    )
    connected_components: bool = flag(True, "keep 8-connected mask components above 0.2 of the largest")
    maxes_filter: bool = flag(True, "drop samples whose smoothed 12-bin histogram has one maximum")
    synthetic_loss_train_mode: bool = flag(
        False, "compute the synthetic test loss in train mode, as the original (moves BatchNorm statistics)"
    )


@dataclass
class RunConfig:
    """Where data and weights come from, where outputs go, and on what hardware."""

    out: str = flag("", "output folder; rerunning into it continues from its checkpoint", metavar="DIR")
    gan_weights: str = flag(BIGBIGAN_WEIGHTS, "generator state dict (BigGAN-PyTorch layout)", metavar="FILE")
    gan_config: dict = flag(
        {},
        "JSON object or .json file overriding entries of the BigBiGAN generator config",
        parse=parse_json_object,
        metavar="JSON",
        default_text="BigBiGAN at 128 px",
    )
    bg_direction: str = flag(
        BIGBIGAN_DIRECTION, "latent direction, a tensor of dim_z elements", metavar="FILE"
    )
    z: str | None = flag(
        None,
        "embeddings [N, dim_z] (.npy or .pt) to draw latents from",
        parse=str,
        metavar="FILE",
        default_text="N(0, I)",
    )
    z_noise: float = flag(0.0, "std of Gaussian noise added to latents drawn from --z", check=non_negative)
    val_images_dirs: list[str] = flag(
        [],
        "image folders to evaluate on (ECSSD/images ...)",
        alias="--val_images_dir",
        nargs="+",
        metavar="DIR",
        default_text="none",
    )
    val_masks_dirs: list[str] = flag(
        [],
        "their mask folders, paired by file-name stem",
        alias="--val_masks_dir",
        nargs="+",
        metavar="DIR",
        default_text="none",
    )
    val_resize_to: int | None = flag(
        128,
        "short side of evaluation inputs, at least 16 (none or 0: native size, as the original's None)",
        parse=optional_int,
        check=optional(at_least(MIN_NATIVE_SIDE)),
        metavar="PX",
    )
    skip_bad_files: bool = flag(
        False, "leave out validation pairs whose files cannot be decoded (with a warning)"
    )
    refine: str = refine_flag()
    unet_width: int = flag(64, "U-Net base width (64 is the published model)", check=at_least(1))
    device: str | None = device_flag()
    threads: int | None = threads_flag()
    precision: str | None = flag(
        None,
        "fp32, or bf16 autocast for the generator and the U-Net's training steps",
        parse=str,
        check=optional(one_of(PRECISIONS)),
        metavar="{fp32,bf16}",
        default_text="bf16 on CUDA and on CPUs with native bf16, else fp32",
    )
    seed: int = flag(2, "seed of the latents and the U-Net's initialisation", check=at_least(0))
    demo: bool = False
    # Processes of a torchrun launch: recorded, not set (it comes from the launch).
    world_size: int = 1


@dataclass
class TrainConfig:
    run: RunConfig
    params: SegmentationTrainParams

    def to_json(self) -> dict:
        """Flat `flag: value` dict, readable back by `--args`."""
        flat = {**dataclasses.asdict(self.run), **dataclasses.asdict(self.params)}
        flat["synthezing"] = self.params.synthezing.name.lower()
        return flat


def flag_fields() -> dict[str, dataclasses.Field]:
    all_fields = [*fields(RunConfig), *fields(SegmentationTrainParams)]
    return {f.name: f for f in all_fields if f.name not in ("demo", "world_size")}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train_segmentation.py",
        usage="%(prog)s --out DIR [--demo | --gan_weights FILE --bg_direction FILE ...] [options]",
        description="Train a U-Net for object segmentation on GAN-synthesised image/mask pairs, then "
        "evaluate it on image/mask folders. See docs/training.md.",
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("--args", metavar="JSON", help="a run's args.json (this project's or the original's)")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="the embedded demo world: runs anywhere, in minutes on a CPU (docs/demo.md)",
    )
    parser.add_argument(
        "--faithful",
        action="store_true",
        help="the original's training: 94 samples per step, 12,001 updates, train-mode test loss, fp32",
    )
    parser.add_argument(
        "--gen_devices",
        type=int,
        nargs="+",
        metavar="GPU",
        help="the original's generator GPUs: k of them make the batch k × (batch_size // k) samples",
    )
    add_debug_flag(parser)
    add_flags(parser.add_argument_group("inputs, outputs and hardware"), RunConfig)
    add_flags(parser.add_argument_group("training (the method's parameters)"), SegmentationTrainParams)
    return parser


def _json_type_error(f: dataclasses.Field, value) -> str | None:
    """Why a JSON value cannot be the flag `f`, or None. Strings are parsed as on the command line."""
    default = field_default(f)
    if isinstance(value, str) and not isinstance(default, list | dict):
        return None
    if isinstance(default, list):
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return None
        return "expected a list of folder paths"
    if isinstance(default, dict):
        return None if isinstance(value, dict) else "expected a JSON object"
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "expected true or false"
    if f.name == "device":
        return None if isinstance(value, int) and not isinstance(value, bool) else "expected a device name"
    if isinstance(default, int):
        return None if isinstance(value, int) and not isinstance(value, bool) else "expected a whole number"
    if isinstance(default, float):
        return None if isinstance(value, int | float) and not isinstance(value, bool) else "expected a number"
    return "expected a string"


def _from_json(name: str, value, source: str):
    """A value from an args file, checked and converted like the command-line flag of the same name."""
    known = flag_fields()
    if name not in known:
        raise InputError(f"{source}: unknown entry {name!r}; known: {', '.join(sorted(known))}")
    if isinstance(value, list) and "alias" in known[name].metadata:
        value = [item for item in value if item is not None]  # the original wrote [null] for none
    problem = _json_type_error(known[name], value)
    if problem:
        raise InputError(f"{source}: entry {name!r} is {json.dumps(value)}: {problem}")
    if isinstance(value, str) or name in ("device", "val_resize_to"):
        try:
            return flag_converter(known[name])(value)
        except (ValueError, argparse.ArgumentTypeError) as error:
            raise InputError(f"{source}: entry {name!r} is {json.dumps(value)}: {error}") from None
    return value


def _admits_none(name: str) -> bool:
    f = flag_fields().get(name)
    return f is not None and isinstance(f.type, types.UnionType) and type(None) in typing.get_args(f.type)


def read_args_file(path: str) -> dict:
    """The flags of an `args.json`, ours or the original's.

    `null` is the value None where a flag can be None (`val_resize_to`: native size) and the default
    elsewhere (the original wrote `null` for every flag left unset).
    """
    source = f"--args {path}"
    try:
        from_file = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise InputError(f"{source}: cannot read a JSON object ({error})") from None
    if not isinstance(from_file, dict):
        raise InputError(f"{source}: expected a JSON object of flag values")
    merged = {}
    for name, value in from_file.items():
        if name in ("args", "world_size") or (value is None and not _admits_none(name)):
            continue
        if value is None:
            merged[name] = None
            continue
        if name == "demo":
            merged["demo"] = value is True
        elif name == "gen_devices":
            if not isinstance(value, list) or not value or not all(isinstance(v, int) for v in value):
                raise InputError(
                    f"{source}: entry 'gen_devices' is {json.dumps(value)}: expected GPU numbers"
                )
            merged["gen_devices"] = value
        else:
            merged[name] = _from_json(name, value, source)
    return merged


def _apply_gen_devices(merged: dict, gen_devices: list[int]) -> None:
    """The original generated k = len(gen_devices) batches of batch_size // k per step, one per GPU."""
    count = len(gen_devices)
    batch_size = merged.get("batch_size", SegmentationTrainParams.batch_size)
    merged["batch_size"] = count * (batch_size // count)
    print(
        f"note: gen_devices {gen_devices}: the original generated {count} × {batch_size // count} = "
        f"{merged['batch_size']} samples per step on {count} GPUs; here one process generates them "
        f"(--batch_size {merged['batch_size']})",
        file=sys.stderr,
    )


def resolve_config(argv: list[str], demo_preset=None) -> TrainConfig:
    """The configuration of a run from its command line; `demo_preset()` supplies `--demo` values.

    Raises `InputError` naming every bad value; argparse itself reports unparsable flags.
    """
    parser = build_parser()
    given = vars(parser.parse_args(argv))
    given.pop("debug", None)
    merged: dict = {}
    if given.pop("faithful", False):
        merged.update(FAITHFUL_PRESET)
    if given.pop("demo", False):
        merged.update(demo_preset())
        merged["demo"] = True
    args_file = given.pop("args", None)
    if args_file is not None:
        merged.update(read_args_file(args_file))
    merged.update(given)
    gen_devices = merged.pop("gen_devices", None)
    if gen_devices is not None:
        _apply_gen_devices(merged, gen_devices)
    if not merged.get("out"):
        raise InputError("--out is required: the folder for checkpoints, weights and scores")
    if len(merged.get("val_images_dirs", [])) != len(merged.get("val_masks_dirs", [])):
        raise InputError("--val_images_dirs and --val_masks_dirs need the same number of folders")
    run_names = {f.name for f in fields(RunConfig)}
    run = RunConfig(**{k: v for k, v in merged.items() if k in run_names})
    params = SegmentationTrainParams(**{k: v for k, v in merged.items() if k not in run_names})
    check_fields(run, params)
    return TrainConfig(run, params)


# Flags that may differ when a run is continued: they change where results go, how often they are
# logged, what is evaluated or how far training goes, not the training itself.
RESUMABLE_CHANGES = (
    "out",
    "n_steps",
    "steps_per_log",
    "steps_per_validation",
    "steps_per_checkpoint_save",
    "val_images_dirs",
    "val_masks_dirs",
    "val_resize_to",
    "skip_bad_files",
    "refine",
    "device",
    "threads",
    "precision",
    "demo",
)


def resume_changes(saved: dict, config: TrainConfig) -> tuple[list[str], list[str]]:
    """(refused, allowed) differences `flag: saved -> now` between a checkpoint's config and `config`.

    Entries the checkpoint lacks (written by an older version) count as their defaults. With
    `synthetic_loss_train_mode` the test batches move BatchNorm statistics, so then the logging
    interval and the test set size are part of the training too.
    """
    current = config.to_json()
    defaults = TrainConfig(RunConfig(), SegmentationTrainParams()).to_json()
    resumable = set(RESUMABLE_CHANGES)
    if config.params.synthetic_loss_train_mode:
        resumable -= {"steps_per_log"}
    else:
        resumable |= {"test_samples_count"}
    refused, allowed = [], []
    for name, value in current.items():
        before = saved.get(name, defaults[name])
        if before != value:
            change = f"{name}: {json.dumps(before)} -> {json.dumps(value)}"
            (allowed if name in resumable else refused).append(change)
    return refused, allowed


def check_resumable(checkpoint: dict, config: TrainConfig, path: str | Path) -> None:
    """Refuse to continue `checkpoint` with settings that change the training; note harmless changes."""
    path = Path(path)
    refused, allowed = resume_changes(checkpoint["config"], config)
    if checkpoint["step"] > config.params.n_steps:
        refused.append(
            f"n_steps: the checkpoint is at step {checkpoint['step']}, beyond {config.params.n_steps}"
        )
    if refused:
        raise InputError(
            f"{path} comes from a run with other settings ({'; '.join(refused)}); rerun with the same "
            f"settings (e.g. --args {path.parent / 'args.json'}) to continue it, or {start_over_hint(path)}"
        )
    if allowed:
        print(f"note: continuing {path} with changed settings: {'; '.join(allowed)}", file=sys.stderr)


def read_resumable_checkpoint(path: str | Path, config: TrainConfig) -> dict | None:
    """The checkpoint in `path` if there is one and `config` may continue it (see `check_resumable`)."""
    checkpoint = read_checkpoint(path)
    if checkpoint is not None:
        check_resumable(checkpoint, config, path)
    return checkpoint
