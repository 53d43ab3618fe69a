r"""Find the background-darkening latent direction of a generator and save it as a [dim_z] tensor.

    python find_direction.py --gan_weights demo/assets/generator.pth \
        --gan_config demo/assets/generator_config.json --out demo/assets/bg_direction.pth \
        --preview images/demo_direction.png

Without --gan_config the generator is the 128-px BigBiGAN. --objective picks this project's variant of
Melas-Kyriazi et al.'s objective (default) or theirs as published (see bg_direction). The direction
is checked (a finite unit vector from a search that did not diverge) before it is saved, atomically, with
torch.save as a plain float32 tensor (loadable with torch.load(weights_only=True)); the script then
prints its rating (see bg_direction.rate_direction), on latents drawn from --z if given.
"""

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torchvision.utils import save_image

from bg_direction import (
    DirectionSearchConfig,
    TwoMapFitConfig,
    check_test_rows,
    find_direction,
    rate_direction,
    shift_dim,
    shift_masks,
)
from BigGAN.gan_load import make_big_gan
from train_config import parse_json_object
from utils.checks import at_least, check_fields
from utils.cli import add_debug_flag, run_cli
from utils.device import resolve_device
from utils.errors import InputError
from utils.flags import add_flags, device_flag, flag, from_namespace, threads_flag
from utils.inputs import load_embeddings
from utils.run_files import atomic_torch_save, refuse_existing


@dataclass
class ScriptOptions:
    """The script's own numeric flags; the search's are DirectionSearchConfig's."""

    rating_steps: int = flag(
        200, "Adam steps of the two-map fit rating (the original's: 200)", check=at_least(1)
    )
    device: str | None = device_flag()
    threads: int | None = threads_flag()


def save_preview(G, direction: torch.Tensor, path: Path, samples: int = 8, radius: float = 5.0) -> None:
    """Rows: G(z), G(z + radius * d), and the mask of pixels the shift brightens."""
    device = next(G.parameters()).device
    z = torch.randn(samples, G.dim_z, generator=torch.Generator().manual_seed(2)).to(device)
    before, after, masks = shift_masks(G, z, direction, radius)
    masks = masks.float().unsqueeze(1).expand(-1, 3, -1, -1) * 2 - 1
    path.parent.mkdir(parents=True, exist_ok=True)
    grid = torch.cat([before, after, masks]).cpu()
    save_image(grid, path, nrow=samples, normalize=True, value_range=(-1, 1))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="find_direction.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--gan_weights",
        type=Path,
        required=True,
        metavar="FILE",
        help="generator state dict (BigGAN-PyTorch layout)",
    )
    parser.add_argument(
        "--gan_config",
        type=parse_json_object,
        default=None,
        metavar="JSON",
        help="JSON object or .json file overriding the generator config (default: BigBiGAN at 128 px)",
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="FILE", help="where to save the direction (.pth)"
    )
    parser.add_argument(
        "--preview", type=Path, default=None, metavar="PNG", help="also save images, shifted images and masks"
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace --out and --preview if they exist",
    )
    parser.add_argument(
        "--z",
        type=Path,
        default=None,
        metavar="FILE",
        help="embeddings [N, dim_z] (.npy/.pt) to draw the rating's latents from, as the original does "
        "(default: N(0, I))",
    )
    add_debug_flag(parser)
    add_flags(parser.add_argument_group("this script"), ScriptOptions, defaults=True)
    add_flags(
        parser.add_argument_group("the search (DirectionSearchConfig)"), DirectionSearchConfig, defaults=True
    )
    return parser


def main(argv: list[str] | None = None) -> torch.Tensor:
    """Check every flag, search, check the result, then write it; user errors raise `UserError`."""
    args = build_parser().parse_args(argv)
    config = from_namespace(DirectionSearchConfig, args)
    options = from_namespace(ScriptOptions, args)
    fit = TwoMapFitConfig(train_steps=options.rating_steps)
    check_fields(config, options)
    if args.out.is_dir():
        raise InputError(f"--out {args.out} is a folder; name the file, e.g. {args.out / 'direction.pth'}")
    refuse_existing(args.out, args.overwrite)
    if args.preview is not None:
        refuse_existing(args.preview, args.overwrite)
    if options.threads is not None:
        torch.set_num_threads(options.threads)
    G = make_big_gan(args.gan_weights, device=resolve_device(options.device), config=args.gan_config)
    zs = load_embeddings(args.z, shift_dim(G))
    if zs is not None:
        check_test_rows(zs, fit)
    direction = find_direction(G, config)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save(direction, args.out)
    print(f"saved direction {list(direction.shape)} to {args.out}")
    rating = rate_direction(G, direction, fit=fit, zs=zs)
    print(" ".join(f"{key}={value:.3f}" for key, value in rating.items()))
    if args.preview is not None:
        save_preview(G, direction, args.preview)
        print(f"preview in {args.preview}")
    return direction


if __name__ == "__main__":
    sys.exit(run_cli(main))
