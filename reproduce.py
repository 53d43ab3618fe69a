"""One command per row of the paper's tables: the original's training over seeds, scored, beside the paper.

    python reproduce.py --list
    python reproduce.py --rows demo/bigbigan --seeds 3 --out results/reproduce
    python reproduce.py --dry_run --rows ecssd/bigbigan cub/e-bigbigan-noise

Each (row, seed) is one `train_segmentation.py` run in `OUT/<row>/seed_<seed>/`, scored on the row's
folder by the run itself (`evaluate.evaluate_model`, the code `evaluate.py` uses). A rerun skips the
runs that have their `score.json` and continues the others from their checkpoints. The table of means
± std over seeds, beside the paper's figures (`paper_results.json`), goes to `OUT/table.md` and
`OUT/table.json`. Flags after `--` go to every training run (e.g. `-- --n_steps 100` for a quick look).
"""

import argparse
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from train_config import BIGBIGAN_DIRECTION, BIGBIGAN_WEIGHTS, RunConfig
from utils.cli import add_debug_flag, run_cli
from utils.errors import InputError
from utils.run_files import write_json
from utils.stop_signals import StopRequested

TRAIN_SCRIPT = Path(__file__).parent / "train_segmentation.py"
PAPER_RESULTS = Path(__file__).parent / "paper_results.json"
METRICS = ("F_max", "IoU", "accuracy")
IMAGENET_Z = "embeddings/BigBiGAN_ImageNet_z.npy"
# The published embeddings of each dataset's own training images (the E- rows).
TRAINING_SET_Z = {
    "ecssd": "embeddings/BigBiGAN_DUTS-TR_z.npy",
    "duts-te": "embeddings/BigBiGAN_DUTS-TR_z.npy",
    "dut-omron": "embeddings/BigBiGAN_DUTS-TR_z.npy",
    "cub": "embeddings/BigBiGAN_CUB_train_z.npy",
    "flowers": "embeddings/BigBiGAN_Flowers_train_z.npy",
}
Z_NOISE = 0.2  # of the -noise rows: the value the original's author used when re-running CUB (its issue #2)
DEMO_ROW = "demo/bigbigan"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
FLAGS_FILE = "reproduce_flags.json"  # in each run folder: the training flags it was started with


@dataclass(frozen=True)
class Row:
    """One row of a table: its training flags and the folder it is scored on."""

    name: str
    flags: tuple[str, ...]
    images: str
    masks: str
    score_key: str  # the folder's name in score.json

    def inputs(self) -> list[tuple[str, str]]:
        """(path, how to get it) of every input the row reads."""
        if self.name == DEMO_ROW:
            return []
        dataset = self.name.split("/")[0]
        files = [
            self.flags[i + 1]
            for i, flag in enumerate(self.flags)
            if flag in ("--gan_weights", "--bg_direction", "--z")
        ]
        needed = [(path, f"bash download_all.sh --only {Path(path).name}") for path in files]
        prepare = f"python prepare_datasets.py {dataset}"
        return [*needed, (self.images, prepare), (self.masks, prepare)]

    def missing(self, folder: Path) -> list[tuple[str, str]]:
        """The inputs not found from `folder`, where the runs start and read them."""
        return [(path, fetch) for path, fetch in self.inputs() if not (folder / path).exists()]

    def command(self, seed: int, out: Path, extra: list[str]) -> list[str]:
        script = os.path.relpath(TRAIN_SCRIPT)
        return [sys.executable, script, *self.flags, "--seed", str(seed), "--out", str(out), *extra]


def paper_rows() -> dict:
    return json.loads(PAPER_RESULTS.read_text())["rows"]


