"""Scoring a segmentation model on (image, mask) pairs: the one evaluation path of `train_segmentation.py`,
`evaluate.py`, `segment.py` and the notebooks.

One pass over the pairs computes each image's probability map once (`SegmentationInference`) and from it
- `id`: the paper's F_max of the probability map (`metrics.precision_recall_curves`, `metrics.F_max`);
- `thr`: IoU and accuracy of the map thresholded at 0.5 (`>=`, as `postprocessing.Threshold`), the
  numbers `metrics.model_metrics` gives for `Threshold(model)`;
- `sod`: optionally, the salient-object-detection metrics in pysodmetrics' conventions (`sod_metrics`),
  of the map converted to 8 bits as a saved prediction would be.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from data import SegmentationDataset
from metrics import F_max, IoU, accuracy, precision_recall_curves
from postprocessing import SegmentationInference
from sod_metrics import SODMetrics, probability_to_uint8
from utils.progress import progress_bar
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
) -> Scores:
    """All scores of `model` (put in eval mode) on `(images [B, 3, H, W] in [-1, 1], masks [B, H, W])`
    batches, in one pass; `resize_to` as in `SegmentationInference`."""
    model.eval()
    inference = SegmentationInference(model, resize_to=resize_to)
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
