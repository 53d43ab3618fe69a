"""Pictures of samples and predictions: mask overlays, image grids, and the walk along a latent
direction as an animated GIF (`python -m visualization gif --demo --out walk.gif`).

Tiles are drawn at `TILE` pixels a side, so that 32-px demo samples are as legible as 128-px
BigBiGAN ones: enlarged by whole factors with nearest-neighbour sampling (pixels stay sharp),
otherwise resized bilinearly. The first column of a grid names its rows.
"""

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision.transforms.functional as TF
from PIL import Image, ImageDraw, ImageFont
from torchvision.utils import make_grid, save_image

from BigGAN.gan_load import make_big_gan
from demo.assets import DEMO_DIRECTION_PATH, DEMO_GENERATOR_CONFIG, DEMO_GENERATOR_PATH
from train_config import parse_json_object
from utils.checks import at_least, check_fields, positive
from utils.cli import add_debug_flag, run_cli
from utils.device import resolve_device
from utils.errors import InputError
from utils.flags import add_flags, device_flag, flag, from_namespace
from utils.inputs import load_direction
from utils.run_files import refuse_existing

FOREGROUND_COLOR = (1.0, 0.15, 0.15)
PREDICTION_COLOR = (0.1, 0.9, 0.2)
TILE = 128
LABEL_FONT_SIZE = 16


def as_tiles(batch: torch.Tensor, side: int = TILE) -> torch.Tensor:
    """[B, C, H, W] pictures resized to [B, C, side, side] (see the module doc); bilinear weights are
    convex, so values stay in their range."""
    height, width = batch.shape[-2:]
    if (height, width) == (side, side):
        return batch
    whole_factor = height == width and side % height == 0
    mode = "nearest" if whole_factor else "bilinear"
    return F.interpolate(batch, size=(side, side), mode=mode, antialias=not whole_factor)


def square_tiles(pictures: Sequence[torch.Tensor], side: int = TILE) -> torch.Tensor:
    """Pictures of different sizes ([C, H, W] or [H, W]) centre-cropped to squares, made `side`
    pixels a side and stacked, for a grid of real images of any shape."""
    tiles = []
    for picture in pictures:
        batch = picture.detach().float().cpu().reshape(1, -1, *picture.shape[-2:])
        square = TF.center_crop(batch, min(batch.shape[-2:]))
        tiles.append(as_tiles(square, side)[0].reshape(-1, side, side).squeeze(0))
    return torch.stack(tiles)


def to_unit_range(images: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] -> [0, 1]."""
    return ((images + 1) / 2).clamp(0, 1)


def overlay_masks(
    images: torch.Tensor, masks: torch.Tensor, color=FOREGROUND_COLOR, alpha: float = 0.5
) -> torch.Tensor:
    """Images [B, 3, H, W] in [-1, 1] with masks [B, H, W] tinted in `color`; result in [0, 1]."""
    base = to_unit_range(images.detach().float().cpu())
    weight = alpha * masks.detach().float().cpu().unsqueeze(1)
    tint = torch.tensor(color).view(1, 3, 1, 1)
    return base * (1 - weight) + tint * weight


def masks_as_images(masks: torch.Tensor) -> torch.Tensor:
    """Masks or probability maps [B, H, W] in [0, 1] as gray RGB images [B, 3, H, W]."""
    return masks.detach().float().cpu().unsqueeze(1).expand(-1, 3, -1, -1)


def label_tile(text: str, side: int = TILE) -> torch.Tensor:
    """A white [3, side, side] tile with `text` in black, naming the row it starts."""
    tile = Image.new("RGB", (side, side), "white")
    ImageDraw.Draw(tile).text((4, side // 2), text, fill="black", anchor="lm", font=label_font())
    return TF.to_tensor(tile)


def label_font() -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=LABEL_FONT_SIZE)
    except TypeError:  # Pillow < 10.1 has one bitmap size
        return ImageFont.load_default()


def samples_grid(
    images: torch.Tensor,
    masks: torch.Tensor | None,
    predictions: torch.Tensor | None = None,
    count: int = 8,
    tile: int = TILE,
) -> torch.Tensor:
    """A grid with a column of row names, then one column per sample; rows: image, then the true mask
    and its overlay (when `masks` are given), then the predicted probability and the overlay of its 0.5
    threshold, the prediction (when given)."""
    images = images[:count]
    rows = {"image": to_unit_range(images.detach().float().cpu())}
    if masks is not None:
        masks = masks[:count]
        rows |= {"true mask": masks_as_images(masks), "overlay": overlay_masks(images, masks)}
    if predictions is not None:
        predictions = predictions[:count]
        rows |= {
            "probability": masks_as_images(predictions),
            "prediction": overlay_masks(images, predictions > 0.5, PREDICTION_COLOR),
        }
    tiles = [torch.cat([label_tile(name, tile)[None], as_tiles(row, tile)]) for name, row in rows.items()]
    return make_grid(torch.cat(tiles), nrow=len(images) + 1, padding=2, pad_value=1.0)


def save_samples_grid(path: str | Path, *args, **kwargs) -> None:
    """`samples_grid(*args, **kwargs)` written as an image file."""
    save_image(samples_grid(*args, **kwargs), str(path))


def walk_radii(radius: float, steps: int) -> list[float]:
    """Shift radii from -radius to radius and back (a loop without a repeated frame)."""
    forward = torch.linspace(-radius, radius, steps).tolist()
    return forward + forward[-2:0:-1]


@torch.no_grad()
def direction_walk(G, direction: torch.Tensor, z: torch.Tensor, radii: Sequence[float]) -> list[Image.Image]:
    """One frame per radius r: the images `G(z + r d)` side by side under a caption with r."""
    frames = []
    device = z.device
    for radius in radii:
        images = to_unit_range(G.gen_shifted(z, radius * direction.to(device)).float().cpu())
        row = make_grid(as_tiles(images), nrow=len(images), padding=2, pad_value=1.0)
        frame = Image.fromarray(row.mul(255).round().byte().permute(1, 2, 0).numpy())
        canvas = Image.new("RGB", (frame.width, frame.height + LABEL_FONT_SIZE + 8), "white")
        canvas.paste(frame, (0, LABEL_FONT_SIZE + 8))
        ImageDraw.Draw(canvas).text((4, 4), f"r = {radius:+.1f}", fill="black", font=label_font())
        frames.append(canvas)
    return frames


def save_gif(frames: Sequence[Image.Image], path: str | Path, frame_ms: int = 80) -> None:
    """Frames as a looping animated GIF."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    frames[0].save(path, save_all=True, append_images=list(frames[1:]), duration=frame_ms, loop=0)


