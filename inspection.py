"""What inspection.ipynb shows, as functions: synthetic pairs and the filters' decisions, a trained U-Net's
predictions and scores on a real image/mask folder, and its worst images. The notebook only calls these.
"""

import json
from pathlib import Path

import torch
from PIL import Image
from torchvision.transforms.functional import to_pil_image

import train_segmentation
from BigGAN.gan_load import make_big_gan
from evaluate import Scores, ValidationSet, evaluate_model, predictions_grid, validation_sets
from gan_mask_gen import MaskGenerator
from train_config import SegmentationTrainParams
from train_segmentation import build_mask_generator
from utils.inputs import load_direction
from visualization import samples_grid

# A demo run short enough for a notebook on a CPU (about a minute), for when no trained run exists.
QUICK_DEMO = [
    "--n_steps",
    "120",
    "--batch_size",
    "32",
    "--test_samples_count",
    "32",
    "--steps_per_validation",
    "120",
]


def picture(grid: torch.Tensor) -> Image.Image:
    """A [3, H, W] grid in [0, 1] as a PIL image, which Jupyter displays."""
    return to_pil_image(grid.clamp(0, 1))


def trained_run(run_dir: str | Path, quick_run_dir: str | Path) -> Path:
    """`run_dir` if it holds a finished `train_segmentation.py` run, else a short demo run in
    `quick_run_dir`, trained there first if needed (kept apart so that `run_dir` can still take the full
    demo run later)."""
    for candidate in (Path(run_dir), Path(quick_run_dir)):
        if (candidate / "segmentation.pth").is_file():
            return candidate
    print(f"no trained run in {run_dir}: training a short demo run in {quick_run_dir} (about a minute)")
    train_segmentation.main(["--demo", "--out", str(quick_run_dir), *QUICK_DEMO])
    return Path(quick_run_dir)


def mask_generator(
    gan_weights: str, gan_config: dict | None, direction: str, batch_size: int, seed: int
) -> MaskGenerator:
    """The training run's mask synthesis (default parameters) for a generator and direction, on the CPU."""
    G = make_big_gan(gan_weights, device="cpu", config=gan_config)
    params = SegmentationTrainParams(batch_size=batch_size)
    bg_direction = load_direction(direction, G.dim_shift)
    return build_mask_generator(G, bg_direction, params, None, 0.0, seed, "cpu")


def filter_decisions(generator: MaskGenerator, count: int) -> tuple[Image.Image, list[str]]:
    """One generator call before filtering: rows image, mask, overlay; and each sample's fate."""
    z = generator.make_noise(count)
    images, shifted, masks = generator.gen_samples(z)
    return picture(samples_grid(images, masks, count=count)), generator.filter_verdicts(shifted, masks)


def run_settings(run_dir: Path) -> dict:
    """The flags a run was trained with (its `args.json`)."""
    return json.loads((run_dir / "args.json").read_text())


def score_folder(
    model, images_dir: str, masks_dir: str, resize_to: int | None
) -> tuple[Scores, ValidationSet]:
    """The model's scores on a folder pair, as train_segmentation.py and evaluate.py compute them."""
    (val_set,) = validation_sets([images_dir], [masks_dir])
    return evaluate_model(model, val_set.batches(), resize_to, desc=val_set.name), val_set


def scores_table(scores: Scores) -> str:
    rows = {"F_max": scores.F_max, "IoU": scores.IoU, "accuracy": scores.accuracy, **(scores.sod or {})}
    return "\n".join(f"{name:<20}{value:>8.3f}" for name, value in rows.items())


def predictions(model, val_set: ValidationSet, indices: list[int], resize_to: int | None) -> Image.Image:
    """Columns for the chosen images: image, true mask, overlay, probability, predicted mask."""
    return picture(predictions_grid(model, [val_set.dataset[index] for index in indices], resize_to))


def worst_images(scores: Scores, count: int) -> list[int]:
    """Indices of the `count` images of lowest IoU (NaN, an empty mask predicted empty, counts as best)."""
    ious = torch.tensor(scores.per_image_iou).nan_to_num(1.0)
    return ious.argsort()[:count].tolist()
