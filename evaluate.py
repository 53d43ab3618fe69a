r"""Score trained U-Nets on image/mask folders: the paper's metrics and the SOD community's.

    python evaluate.py --weights results/demo/segmentation.pth \
        --images cache/demo/heldout/images --masks cache/demo/heldout/masks --resize_to none

`--weights` takes released U-Nets, a run's segmentation.pth or checkpoint.pth, and may be given several
times to compare models in one table; `--images`/`--masks` pairs likewise (paired by file-name stem).
The numbers are those of train_segmentation.py's score.json (one evaluation code path, evaluation.py):
`F_max` of the probability map, `IoU` and `accuracy` at 0.5 in the paper's conventions, then the SOD
metrics in pysodmetrics' conventions (see README.md, "Evaluating trained models").
"""

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from evaluation import Scores, evaluate_model, validation_sets
from UNet.unet_load import load_unet
from utils.checks import at_least, check_fields, optional
from utils.cli import add_debug_flag, run_cli
from utils.device import resolve_device
from utils.errors import InputError, InputProblems
from utils.flags import add_flags, device_flag, flag, from_namespace, optional_int, parse_bool, threads_flag
from utils.run_files import write_json

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
    device = problems.check(lambda: resolve_device(options.device))
    models = {
        weights: problems.check(lambda weights=weights: load_unet(weights, "cpu")) for weights in args.weights
    }
    sets = problems.check(
        lambda: validation_sets(args.images, args.masks, options.skip_bad_files, args.names)
    )
    problems.raise_any()
    results = {}
    for weights, model in models.items():
        model.to(device)
        results[weights] = {
            val_set.name: evaluate_model(
                model, val_set.batches(device), options.resize_to, sod=options.sod, desc=val_set.name
            )
            for val_set in sets
        }
    print(format_table(results, options.sod))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        json_results = {w: {name: s.to_json() for name, s in by.items()} for w, by in results.items()}
        write_json(args.out, {"resize_to": options.resize_to, "results": json_results})
        print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    sys.exit(run_cli(main))
