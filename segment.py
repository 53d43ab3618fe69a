r"""Segment your own images with a trained U-Net: one 0/255 mask PNG per image, at the image's size.

    python segment.py --weights pretrained/u_net_imagenet.pth --images photos --out photos_masks --overlay

--out mirrors the folder tree of --images: `<out>/<folder>/<stem>.png` (the mask),
`<out>/probabilities/...` (--probabilities) and `<out>/overlays/...` (--overlay). The mask is exactly
train_segmentation.py's thresholded prediction (`postprocessing.Threshold`). Bad flags, unreadable weights,
an --out inside --images and two images writing one file are refused before anything is written;
undecodable images are skipped with a warning. docs/evaluation.md has the details.
"""

import argparse
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image
from torchvision.utils import save_image

from data import image_files, image_size, read_rgb, to_signed_tensor
from postprocessing import (
    MIN_NATIVE_SIDE,
    Model,
    Refiner,
    SegmentationInference,
    max_megapixels_flag,
    refuse_oversized,
)
from refinement import make_refiner, refine_flag
from UNet.unet_load import load_unet
from utils.checks import at_least, check_fields, optional
from utils.cli import add_debug_flag, run_cli
from utils.errors import InputError, InputProblems
from utils.flags import add_flags, device_flag, flag, from_namespace, optional_int, threads_flag
from utils.progress import progress_bar
from visualization import PREDICTION_COLOR, overlay_masks

# Where each kind of output goes, below --out; masks mirror the input tree at the top.
OUTPUT_FOLDERS = {"mask": "", "probability": "probabilities", "overlay": "overlays"}
Outputs = dict[str, Path]


def threshold_range(value) -> str | None:
    """A probability threshold in (0, 1]: 0 would mark everything, above 1 nothing."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
        return "must be a number above 0 and at most 1"
    return None


@dataclass
class SegmentConfig:
    """A run's inputs: the paths and the two switches are plain arguments, the rest `add_flags` flags."""

    weights: Path
    images: Path
    out: Path
    thr: float = flag(0.5, "foreground where the probability >= THR, in (0, 1]", check=threshold_range)
    resize_to: int | None = flag(
        128,
        f"shorter side the U-Net sees, at least {MIN_NATIVE_SIDE} (none: native size), as --val_resize_to",
        parse=optional_int,
        check=optional(at_least(MIN_NATIVE_SIDE)),
        metavar="PX",
    )
    batch_size: int = flag(16, "images of equal size segmented together", check=at_least(1))
    max_megapixels: float = max_megapixels_flag()
    refine: str = refine_flag()
    device: str | None = device_flag()
    threads: int | None = threads_flag()
    overlay: bool = False
    probabilities: bool = False
    overwrite: bool = False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="segment.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--weights",
        type=Path,
        required=True,
        metavar="FILE",
        help="U-Net weights: a released state dict, segmentation.pth or checkpoint.pth",
    )
    parser.add_argument(
        "--images", type=Path, required=True, metavar="DIR", help="folder of images, searched recursively"
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="DIR", help="output folder, outside --images"
    )
    parser.add_argument("--overlay", action="store_true", help="also write overlays to <out>/overlays")
    parser.add_argument(
        "--probabilities",
        action="store_true",
        help="also write 8-bit probability maps to <out>/probabilities",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace files an earlier run wrote into --out",
    )
    add_debug_flag(parser)
    add_flags(parser, SegmentConfig, defaults=True)
    return parser


def check_folders(images: Path, out: Path) -> None:
    """Refuse an --out that overlaps --images, or that is a file."""
    images_dir, out_dir = images.resolve(), out.resolve()
    if out_dir == images_dir or images_dir in out_dir.parents or out_dir in images_dir.parents:
        raise InputError(
            f"--out {out} and --images {images} overlap: write to a folder that neither is, contains nor "
            "lies in the images folder, so that no image is overwritten and a rerun does not segment masks"
        )
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file: name a folder")


def plan_outputs(config: SegmentConfig) -> dict[Path, Outputs]:
    """The files each image under --images writes, by kind; refuses overlapping folders and collisions."""
    check_folders(config.images, config.out)
    wanted = {"mask": True, "probability": config.probabilities, "overlay": config.overlay}
    kinds = [kind for kind, on in wanted.items() if on]
    plan = {}
    for image in image_files(config.images):
        relative = image.relative_to(config.images).with_suffix(".png")
        plan[image] = {kind: config.out / OUTPUT_FOLDERS[kind] / relative for kind in kinds}
    refuse_collisions(plan)
    if not config.overwrite:
        refuse_earlier_outputs(plan, config.out)
    return plan


def refuse_earlier_outputs(plan: dict[Path, Outputs], out: Path) -> None:
    """Nothing an earlier run wrote is replaced unasked."""
    earlier = [path for outputs in plan.values() for path in outputs.values() if path.exists()]
    if earlier:
        raise InputError(
            f"--out {out} already holds {len(earlier)} of the files this run would write (e.g. "
            f"{earlier[0]}): pass --overwrite to replace them, or choose another --out"
        )


def refuse_collisions(plan: dict[Path, Outputs]) -> None:
    """Name the first two images that would write the same file, rather than let one overwrite the other."""
    writers: dict[Path, Path] = {}
    for image, outputs in plan.items():
        for path in outputs.values():
            if path in writers:
                raise InputError(
                    f"{writers[path]} and {image} would both be written to {path} (outputs are named by "
                    "the image's stem, and probabilities/ and overlays/ hold those outputs): rename one"
                )
            writers[path] = image