@dataclass
class GifOptions:
    """The walk's flags (`python -m visualization gif`)."""

    samples: int = flag(4, "latents side by side", check=at_least(1))
    radius: float = flag(10.0, "the largest shift |r| along the direction", check=positive)
    steps: int = flag(21, "radii from -r to r (then back)", check=at_least(2))
    seed: int = flag(0, "seed of the latents")
    frame_ms: int = flag(80, "milliseconds per frame", check=at_least(1))
    device: str | None = device_flag()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m visualization", description="Pictures from the command line."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="{gif}")
    gif = commands.add_parser(
        "gif",
        help="the walk along a generator's background direction as an animated GIF",
        description="The walk G(z + r d) along a generator's background direction d as an animated GIF, "
        "e.g. python -m visualization gif --demo --out walk.gif",
    )
    gif.add_argument("--demo", action="store_true", help="the demo's generator and direction")
    gif.add_argument("--gan_weights", type=Path, metavar="FILE", help="generator state dict")
    gif.add_argument(
        "--gan_config", type=parse_json_object, metavar="JSON", help="generator config (default: BigBiGAN)"
    )
    gif.add_argument("--bg_direction", type=Path, metavar="FILE", help="the latent direction (.pth)")
    gif.add_argument("--out", type=Path, required=True, metavar="GIF")
    gif.add_argument("--overwrite", action="store_true", help="replace --out when it exists")
    add_flags(gif, GifOptions, defaults=True)
    add_debug_flag(gif)
    return parser


def write_direction_gif(args: argparse.Namespace) -> Path:
    """`python -m visualization gif`: load the generator and direction, walk, write the GIF."""
    options = from_namespace(GifOptions, args)
    check_fields(options)
    if args.demo:
        args.gan_weights = args.gan_weights or DEMO_GENERATOR_PATH
        args.gan_config = args.gan_config or dict(DEMO_GENERATOR_CONFIG)
        args.bg_direction = args.bg_direction or DEMO_DIRECTION_PATH
    if not (args.gan_weights and args.bg_direction):
        raise InputError("give --gan_weights and --bg_direction (or --demo)")
    refuse_existing(args.out, args.overwrite)
    device = resolve_device(options.device)
    G = make_big_gan(args.gan_weights, device=device, config=args.gan_config).eval()
    direction = load_direction(args.bg_direction, G.dim_shift)
    z = torch.randn(options.samples, G.dim_z, generator=torch.Generator().manual_seed(options.seed))
    frames = direction_walk(G, direction, z.to(device), walk_radii(options.radius, options.steps))
    save_gif(frames, args.out, options.frame_ms)
    print(f"wrote {args.out} ({len(frames)} frames)")
    return args.out


def main(argv: list[str] | None = None) -> Path:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    return write_direction_gif(args)


if __name__ == "__main__":
    sys.exit(run_cli(main))
