"""Speed of the real `train_segmentation.py` run on the full 128-px BigBiGAN config: samples/s, peak GPU
memory and the projected wall time of the 12,000 steps, per precision.

    python -m bench.train_speed --out results/train_speed [--steps 40] [--warmup 10] [--tiny]

The generator has the fixtures' deterministic weight fill (`tests/weight_fill.py`; BigBiGAN_x1.pth is
not needed), the direction is `bench.run`'s seeded one and `--z` a seeded N(0, I) matrix [1000, 120].
Each precision trains `--steps` steps of batch 95 in a folder of its own; samples/s counts the steps
after the first `--warmup` (start-up, the synthetic test set and the first batches are left out).
`--tiny` is a small generator and U-Net for checking the script on a CPU. Prints one markdown table.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import train_segmentation
from bench.run import bench_direction
from BigGAN.gan_load import generator_config
from BigGAN.model.BigGAN import Generator
from tests.weight_fill import fill_module
from train_config import SegmentationTrainParams
from utils.precision import PRECISIONS

FULL_STEPS = SegmentationTrainParams().n_steps
TINY_CONFIG = {"G_ch": 4, "resolution": 32, "G_attn": "0"}


def write_inputs(folder: Path, gan_config: dict) -> list[str]:
    """Filled generator weights, the direction and a latent matrix; their train_segmentation.py flags."""
    folder.mkdir(parents=True, exist_ok=True)
    G = fill_module(Generator(**generator_config(gan_config)))
    torch.save(G.state_dict(), folder / "generator.pth")
    torch.save(bench_direction(G.dim_z, torch.device("cpu")), folder / "direction.pth")
    z = np.random.default_rng(0).standard_normal((1000, G.dim_z)).astype(np.float32)
    np.save(folder / "z.npy", z)
    flags = ["--gan_weights", str(folder / "generator.pth"), "--bg_direction", str(folder / "direction.pth")]
    return [*flags, "--z", str(folder / "z.npy"), "--gan_config", json.dumps(gan_config)]


def step_times(argv: list[str]) -> list[float]:
    """Run train_segmentation.py with `argv`; the time at which each step ended."""
    ended: list[float] = []
    step = train_segmentation.RunLog.step

    def timed_step(self, model, index, loss_value, rate, progress):
        if model.training and torch.cuda.is_available():
            torch.cuda.synchronize()
        ended.append(time.perf_counter())
        return step(self, model, index, loss_value, rate, progress)

    train_segmentation.RunLog.step = timed_step
    try:
        train_segmentation.main(argv)
    finally:
        train_segmentation.RunLog.step = step
    return ended


def measure(inputs: list[str], out: Path, precision: str, args: argparse.Namespace) -> dict:
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    sizes = ["--unet_width", "8", "--batch_size", "8"] if args.tiny else ["--batch_size", "95"]
    argv = [
        "--out", str(out / precision), *inputs, *sizes, "--precision", precision,
        "--n_steps", str(args.steps), "--test_samples_count", "95", "--steps_per_log", str(args.steps),
        "--steps_per_validation", str(args.steps + 1), "--steps_per_checkpoint_save", str(args.steps),
    ]  # fmt: skip
    ended = step_times(argv)
    batch = int(sizes[sizes.index("--batch_size") + 1])
    seconds = ended[-1] - ended[args.warmup - 1]
    samples_per_s = batch * (len(ended) - args.warmup) / seconds
    return {
        "precision": precision,
        "samples/s": samples_per_s,
        "peak GPU memory (GiB)": torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan"),
        f"projected {FULL_STEPS} steps (min)": FULL_STEPS * batch / samples_per_s / 60,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the inputs and the runs")
    parser.add_argument("--steps", type=int, default=40, help="training steps per precision")
    parser.add_argument("--warmup", type=int, default=10, help="first steps left out of samples/s")
    parser.add_argument("--tiny", action="store_true", help="a small generator and U-Net (CPU check)")
    args = parser.parse_args(argv)
    if not 1 <= args.warmup < args.steps:
        parser.error(f"--warmup {args.warmup} must be at least 1 and below --steps {args.steps}")
    taken = [str(args.out / precision) for precision in PRECISIONS if (args.out / precision).exists()]
    if taken:  # a run there would be continued, not measured
        parser.error(f"{', '.join(taken)} already exist: pass another --out, or delete them")
    inputs = write_inputs(args.out / "inputs", TINY_CONFIG if args.tiny else {})
    rows = [measure(inputs, args.out, precision, args) for precision in PRECISIONS]
    print(f"\n| {' | '.join(rows[0])} |\n|{'---|' * len(rows[0])}")
    for row in rows:
        print("| " + " | ".join(f"{v:.3g}" if isinstance(v, float) else v for v in row.values()) + " |")
    return rows


if __name__ == "__main__":
    main()
