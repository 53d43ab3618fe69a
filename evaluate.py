r"""Score trained U-Nets on image/mask folders: the paper's metrics and the SOD community's.

    python evaluate.py --weights results/demo/segmentation.pth \
        --images cache/demo/heldout/images --masks cache/demo/heldout/masks --resize_to none

`--weights` takes released U-Nets, a run's segmentation.pth or checkpoint.pth, and may be given several
times to compare models in one table; `--images`/`--masks` pairs likewise (paired by file-name stem).
This module is the one evaluation path of train_segmentation.py (score.json), segment.py and the
notebooks: each image's probability map is computed once, and from it `F_max` (`id`), `IoU` and `accuracy`
at 0.5 (`thr`) in the paper's conventions and, optionally, the SOD metrics in pysodmetrics' (`sod`), of
the map in 8 bits as a saved prediction. Conventions: docs/evaluation.md.
"""

import argparse
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from data import SegmentationDataset
from metrics import F_max, IoU, SODMetrics, accuracy, precision_recall_curves, probability_to_uint8
from postprocessing import Refiner, SegmentationInference, max_megapixels_flag, refuse_oversized
from refinement import make_refiner, refine_flag
from UNet.unet_load import load_unet
from utils.checks import at_least, check_fields, optional
from utils.cli import add_debug_flag, run_cli
from utils.device import resolve_device
from utils.errors import InputError, InputProblems
from utils.flags import add_flags, device_flag, flag, from_namespace, optional_int, parse_bool, threads_flag
from utils.progress import progress_bar
from utils.run_files import refuse_existing, write_json
from visualization import samples_grid, square_tiles

Batch = tuple[torch.Tensor, torch.Tensor]
THRESHOLD = 0.5


class ValidationSet:
    """A real image/mask folder pair, named after the folder holding them (e.g. ECSSD).

    Every file is decoded when the set is made, so a damaged one is named before anything runs.
    """

    def __init__(self, name: str, images_dir: str, masks_dir: str, skip_bad_files: bool = False):
        self.name = name
        self.dataset = SegmentationDataset(images_dir, masks_dir, crop=False, skip_bad_files=skip_bad_files)

    def batches(self, device: torch.device | str = "cpu") -> Iterable[Batch]:
        """The pairs one by one (sizes differ), streamed from disk."""
        loader = DataLoader(self.dataset, batch_size=1, shuffle=False)
        return ((image.to(device), mask.to(device)) for image, mask in loader)


def dataset_name(images_dir: str | Path) -> str:
    """ECSSD for ECSSD/images: the folder above the images folder names the dataset."""
    images_dir = Path(images_dir)
    return images_dir.resolve().parent.name or images_dir.name


def validation_sets(
    images_dirs: list[str],
    masks_dirs: list[str],
    skip_bad_files: bool = False,
    names: list[str] | None = None,
) -> list[ValidationSet]:
    """One set per folder pair, named by `names` or by `dataset_name` (made unique with trailing `_`)."""
    sets, taken = [], set()
    names = names or [dataset_name(images_dir) for images_dir in images_dirs]
    for name, images_dir, masks_dir in zip(names, images_dirs, masks_dirs, strict=True):
        while name in taken:
            name += "_"
        taken.add(name)
        sets.append(ValidationSet(name, images_dir, masks_dir, skip_bad_files))
    return sets


@dataclass
class Scores:
    """The scores of one model on one folder; `to_json()` is its entry in `score.json`."""

    F_max: float
    IoU: float
    accuracy: float
    sod: dict[str, float] | None = None
    per_image_iou: list[float] = field(default_factory=list)

    def to_json(self) -> dict:
        entry = {"id": {"F_max": self.F_max}, "thr": {"IoU": self.IoU, "accuracy": self.accuracy}}
        return entry if self.sod is None else {**entry, "sod": self.sod}


@torch.no_grad()
def evaluate_model(
    model: nn.Module,
    batches: Iterable[Batch],
    resize_to: int | None,
    sod: bool = True,
    desc: str = "evaluating",
    refine: Refiner | None = None,
) -> Scores:
    """All scores of `model` (put in eval mode) on `(images [B, 3, H, W] in [-1, 1], masks [B, H, W])`
    batches, in one pass; `resize_to` and `refine` as in `SegmentationInference`."""
    model.eval()
    inference = SegmentationInference(model, resize_to=resize_to, refine=refine)
    sod_metrics = SODMetrics() if sod else None
    precisions, recalls, ious, accuracies = [], [], [], []
    for images, masks in progress_bar(batches, desc=desc, leave=False):
        probabilities = inference(images)
        masks = torch.as_tensor(masks).to(probabilities.device)
        precision, recall = precision_recall_curves(masks, probabilities)
        precisions.append(precision)
        recalls.append(recall)
        predictions = probabilities >= THRESHOLD
        for mask, prediction, probability in zip(masks, predictions, probabilities, strict=True):
            ious.append(IoU(mask[None], prediction[None]))
            accuracies.append(accuracy(mask[None], prediction[None]))
            if sod_metrics is not None:
                sod_metrics.update(probability_to_uint8(probability), mask.bool().cpu().numpy())
    if not ious:
        raise ValueError("there were no images to evaluate")
    return Scores(
        F_max=F_max(torch.cat(precisions), torch.cat(recalls)),
        IoU=sum(ious) / len(ious),
        accuracy=sum(accuracies) / len(accuracies),
        sod=None if sod_metrics is None else sod_metrics.results(),
        per_image_iou=ious,
    )


