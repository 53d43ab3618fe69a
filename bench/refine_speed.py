"""Time per image of each refiner (`--refine bilateral|crf`) at the demo's 32 px and at a realistic
400x300 photo.

    python -m bench.refine_speed [--repeats 5]

32 px: the demo's 500 validation images with the maps of a U-Net fitted to them for the timing
(`results/beyond/seed_2/gan/segmentation.pth` when present, else a fresh width-16 U-Net). 400x300:
scikit-image's photos (chelsea, coffee, astronaut) resized, each with a soft map, its Otsu mask
blurred by 8 px: the solver's time depends on how many grid cells the photo's colours fill and on the
map's unsure band, not on which U-Net made it.
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy.ndimage import gaussian_filter
from skimage import data, filters

from data import SegmentationDataset
from demo.world import ensure_validation_folder
from postprocessing import SegmentationInference
from refinement import REFINERS, make_refiner
from UNet.unet_load import load_unet
from UNet.unet_model import UNet

DEMO_UNET = Path("results/beyond/seed_2/gan/segmentation.pth")
PHOTOS = ("chelsea", "coffee", "astronaut")


def photo(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """A 400x300 photo in [-1, 1] and its soft map."""
    rgb = np.asarray(Image.fromarray(getattr(data, name)()).resize((400, 300), Image.BILINEAR))
    grey = rgb.mean(2)
    mask = (grey > filters.threshold_otsu(grey)).astype(np.float64)
    soft = gaussian_filter(mask, 8)
    return torch.tensor(rgb / 127.5 - 1).permute(2, 0, 1).float(), torch.tensor(soft)


def demo_maps() -> tuple[torch.Tensor, torch.Tensor]:
    dataset = SegmentationDataset(*ensure_validation_folder())
    images = torch.stack([dataset[i][0] for i in range(len(dataset))])
    model = load_unet(DEMO_UNET, "cpu") if DEMO_UNET.exists() else UNet(base_width=16)
    return images, SegmentationInference(model.eval())(images)


def milliseconds_per_image(refine, images, maps, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for image, map_ in zip(images, maps, strict=True):
            refine(image, map_)
        best = min(best, (time.perf_counter() - started) / len(images))
    return 1e3 * best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="the best of this many passes (default: 5)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    small = demo_maps()
    photos = [photo(name) for name in PHOTOS]
    large = torch.stack([image for image, _ in photos]), torch.stack([map_ for _, map_ in photos])
    print(f"{'refiner':<10} {'32 px (ms/image)':>17} {'400x300 (ms/image)':>19}")
    for name in REFINERS:
        refine = make_refiner(name)
        times = [milliseconds_per_image(refine, *inputs, args.repeats) for inputs in (small, large)]
        print(f"{name:<10} {times[0]:>17.1f} {times[1]:>19.1f}")


if __name__ == "__main__":
    main()
