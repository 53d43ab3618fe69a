"""`train_segmentation.py --demo`: the committed demo generator and direction, the held-out folder,
and the baselines reported beside the U-Net."""

import numpy as np

from data import SegmentationDataset
from demo.assets import DEMO_DIRECTION_PATH, DEMO_GENERATOR_CONFIG, DEMO_GENERATOR_PATH
from demo.baselines import evaluate_baselines, summary
from demo.world import ensure_heldout_folder, ensure_validation_folder
from evaluate import Scores, ValidationSet

# Chosen on the validation seed range (demo.world.SEED_RANGES.validation), never on the test range.
DEMO_TRAINING = {
    "unet_width": 16,
    "val_resize_to": None,
    "n_steps": 600,
    "batch_size": 64,
    "rate": 0.001,
    "steps_per_rate_decay": 400,
    "rate_decay": 0.2,
    "latent_shift_r": 5.0,
    "test_samples_count": 256,
    "steps_per_log": 50,
    "steps_per_validation": 200,
    "steps_per_checkpoint_save": 100,
}


def demo_preset() -> dict:
    """Flag values of the demo run; the held-out folder is generated here when it is missing."""
    images, masks = ensure_heldout_folder()
    return {
        "gan_weights": str(DEMO_GENERATOR_PATH),
        "gan_config": dict(DEMO_GENERATOR_CONFIG),
        "bg_direction": str(DEMO_DIRECTION_PATH),
        "val_images_dirs": [str(images)],
        "val_masks_dirs": [str(masks)],
        **DEMO_TRAINING,
    }


def demo_score_extras(scores: Scores, val_set: ValidationSet) -> dict:
    """Per-image IoU summary of the U-Net (its `scores` on the held-out folder `val_set`) and the
    baselines on the same folder."""
    test_pairs = list(val_set.dataset)
    validation_pairs = list(SegmentationDataset(*ensure_validation_folder()))
    unet = np.array(scores.per_image_iou)
    return {
        "unet_per_image": {"dataset": val_set.name, "images": len(test_pairs), **summary(unet)},
        "baselines": evaluate_baselines(test_pairs, validation_pairs),
    }


def print_demo_table(extras: dict) -> None:
    unet = extras["unet_per_image"]
    rows = {"U-Net (GAN masks only)": unet, **extras["baselines"]}
    print(f"\nFolder {unet['dataset']} ({unet['images']} images), threshold 0.5")
    print(f"{'method':<24}{'mean IoU':>10}{'IoU > 0.5':>11}")
    for name, row in rows.items():
        print(f"{name:<24}{row['IoU']:>10.3f}{row['share_IoU_above_0.5']:>10.0%}")
    best = max(row["IoU"] for row in extras["baselines"].values())
    print(f"U-Net minus the best baseline: {unet['IoU'] - best:+.3f} mean IoU")
