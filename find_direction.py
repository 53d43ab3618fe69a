"""Find the background-darkening latent direction of a generator and save it as a [dim_z] tensor.

    python find_direction.py --gan_weights demo/assets/generator.pth \
        --gan_config demo/assets/generator_config.json --out demo/assets/bg_direction.pth \
        --preview images/demo_direction.png

Without --gan_config the generator is the 128-px BigBiGAN. The direction is saved with torch.save as a
plain float32 tensor (loadable with torch.load(weights_only=True)); the script prints its rating (see
direction_search.rate_direction).
"""

import argparse
from dataclasses import fields
from pathlib import Path

import torch
from torchvision.utils import save_image

from BigGAN.gan_load import make_big_gan
from direction_search import (
    DirectionSearchConfig,
    TwoMapFitConfig,
    find_direction,
    rate_direction,
    shift_masks,
)
from utils.device import resolve_device
from utils.train_config import parse_json_object


def save_preview(G, direction: torch.Tensor, path: Path, samples: int = 8, radius: float = 5.0) -> None:
    """Rows: G(z), G(z + radius * d), and the mask of pixels the shift brightens."""
    device = next(G.parameters()).device
    z = torch.randn(samples, G.dim_z, generator=torch.Generator().manual_seed(2)).to(device)
    before, after, masks = shift_masks(G, z, direction, radius)
    masks = masks.float().unsqueeze(1).expand(-1, 3, -1, -1) * 2 - 1
    path.parent.mkdir(parents=True, exist_ok=True)
    grid = torch.cat([before, after, masks]).cpu()
    save_image(grid, path, nrow=samples, normalize=True, value_range=(-1, 1))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--gan_weights", type=Path, required=True, help="BigGAN-PyTorch generator state dict")
    parser.add_argument(
        "--gan_config",
        type=parse_json_object,
        default=None,
        help="JSON file (or JSON) of Generator arguments",
    )
    parser.add_argument("--out", type=Path, required=True, help="where to save the direction (.pth)")
    parser.add_argument("--preview", type=Path, default=None, help="PNG of images, shifted images, masks")
    parser.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: CUDA if available)")
    parser.add_argument(
        "--rating_steps", type=int, default=200, help="Adam steps of the two-map fit rating (original: 200)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    defaults = DirectionSearchConfig()
    for field in fields(DirectionSearchConfig):
        default = getattr(defaults, field.name)
        parser.add_argument(f"--{field.name}", type=type(default), default=default)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> torch.Tensor:
    args = parse_args(argv)
    if args.threads is not None:
        if args.threads < 1:
            raise SystemExit(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    config = DirectionSearchConfig(**{f.name: getattr(args, f.name) for f in fields(DirectionSearchConfig)})
    if config.steps < 1 or config.batch_size < 1 or args.rating_steps < 1:
        raise SystemExit("--steps, --batch_size and --rating_steps must be at least 1")
    G = make_big_gan(args.gan_weights, device=resolve_device(args.device), config=args.gan_config)
    direction = find_direction(G, config)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(direction, args.out)
    rating = rate_direction(G, direction, fit=TwoMapFitConfig(train_steps=args.rating_steps))
    print(f"saved direction {list(direction.shape)} to {args.out}")
    print(" ".join(f"{key}={value:.3f}" for key, value in rating.items()))
    if args.preview is not None:
        save_preview(G, direction, args.preview)
        print(f"preview in {args.preview}")
    return direction


if __name__ == "__main__":
    main()