@torch.no_grad()
def predictions_grid(
    model: nn.Module, pairs: Sequence[Batch], resize_to: int | None, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """A picture of `(image, mask)` pairs of any sizes, one column each: image, true mask and overlay,
    the model's probability and its mask at 0.5 (centre squares, see `visualization.square_tiles`)."""
    model.eval()
    inference = SegmentationInference(model, resize_to=resize_to)
    images, masks = [image for image, _ in pairs], [mask for _, mask in pairs]
    probabilities = [inference(image[None].to(device))[0] for image in images]
    return samples_grid(
        square_tiles(images), square_tiles(masks), square_tiles(probabilities), count=len(pairs)
    )


PAPER_COLUMNS = {"F_max": "F_max", "IoU": "IoU", "acc": "accuracy"}
SOD_COLUMNS = {
    "MAE": "MAE",
    "S_m": "S_measure",
    "E_max": "E_measure_max",
    "E_mean": "E_measure_mean",
    "E_adp": "E_measure_adaptive",
    "wF": "weighted_F",
    "F_max*": "F_measure_max",
    "F_mean*": "F_measure_mean",
    "F_adp*": "F_measure_adaptive",
}


@dataclass
class EvaluateOptions:
    resize_to: int | None = flag(
        128,
        "short side the images are resized to for the U-Net (none: native size), as --val_resize_to",
        parse=optional_int,
        check=optional(at_least(16)),
        metavar="PX",
    )
    sod: bool = flag(
        True, "also compute the SOD metrics (MAE, S-, E-, weighted F-, F-measure)", parse=parse_bool
    )
    skip_bad_files: bool = flag(False, "leave out pairs whose files cannot be decoded (with a warning)")
    refine: str = refine_flag()
    max_megapixels: float = max_megapixels_flag()
    device: str | None = device_flag()
    threads: int | None = threads_flag()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="evaluate.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--weights",
        action="append",
        required=True,
        metavar="FILE",
        help="U-Net weights; repeat to compare models",
    )
    parser.add_argument(
        "--images", action="append", required=True, metavar="DIR", help="an images folder; repeatable"
    )
    parser.add_argument(
        "--masks", action="append", required=True, metavar="DIR", help="its masks folder, in the same order"
    )
    parser.add_argument(
        "--names",
        nargs="+",
        metavar="NAME",
        help="dataset names (default: the folder above each images folder)",
    )
    parser.add_argument("--out", type=Path, metavar="JSON", help="also write the scores to this file")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace --out when it exists (default: refuse)"
    )
    add_debug_flag(parser)
    add_flags(parser, EvaluateOptions, defaults=True)
    return parser


def format_table(results: dict[str, dict[str, Scores]], sod: bool) -> str:
    """One row per model and dataset; columns marked * follow pysodmetrics, the others the paper."""
    columns = {**PAPER_COLUMNS, **(SOD_COLUMNS if sod else {})}
    width = max(len(name) for scores in results.values() for name in scores) + 2
    lines = [f"{'model':<24}{'dataset':<{width}}" + "".join(f"{column:>9}" for column in columns)]
    for weights, by_dataset in results.items():
        for name, scores in by_dataset.items():
            values = {**{key: getattr(scores, key) for key in PAPER_COLUMNS.values()}, **(scores.sod or {})}
            cells = "".join(f"{values[key]:>9.3f}" for key in columns.values())
            lines.append(f"{Path(weights).name:<24}{name:<{width}}{cells}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, dict[str, Scores]]:
    """Check every input, then score each model on each folder; returns {weights: {dataset: Scores}}."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    options = from_namespace(EvaluateOptions, args)
    check_fields(options)
    if len(args.images) != len(args.masks) or (args.names and len(args.names) != len(args.images)):
        raise InputError("give one --masks (and one --names entry, if any) per --images folder")
    if options.threads is not None:
        torch.set_num_threads(options.threads)
    problems = InputProblems()
    if args.out is not None:
        problems.check(lambda: refuse_existing(args.out, args.overwrite))
    device = problems.check(lambda: resolve_device(options.device))
    models = {
        weights: problems.check(lambda weights=weights: load_unet(weights, "cpu")) for weights in args.weights
    }
    sets = problems.check(
        lambda: validation_sets(args.images, args.masks, options.skip_bad_files, args.names)
    )
    problems.raise_any()
    refining = options.refine != "none"
    for val_set in sets:
        images = [image for image, _ in val_set.dataset.pairs]
        refuse_oversized(images, options.resize_to, refining, options.max_megapixels)
    results = {}
    refine = make_refiner(options.refine)
    for weights, model in models.items():
        model.to(device)
        results[weights] = {
            val_set.name: evaluate_model(
                model, val_set.batches(device), options.resize_to, options.sod, val_set.name, refine
            )
            for val_set in sets
        }
    print(format_table(results, options.sod))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        json_results = {w: {name: s.to_json() for name, s in by.items()} for w, by in results.items()}
        settings = {"resize_to": options.resize_to, "refine": options.refine}
        write_json(args.out, {**settings, "results": json_results})
        print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    sys.exit(run_cli(main))