def _reason(error: Exception) -> str:
    return str(error) or type(error).__name__


def warn_unreadable(path: Path, reason: str) -> None:
    warnings.warn(f"skipped {path}: it cannot be read as an image ({reason})", stacklevel=2)


def size_batches(files: list[Path], batch_size: int) -> tuple[list[list[Path]], dict[Path, str]]:
    """Files grouped by image size into batches of at most `batch_size`, so that they can be stacked
    without holding more than one batch in memory; and why each file whose header is unreadable fails."""
    by_size: dict[tuple[int, int], list[Path]] = {}
    unreadable = {}
    for path in files:
        try:
            by_size.setdefault(image_size(path), []).append(path)
        except Exception as error:  # whatever the decoder raises, the file is unusable
            unreadable[path] = _reason(error)
    batches = [
        group[i : i + batch_size] for group in by_size.values() for i in range(0, len(group), batch_size)
    ]
    return batches, unreadable


def read_images(files: list[Path]) -> tuple[dict[Path, torch.Tensor], dict[Path, str]]:
    """Images `[3, H, W]` in [-1, 1] by path, decoded completely; and why each that fails to decode fails."""
    images, unreadable = {}, {}
    for path in files:
        try:
            images[path] = to_signed_tensor(read_rgb(path))
        except Exception as error:  # truncated or damaged pixel data shows only here
            unreadable[path] = _reason(error)
    return images, unreadable


def predict_masks(
    model: Model,
    images: torch.Tensor,
    resize_to: int | None = 128,
    thr: float = 0.5,
    refine: Refiner | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Probabilities `[B, H, W]` and bool masks `probability >= thr` of images `[B, 3, H, W]` in [-1, 1]:
    without `refine` the masks are `Threshold(model, thr, resize_to)`'s; the maps come along for saving
    or scoring."""
    probabilities = SegmentationInference(model, resize_to, refine)(images)
    return probabilities, probabilities >= thr


def save_gray(values: torch.Tensor, path: Path) -> None:
    """A `[H, W]` map in [0, 1] as an 8-bit gray PNG, rounded (exact for multiples of 1/255)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray((values.float() * 255).round().to(torch.uint8).numpy()).save(path)


def save_outputs(
    outputs: Outputs, image: torch.Tensor, probability: torch.Tensor, mask: torch.Tensor
) -> None:
    """The files of one image (CPU tensors): mask, and probability map and overlay when planned."""
    save_gray(mask, outputs["mask"])
    if "probability" in outputs:
        save_gray(probability, outputs["probability"])
    if "overlay" in outputs:
        outputs["overlay"].parent.mkdir(parents=True, exist_ok=True)
        save_image(overlay_masks(image[None], mask[None], PREDICTION_COLOR)[0], outputs["overlay"])


def segment_batch(
    model: Model,
    images: dict[Path, torch.Tensor],
    plan: dict[Path, Outputs],
    config: SegmentConfig,
    refine: Refiner | None = None,
) -> None:
    """Predict images of one size together and write their files."""
    batch = torch.stack(list(images.values()))
    probabilities, masks = predict_masks(model, batch, config.resize_to, config.thr, refine)
    for path, image, probability, mask in zip(images, batch, probabilities.cpu(), masks.cpu(), strict=True):
        save_outputs(plan[path], image, probability, mask)


def segment_all(
    model: Model, plan: dict[Path, Outputs], config: SegmentConfig
) -> tuple[int, dict[Path, str]]:
    """Segment every planned image; returns how many were segmented, and why each skipped file failed."""
    batches, unreadable = size_batches(list(plan), config.batch_size)
    for path, reason in unreadable.items():
        warn_unreadable(path, reason)
    segmented = 0
    refine = make_refiner(config.refine)
    with progress_bar(total=len(plan), desc="segmenting", unit="image") as bar:
        bar.update(len(unreadable))
        for files in batches:
            images, damaged = read_images(files)
            for path, reason in damaged.items():
                warn_unreadable(path, reason)
            if images:
                segment_batch(model, images, plan, config, refine)
            unreadable |= damaged
            segmented += len(images)
            bar.update(len(files))
    return segmented, unreadable


def main(argv: list[str] | None = None) -> int:
    """Check every input, then segment and write; returns the number of images segmented."""
    args = build_parser().parse_args(argv)
    config = from_namespace(SegmentConfig, args)
    check_fields(config)
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    problems = InputProblems()
    model = problems.check(lambda: load_unet(config.weights, config.device))
    plan = problems.check(lambda: plan_outputs(config))
    problems.raise_any()
    refuse_oversized(list(plan), config.resize_to, config.refine != "none", config.max_megapixels)
    segmented, unreadable = segment_all(model, plan, config)
    if not segmented:
        raise InputError(
            f"none of the {len(plan)} image files under {config.images} can be read (each is named in a "
            "warning above): nothing was written"
        )
    skipped = f"; skipped {len(unreadable)} unreadable file(s), named above" if unreadable else ""
    print(f"segmented {segmented} of {len(plan)} images into {config.out}{skipped}")
    return segmented


if __name__ == "__main__":
    sys.exit(run_cli(main))
