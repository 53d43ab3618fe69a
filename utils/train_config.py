"""Flags of `train_segmentation.py` as dataclasses, and their resolution from the command line.

Precedence, lowest first: dataclass defaults, the `--demo` preset, the `--args` JSON file,
flags given on the command line.
"""

import argparse
import dataclasses
import json
from dataclasses import dataclass, field, fields
from pathlib import Path

from gan_mask_gen import MaskSynthesizing

BIGBIGAN_WEIGHTS = "BigGAN/weights/BigBiGAN_x1.pth"
BIGBIGAN_DIRECTION = "BigGAN/weights/bg_direction.pth"


def parse_bool(text: str) -> bool:
    lowered = str(text).lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


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


def optional_int(text: str) -> int | None:
    return None if str(text).lower() in ("none", "0") else int(text)


@dataclass
class SegmentationTrainParams:
    """The method's training parameters (defaults of the original work)."""

    rate: float = 0.001
    steps_per_rate_decay: int = 8000
    rate_decay: float = 0.2
    n_steps: int = 12000
    latent_shift_r: float = 5.0
    batch_size: int = 95
    steps_per_log: int = 100
    steps_per_checkpoint_save: int = 1000
    steps_per_validation: int = 1000
    test_samples_count: int = 1000
    synthezing: MaskSynthesizing = MaskSynthesizing.LIGHTING
    mask_size_up: float = 0.5
    connected_components: bool = True
    maxes_filter: bool = True


@dataclass
class RunConfig:
    """Where data and weights come from, where outputs go, and on what hardware."""

    out: str = ""
    gan_weights: str = BIGBIGAN_WEIGHTS
    gan_config: dict = field(default_factory=dict, metadata={"parse": parse_json_object})
    bg_direction: str = BIGBIGAN_DIRECTION
    z: str | None = field(default=None, metadata={"parse": str})
    z_noise: float = 0.0
    val_images_dirs: list[str] = field(default_factory=list, metadata={"alias": "--val_images_dir"})
    val_masks_dirs: list[str] = field(default_factory=list, metadata={"alias": "--val_masks_dir"})
    val_resize_to: int | None = field(default=128, metadata={"parse": optional_int})
    unet_width: int = 64
    device: str | None = field(default=None, metadata={"parse": str})
    seed: int = 2
    demo: bool = False


@dataclass
class TrainConfig:
    run: RunConfig
    params: SegmentationTrainParams

    def to_json(self) -> dict:
        """Flat `flag: value` dict, readable back by `--args`."""
        flat = {**dataclasses.asdict(self.run), **dataclasses.asdict(self.params)}
        flat["synthezing"] = self.params.synthezing.name.lower()
        return flat


CONVERTERS = {bool: parse_bool, int: int, float: float, str: str, MaskSynthesizing: parse_synthezing}


def flag_fields() -> dict[str, dataclasses.Field]:
    all_fields = [*fields(RunConfig), *fields(SegmentationTrainParams)]
    return {f.name: f for f in all_fields if f.name != "demo"}


def flag_converter(f: dataclasses.Field):
    return f.metadata.get("parse") or CONVERTERS[type(f.default)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Train a U-Net for object segmentation on GAN-synthesised image/mask pairs.",
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("--args", help="JSON file with any of these flags (as args.json of a run)")
    parser.add_argument("--demo", action="store_true", help="use the embedded demo world (see README)")
    hints = {
        "out": "output folder (required); rerunning into it resumes from its checkpoint",
        "gan_config": "JSON object or .json file overriding the generator config",
        "z": "embeddings matrix [N, dim_z] (.npy or .pt) to sample latents from",
        "val_resize_to": "short side the validation images are resized to (none: native size)",
        "unet_width": "U-Net base width (64 is the published model)",
        "device": "cpu, cuda, cuda:1 ... (default: CUDA if available)",
    }
    for f in flag_fields().values():
        if "alias" in f.metadata:
            parser.add_argument(f"--{f.name}", f.metadata["alias"], nargs="+", help="one or more folders")
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if isinstance(default, MaskSynthesizing):
            default = default.name.lower()
        help_text = f"{hints.get(f.name, '')} (default: {default})".strip()
        parser.add_argument(f"--{f.name}", type=flag_converter(f), help=help_text)
    return parser


def _coerce(name: str, value, source: str):
    """A value from a JSON file, converted like the command-line flag of the same name."""
    known = flag_fields()
    if name == "demo":
        return bool(value)
    if name not in known:
        raise ValueError(f"{source}: unknown entry {name!r}; known: {', '.join(sorted(known))}")
    if value is None or "alias" in known[name].metadata or isinstance(value, dict):
        return value
    return flag_converter(known[name])(value)


def resolve_config(argv: list[str], demo_preset=None) -> TrainConfig:
    """The configuration of a run from its command line; `demo_preset()` supplies `--demo` values."""
    parser = build_parser()
    given = vars(parser.parse_args(argv))
    merged: dict = {}
    if given.pop("demo", False):
        merged.update(demo_preset())
        merged["demo"] = True
    args_file = given.pop("args", None)
    if args_file is not None:
        try:
            from_file = json.loads(Path(args_file).read_text())
        except (OSError, json.JSONDecodeError) as error:
            parser.error(f"--args {args_file}: cannot read a JSON object ({error})")
        try:
            merged.update({k: _coerce(k, v, f"--args {args_file}") for k, v in from_file.items()})
        except (ValueError, argparse.ArgumentTypeError) as error:
            parser.error(f"--args {args_file}: {error}")
    merged.update(given)
    if not merged.get("out"):
        parser.error("--out is required: the folder for checkpoints, weights and scores")
    if len(merged.get("val_images_dirs", [])) != len(merged.get("val_masks_dirs", [])):
        parser.error("--val_images_dirs and --val_masks_dirs need the same number of folders")
    run_names = {f.name for f in fields(RunConfig)}
    run = RunConfig(**{k: v for k, v in merged.items() if k in run_names})
    params = SegmentationTrainParams(**{k: v for k, v in merged.items() if k not in run_names})
    return TrainConfig(run, params)
