"""README pictures of the demo: synthetic training pairs and held-out predictions.

    python -m demo.figures --run results/demo

writes images/demo_synthetic_pairs.png (generated images, their masks, overlays) and
images/demo_predictions.png (held-out images, true masks, U-Net probabilities, overlays).
"""

import argparse
from pathlib import Path

import torch

from BigGAN.gan_load import make_big_gan
from data import SegmentationDataset
from demo.world import ensure_heldout_folder
from postprocessing import SegmentationInference
from train_config import resolve_config
from train_segmentation import build_mask_generator
from UNet.unet_load import load_unet
from utils.inputs import load_direction
from visualization import save_samples_grid


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--run", type=Path, required=True, metavar="DIR", help="output folder of train_segmentation.py --demo"
    )
    parser.add_argument(
        "--images", type=Path, default=Path("images"), metavar="DIR", help="where to write (default: images)"
    )
    parser.add_argument(
        "--count", type=int, default=12, metavar="N", help="samples per picture (default: 12)"
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    config = resolve_config(["--args", str(args.run / "args.json")])
    run, params = config.run, config.params
    G = make_big_gan(run.gan_weights, config=run.gan_config, device="cpu")
    direction = load_direction(run.bg_direction, G.dim_shift)
    generator = build_mask_generator(G, direction, params, None, 0.0, seed=123, device="cpu")
    images, masks = generator()
    args.images.mkdir(parents=True, exist_ok=True)
    save_samples_grid(args.images / "demo_synthetic_pairs.png", images, masks, count=args.count)

    model = load_unet(args.run / "segmentation.pth", device="cpu")
    pairs = [SegmentationDataset(*ensure_heldout_folder(), crop=False)[i] for i in range(args.count)]
    heldout_images = torch.stack([image for image, _ in pairs])
    heldout_masks = torch.stack([mask for _, mask in pairs])
    probabilities = SegmentationInference(model)(heldout_images)
    save_samples_grid(
        args.images / "demo_predictions.png",
        heldout_images,
        heldout_masks,
        probabilities,
        count=args.count,
    )
    print(f"wrote {args.images}/demo_synthetic_pairs.png and {args.images}/demo_predictions.png")


if __name__ == "__main__":
    main()
