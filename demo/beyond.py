"""The demo's rows beyond the paper, over seeds: GAN masks only (the paper's method), + refinement
(bilateral solver, dense CRF), + self-training, + both, the supervised reference (uses labels) and the
label-free baselines.

    python -m demo.beyond --seeds 2 --out results/beyond

Each row's U-Net is trained by its own command (printed, and timed: the row's wall time on this
machine is that of the training runs it builds on; refinement adds its time per image, bench.refine_speed)
and scored by the one evaluation path on the validation range
(where every choice was made) and on the held-out range. Writes `OUT/table.md`, `OUT/table.json` and
`OUT/changes.png` (held-out images where refinement and self-training changed the mask most).
"""

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torchvision.utils import make_grid, save_image

from data import SegmentationDataset
from demo.world import ensure_heldout_folder, ensure_validation_folder
from evaluate import evaluate_model
from postprocessing import SegmentationInference
from refinement import make_refiner
from UNet.unet_load import load_unet
from utils.cli import add_debug_flag, run_cli
from utils.run_files import write_json
from visualization import TILE, as_tiles, label_tile, masks_as_images, to_unit_range

SELF_TRAINING = ["--rounds", "2"]
# row: (the run it scores, the refinement it is scored with)
ROWS = {
    "GAN masks only (the paper's)": ("gan", "none"),
    "+ refinement (bilateral solver)": ("gan", "bilateral"),
    "+ refinement (dense CRF)": ("gan", "crf"),
    "+ self-training (1 round)": ("self/round_1", "none"),
    "+ self-training (2 rounds)": ("self", "none"),
    "+ both (refined labels, 2 rounds, refined)": ("both", "bilateral"),
    "+ both, dense CRF (refined labels, 2 rounds, refined)": ("both_crf", "crf"),
    "supervised reference (uses labels)": ("supervised", "none"),
}
PAPER_ROW, BEST_ROW = "GAN masks only (the paper's)", "+ both (refined labels, 2 rounds, refined)"


def commands(out: Path, seed: int) -> dict[str, list[str]]:
    """The runs of one seed, in order; later ones start from the GAN-trained U-Net."""
    python, seed_flag = sys.executable, ["--seed", str(seed)]
    gan_unet = str(out / "gan" / "segmentation.pth")
    self_train = [python, "self_train.py", "--demo", "--unet", gan_unet, *seed_flag, *SELF_TRAINING]

    def refined(name: str) -> list[str]:
        return ["--refine_labels", name, "--refine", name]

    return {
        "gan": [python, "train_segmentation.py", "--demo", *seed_flag, "--out", str(out / "gan")],
        "self": [*self_train, "--out", str(out / "self")],
        "both": [*self_train, *refined("bilateral"), "--out", str(out / "both")],
        "both_crf": [*self_train, *refined("crf"), "--out", str(out / "both_crf")],
        "supervised": [python, "-m", "demo.supervised", *seed_flag, "--out", str(out / "supervised")],
    }


def run_all(out: Path, seed: int) -> dict[str, float]:
    """Run (or skip, when finished) every run of a seed; the wall time of each run made now."""
    times = {}
    for name, command in commands(out, seed).items():
        if (out / name / "segmentation.pth").exists():
            continue
        print("+", " ".join(command), flush=True)
        started = time.monotonic()
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        times[name] = time.monotonic() - started
    return times


def score(unet_path: Path, folder: tuple[Path, Path], refine_name: str) -> tuple[float, float, list[float]]:
    model = load_unet(unet_path, "cpu")
    batches = torch.utils.data.DataLoader(SegmentationDataset(*folder), batch_size=100)
    refine = make_refiner(refine_name)
    scores = evaluate_model(model, batches, None, sod=False, desc=unet_path.parent.name, refine=refine)
    ious = np.array(scores.per_image_iou)
    return float(ious.mean()), float((ious > 0.5).mean()), scores.per_image_iou


def mean_std(values: list[float]) -> str:
    std = statistics.stdev(values) if len(values) > 1 else float("nan")
    return f"{statistics.mean(values):.3f} ± {std:.3f}"


