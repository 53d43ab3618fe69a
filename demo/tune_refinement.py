"""Choose a refiner's parameters on the demo's validation range (never on held-out), by a grid around
the defaults; prints the settings by validation IoU, best first.

    python -m demo.tune_refinement --refine crf --unet results/beyond/seed_2/gan/segmentation.pth

The U-Net's maps are computed once; each setting then refines all of them. The defaults in
refinement.py are the best settings this printed (docs/beyond.md).
"""

import argparse
import itertools
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

import torch

from data import SegmentationDataset
from demo.world import ensure_validation_folder
from metrics import IoU
from postprocessing import SegmentationInference
from refinement import BilateralSolverConfig, DenseCrfConfig, make_refiner
from UNet.unet_load import load_unet
from utils.cli import add_debug_flag, run_cli
from utils.run_files import write_json

# Each parameter's values around its default.
GRIDS = {
    "bilateral": {
        "spatial_fraction": [0.0625, 0.125, 0.25],
        "sigma_luma": [16.0, 32.0, 64.0],
        "sigma_chroma": [16.0, 32.0, 64.0],
        "lam": [16.0, 64.0, 256.0],
    },
    "crf": {
        "bilateral_fraction": [0.25, 0.5, 1.0],
        "sigma_rgb": [16.0, 32.0, 64.0],
        "bilateral_weight": [10.0, 20.0, 40.0, 80.0],
        "smoothness_weight": [0.0, 3.0],
    },
}
DEFAULTS = {"bilateral": BilateralSolverConfig(), "crf": DenseCrfConfig()}


def settings(refine: str) -> list[BilateralSolverConfig | DenseCrfConfig]:
    grid = GRIDS[refine]
    return [
        replace(DEFAULTS[refine], **dict(zip(grid, values, strict=True)))
        for values in itertools.product(*grid.values())
    ]


def mean_iou(maps: torch.Tensor, masks: torch.Tensor) -> float:
    return IoU(masks, maps >= 0.5)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(
        prog="python -m demo.tune_refinement", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--refine", choices=sorted(GRIDS), required=True)
    parser.add_argument("--unet", type=Path, required=True, help="a demo-trained segmentation.pth")
    parser.add_argument("--out", type=Path, help="also write the table as JSON here")
    add_debug_flag(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    dataset = SegmentationDataset(*ensure_validation_folder())
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    masks = torch.stack([dataset[i][1] for i in range(len(dataset))])
    maps = SegmentationInference(load_unet(args.unet, "cpu").eval())(images)
    rows = [{"setting": "unrefined", "validation_IoU": mean_iou(maps, masks), "ms_per_image": 0.0}]
    for config in settings(args.refine):
        refine = make_refiner(args.refine, config)
        started = time.perf_counter()
        refined = torch.stack([refine(image, map_) for image, map_ in zip(images, maps, strict=True)])
        seconds = time.perf_counter() - started
        values = {field.name: getattr(config, field.name) for field in fields(config)}
        rows.append(
            {
                "setting": values,
                "validation_IoU": mean_iou(refined, masks),
                "ms_per_image": 1e3 * seconds / len(images),
            }
        )
    rows.sort(key=lambda row: -row["validation_IoU"])
    for row in rows[:10]:
        print(f"{row['validation_IoU']:.4f}  {row['ms_per_image']:6.1f} ms  {row['setting']}")
    if args.out:
        write_json(args.out, rows)
    return rows


if __name__ == "__main__":
    sys.exit(run_cli(main))