def make_rows() -> dict[str, Row]:
    """Every row: the demo world's, then the paper's, each trained as the original did (`--faithful`)."""
    rows = {
        DEMO_ROW: Row(
            DEMO_ROW, ("--demo",), "cache/demo/heldout/images", "cache/demo/heldout/masks", "heldout"
        )
    }
    for name in paper_rows():
        dataset, variant = name.split("/")
        z = IMAGENET_Z if variant == "bigbigan" else TRAINING_SET_Z[dataset]
        images, masks = f"datasets/{dataset}/images", f"datasets/{dataset}/masks"
        flags = [
            "--faithful",
            "--gan_weights",
            BIGBIGAN_WEIGHTS,
            "--bg_direction",
            BIGBIGAN_DIRECTION,
            "--z",
            z,
        ]
        flags += ["--z_noise", str(Z_NOISE)] if variant.endswith("-noise") else []
        flags += ["--val_images_dirs", images, "--val_masks_dirs", masks]
        rows[name] = Row(name, tuple(flags), images, masks, dataset)
    return rows


def seeds(count: int) -> list[int]:
    """The first run uses the default seed, so that seed's run is the one a plain command gives."""
    first = RunConfig().seed
    return list(range(first, first + count))


def run_folder(out: Path, row: str, seed: int) -> Path:
    return out / row / f"seed_{seed}"


def run_forwarding_signals(command: list[str]) -> int:
    """Run `command` to its end in a session of its own; SIGINT and SIGTERM sent to this process are
    passed on to it once, so that the training run saves its checkpoint before both stop."""
    process = subprocess.Popen(command, start_new_session=True)

    def forward(number, frame) -> None:
        process.send_signal(number)

    previous = {number: signal.signal(number, forward) for number in STOP_SIGNALS}
    try:
        return process.wait()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def check_same_flags(folder: Path, flags: list[str]) -> None:
    """A run folder holds the run of one set of flags: a finished run made with others (e.g. a quick
    look with `-- --n_steps 100`) is never taken for this one."""
    recorded = folder / FLAGS_FILE
    if recorded.exists() and json.loads(recorded.read_text()) != flags:
        raise InputError(
            f"{folder} holds a run made with other flags ({' '.join(json.loads(recorded.read_text()))}); "
            "give another --out, or delete that folder to train it again"
        )


def train(row: Row, seed: int, out: Path, extra: list[str]) -> dict:
    """The run's score.json, training (or continuing) it first unless it is complete."""
    folder = run_folder(out, row.name, seed)
    command = row.command(seed, folder, extra)
    check_same_flags(folder, command[2:])
    if not (folder / "score.json").exists():
        print(f"\n== {row.name}, seed {seed}: {folder}", flush=True)
        folder.mkdir(parents=True, exist_ok=True)
        write_json(folder / FLAGS_FILE, command[2:])
        status = run_forwarding_signals(command)
        stopped = {128 + number: number for number in STOP_SIGNALS}
        if status in stopped:
            message = (
                f"{row.name}, seed {seed}: checkpoint saved in {folder}; rerun the same command to continue"
            )
            raise StopRequested(message, stopped[status])
        if status != 0:
            raise InputError(
                f"{row.name}, seed {seed} failed (exit status {status}, its message above); fix it and rerun "
                f"the same command: finished runs are kept, {folder} continues from its last checkpoint"
            )
    return json.loads((folder / "score.json").read_text())


def row_scores(score: dict, key: str) -> dict[str, float]:
    scores = score[key]
    return {
        "F_max": scores["id"]["F_max"],
        "IoU": scores["thr"]["IoU"],
        "accuracy": scores["thr"]["accuracy"],
    }


def summary(per_seed: dict[int, dict[str, float]]) -> dict:
    values = {metric: [scores[metric] for scores in per_seed.values()] for metric in METRICS}
    spread = {metric: statistics.stdev(v) if len(v) > 1 else None for metric, v in values.items()}
    return {
        "mean": {m: statistics.fmean(v) for m, v in values.items()},
        "std": spread,
        "seeds": list(per_seed),
    }


