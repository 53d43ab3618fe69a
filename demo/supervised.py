"""The demo's supervised reference: the demo's U-Net, width and training budget, trained on world
images with their true masks. It uses labels, so it is a bound to read the label-free rows against,
not a method; its pairs come from a seed range of their own (`SEED_RANGES.supervised`), disjoint from
the GAN's, the validation and the held-out ranges, and no label reaches any other row.

    python -m demo.supervised --out results/demo_supervised [--seed 2]
"""

import argparse
import sys

import torch

from data import SegmentationDataset
from demo.preset import demo_preset
from demo.world import ensure_supervised_folder
from self_train import train_on_pairs
from train_config import read_resumable_checkpoint, resolve_config
from train_segmentation import launch_config, print_table
from utils import distributed
from utils.checkpoint import CHECKPOINT_NAME
from utils.cli import add_debug_flag, run_cli
from utils.progress import progress_bar
from utils.run_files import write_json


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m demo.supervised", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, metavar="DIR")
    parser.add_argument("--seed", type=int, default=2)
    add_debug_flag(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    training = ["--demo", "--out", args.out, "--seed", str(args.seed)]
    config, device = launch_config(
        resolve_config(training, demo_preset=demo_preset), distributed.SINGLE_PROCESS
    )
    dataset = SegmentationDataset(*ensure_supervised_folder())
    pairs = [dataset[index] for index in progress_bar(range(len(dataset)), desc="reading", leave=False)]
    images, masks = torch.stack([pair[0] for pair in pairs]), torch.stack([pair[1] for pair in pairs])
    checkpoint = read_resumable_checkpoint(f"{args.out}/{CHECKPOINT_NAME}", config)
    _, score = train_on_pairs(images, masks, config, device, args.seed, checkpoint)
    score["uses_labels"] = {
        "pairs": len(pairs),
        "seeds": f"{dataset.pairs[0][0].stem}..{dataset.pairs[-1][0].stem}",
    }
    write_json(f"{args.out}/score.json", score)
    print_table(score)
    return score


if __name__ == "__main__":
    sys.exit(run_cli(main))
