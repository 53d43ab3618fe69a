"""A training run's folder as the web demo shows it: its final scores, its prediction pictures and the
curves of its TensorBoard events."""

import json
from dataclasses import dataclass
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from utils.errors import InputError, MissingInputError

# Curves over the steps; the learning rate and the final scores (one point each) are left out.
LEFT_OUT_CURVES = ("train/lr", "final/")
PICTURES = {
    "predictions_heldout.png": "held-out images, true masks, predictions",
    "predictions_synthetic.png": "synthetic test pairs and predictions",
    "gen_sample.png": "synthetic pairs the U-Net trained on",
}


@dataclass
class RunView:
    scores: str  # Markdown
    pictures: list[tuple[Path, str]]
    curves: list[dict]  # rows {"step", "value", "curve"} of every scalar


def scores_markdown(score: dict) -> str:
    """The final scores of each folder (`score.json`), as a Markdown table."""
    lines = ["| folder | F_max | IoU | accuracy |", "|---|---:|---:|---:|"]
    for name, entry in score.items():
        if isinstance(entry, dict) and "thr" in entry:
            f_max, thr = entry["id"]["F_max"], entry["thr"]
            lines.append(f"| {name} | {f_max:.3f} | {thr['IoU']:.3f} | {thr['accuracy']:.3f} |")
    return "\n".join(lines)


def scalar_rows(tensorboard_dir: Path) -> list[dict]:
    events = EventAccumulator(str(tensorboard_dir), size_guidance={"scalars": 0})
    events.Reload()
    return [
        {"step": event.step, "value": event.value, "curve": tag}
        for tag in events.Tags()["scalars"]
        if not tag.startswith(LEFT_OUT_CURVES)
        for event in events.Scalars(tag)
    ]


def read_run(run_dir: str | Path) -> RunView:
    """What a run folder holds; refuses a folder that is not a run with what to give instead."""
    run_dir = Path(str(run_dir).strip()).expanduser()
    if not run_dir.is_dir():
        raise MissingInputError(
            f"run folder {run_dir} does not exist: give the --out folder of a training run"
        )
    score_file = run_dir / "score.json"
    if not score_file.is_file():
        raise InputError(
            f"{run_dir} holds no score.json: it is not a finished train_segmentation.py run "
            "(give the folder passed as --out)"
        )
    try:
        score = json.loads(score_file.read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"{score_file} cannot be read as JSON ({error})") from error
    pictures = [(run_dir / name, caption) for name, caption in PICTURES.items() if (run_dir / name).is_file()]
    tensorboard_dir = run_dir / "tensorboard"
    curves = scalar_rows(tensorboard_dir) if tensorboard_dir.is_dir() else []
    return RunView(scores_markdown(score), pictures, curves)
