"""Does the direction matter? The demo run repeated with random unit directions instead of the found one.

    python -m demo.random_directions --seeds 0 1 2 3 4 --out results/random_directions

Each seed draws a direction from N(0, I) (normalised), trains exactly as `train_segmentation.py --demo`
and is scored on the same held-out folder; runs already finished in --out are reused. A direction for
which the mask filters reject every sample cannot train at all and is reported as such.
"""

import argparse
import json
from pathlib import Path

import torch

import train_segmentation
from gan_mask_gen import MaskGenerationError


def random_unit_direction(seed: int, dim: int = 120) -> torch.Tensor:
    direction = torch.randn(dim, generator=torch.Generator().manual_seed(seed))
    return direction / direction.norm()


def run_seed(seed: int, out: Path, extra: list[str]) -> dict:
    run_dir = out / f"seed_{seed}"
    if (run_dir / "score.json").is_file():
        return json.loads((run_dir / "score.json").read_text())
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.save(random_unit_direction(seed), run_dir / "direction.pth")
    try:
        return train_segmentation.main(
            ["--demo", "--out", str(run_dir), "--bg_direction", str(run_dir / "direction.pth"), *extra]
        )
    except MaskGenerationError as error:
        return {"failed": str(error)}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m demo.random_directions",
        description=__doc__,
        epilog="Other flags go to train_segmentation.py --demo.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2, 3, 4],
        metavar="SEED",
        help="one run per seed of a random unit direction (default: 0 1 2 3 4)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results/random_directions"),
        metavar="DIR",
        help="one run folder per seed; finished runs are reused (default: results/random_directions)",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args, extra = build_parser().parse_known_args(argv)
    rows = {seed: run_seed(seed, args.out, extra) for seed in args.seeds}
    print(f"\n{'direction':<12}{'held-out IoU':>14}{'IoU > 0.5':>11}")
    for seed, score in rows.items():
        if "failed" in score:
            print(f"random {seed:<5}{'no training: the filters rejected every sample':>40}")
        else:
            unet = score["unet_per_image"]
            print(f"random {seed:<5}{unet['IoU']:>14.3f}{unet['share_IoU_above_0.5']:>10.0%}")


if __name__ == "__main__":
    main()