def markdown_table(results: dict, not_run: dict) -> str:
    """The rows' metrics beside the paper's, the demo's label-free baselines, and the rows not run."""
    lines = [
        "| row | metric | paper | ours: mean ± std over seeds | ours − paper |",
        "|---|---|---:|---:|---:|",
    ]
    for name, result in results.items():
        ours, paper = result["ours"], result["paper"]
        for metric in METRICS:
            std = ours["std"][metric]
            spread = f" ± {std:.4f}" if std is not None else ""
            cell = f"{ours['mean'][metric]:.4f}{spread} (n={len(ours['seeds'])})"
            if paper:
                difference = f"{ours['mean'][metric] - paper[metric]:+.4f}"
                lines.append(f"| {name} | {metric} | {paper[metric]:.3f} | {cell} | {difference} |")
            else:
                lines.append(f"| {name} | {metric} | — | {cell} | |")
    baselines = [
        (name, *item) for name, result in results.items() for item in result.get("baselines", {}).items()
    ]
    if baselines:
        lines += ["", "Label-free baselines on the same folder (no training, the same for every seed):", ""]
        lines += ["| row | baseline | mean IoU |", "|---|---|---:|"]
        lines += [f"| {name} | {baseline} | {iou:.3f} |" for name, baseline, iou in baselines]
    if not_run:
        lines += ["", "Not run, inputs missing:", ""]
        for name, missing in not_run.items():
            lines += [f"- {name}: {path} ({fetch})" for path, fetch in missing]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    argv = argv[: argv.index("--")] if "--" in argv else argv
    rows = make_rows()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--rows", nargs="+", metavar="ROW", choices=list(rows), help="rows to run (see --list)"
    )
    parser.add_argument("--seeds", type=int, default=3, metavar="N", help="seeds per row (default: 3)")
    parser.add_argument("--out", type=Path, default=Path("results/reproduce"), metavar="DIR")
    parser.add_argument("--list", action="store_true", help="print the rows and exit")
    parser.add_argument(
        "--dry_run", action="store_true", help="print every command and its inputs, run nothing"
    )
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    if args.list:
        paper = paper_rows()
        for name in rows:
            source = (
                paper[name]["method"] + ", " + paper[name]["column"] if name in paper else "the demo world"
            )
            print(f"{name:<26}{source}")
        return {}
    if not args.rows:
        parser.error("give --rows (see --list)")
    if args.seeds < 1:
        parser.error(f"--seeds {args.seeds}: give 1 or more")
    chosen = [rows[name] for name in args.rows]
    not_run = {row.name: row.missing(Path.cwd()) for row in chosen if row.missing(Path.cwd())}
    if args.dry_run:
        for row in chosen:
            for seed in seeds(args.seeds):
                command = row.command(seed, run_folder(args.out, row.name, seed), extra)
                print(shlex.join(["python", *command[1:]]))
            for path, fetch in row.missing(Path.cwd()):
                print(f"  missing {path}: {fetch}")
        return {}
    results = {}
    for row in chosen:
        if row.name in not_run:
            continue
        scores = {seed: train(row, seed, args.out, extra) for seed in seeds(args.seeds)}
        result = {
            "paper": {m: paper_rows()[row.name][m] for m in METRICS} if row.name in paper_rows() else None,
            "ours": summary({seed: row_scores(score, row.score_key) for seed, score in scores.items()}),
            "runs": {seed: str(run_folder(args.out, row.name, seed)) for seed in scores},
        }
        first = next(iter(scores.values()))
        if "baselines" in first:
            result["baselines"] = {name: value["IoU"] for name, value in first["baselines"].items()}
        results[row.name] = result
    table = {"results": results, "not_run": {name: dict(missing) for name, missing in not_run.items()}}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "table.json", table)
    text = markdown_table(results, not_run)
    (args.out / "table.md").write_text(text)
    print("\n" + text)
    if not_run:
        raise InputError(
            f"{len(not_run)} of {len(chosen)} rows lack inputs (listed above and in {args.out}/table.md)"
        )
    return table


if __name__ == "__main__":
    sys.exit(run_cli(main))