def changes_picture(out: Path, seed_dir: Path, per_image: dict, count: int = 4) -> None:
    """The held-out images whose IoU the best combination moved most up (left) and most down (right),
    with the masks of the paper's method and of the combination."""
    base, best = np.array(per_image[PAPER_ROW]), np.array(per_image[BEST_ROW])
    order = np.argsort(best - base)
    chosen = [*order[::-1][:count], *order[:count]]
    dataset = SegmentationDataset(*ensure_heldout_folder())
    images = torch.stack([dataset[int(i)][0] for i in chosen])
    masks = torch.stack([dataset[int(i)][1] for i in chosen])
    plain = SegmentationInference(load_unet(seed_dir / "gan" / "segmentation.pth", "cpu").eval())(images)
    both_model = load_unet(seed_dir / "both" / "segmentation.pth", "cpu").eval()
    refined = SegmentationInference(both_model, refine=make_refiner("bilateral"))(images)
    rows = {
        "image": to_unit_range(images),
        "true mask": masks_as_images(masks),
        "paper's": masks_as_images(plain >= 0.5),
        "both": masks_as_images(refined >= 0.5),
    }
    tiles = [torch.cat([label_tile(name, TILE)[None], as_tiles(row, TILE)]) for name, row in rows.items()]
    grid = make_grid(torch.cat(tiles), nrow=len(chosen) + 1, padding=2, pad_value=1.0)
    save_image(grid, out / "changes.png")


def row_seconds(run: str, seconds: dict, seed_dir: Path) -> float | None:
    """The wall time of the training runs a row's U-Net builds on (None when one was made earlier)."""
    if run == "self/round_1":
        round_score = json.loads((seed_dir / run / "score.json").read_text())
        parts = [seconds.get("gan"), round_score.get("wall_time_s") if "self" in seconds else None]
    elif run in ("self", "both", "both_crf"):
        parts = [seconds.get("gan"), seconds.get(run)]
    else:
        parts = [seconds.get(run)]
    return None if None in parts else sum(parts)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m demo.beyond", description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=2, help="seeds 2, 3, ... (default: 2)")
    parser.add_argument("--out", type=Path, default=Path("results/beyond"), metavar="DIR")
    add_debug_flag(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    folders = {"validation": ensure_validation_folder(), "heldout": ensure_heldout_folder()}
    times_file = args.out / "times.json"
    times = json.loads(times_file.read_text()) if times_file.exists() else {}
    table: dict[str, dict] = {row: {"validation": [], "heldout": [], "above_0.5": []} for row in ROWS}
    per_image = {}
    seeds = range(2, 2 + args.seeds)
    for seed in seeds:
        seed_dir = args.out / f"seed_{seed}"
        times[str(seed)] = {**times.get(str(seed), {}), **run_all(seed_dir, seed)}
        write_json(times_file, times)
        for row, (run, refine_name) in ROWS.items():
            unet = seed_dir / run / "segmentation.pth"
            table[row]["validation"].append(score(unet, folders["validation"], refine_name)[0])
            iou, above, ious = score(unet, folders["heldout"], refine_name)
            table[row]["heldout"].append(iou)
            table[row]["above_0.5"].append(above)
            if seed == 2:
                per_image[row] = ious
    baselines = json.loads((args.out / "seed_2" / "gan" / "score.json").read_text())["baselines"]
    lines = [
        f"Demo world, {args.seeds} seeds (mean ± std), threshold 0.5; wall time: the row's runs here "
        "(mean over the seeds)",
        "",
        "| row | validation IoU | held-out IoU | held-out IoU > 0.5 | wall time |",
        "|---|---:|---:|---:|---:|",
    ]
    for row, cells in table.items():
        walls = [
            row_seconds(ROWS[row][0], times.get(str(seed), {}), args.out / f"seed_{seed}") for seed in seeds
        ]
        wall = None if None in walls else statistics.mean(walls)
        wall_text = f"{int(wall // 60)} min {round(wall % 60):02d} s" if wall else "—"
        lines.append(
            f"| {row} | {mean_std(cells['validation'])} | {mean_std(cells['heldout'])} | "
            f"{statistics.mean(cells['above_0.5']):.0%} | {wall_text} |"
        )
    for name, row in baselines.items():
        above = row["share_IoU_above_0.5"]
        lines.append(f"| {name} (label-free baseline) | | {row['IoU']:.3f} | {above:.0%} | |")
    text = "\n".join(lines) + "\n"
    (args.out / "table.md").write_text(text)
    write_json(args.out / "table.json", {"rows": table, "baselines": baselines, "times_s": times})
    changes_picture(args.out, args.out / "seed_2", per_image)
    print(text)
    return table


if __name__ == "__main__":
    sys.exit(run_cli(main))
