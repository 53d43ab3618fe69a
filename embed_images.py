r"""Latent embeddings of a folder of images, for `train_segmentation.py --z FILE.npy`.

    python embed_images.py --images cache/my_images --out embeddings/my_images_z.npy \
        --gan_weights demo/assets/generator.pth --gan_config demo/assets/generator_config.json

One float32 row of dim_z values per image, in sorted file order; FILE.files.txt next to the matrix lists
the image of each row. --method invert (default) optimises each image's latent so that G(z) reconstructs
it (any generator of this project's Generator class; the 128-px BigBiGAN without --gan_config);
--method tfhub runs the BigBiGAN encoder of a downloaded TF-Hub module (TensorFlow 2), as the original
work did. See docs/embeddings.md.
"""

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from BigGAN.gan_load import make_big_gan
from gan_inversion import (
    Embeddings,
    InversionConfig,
    encode_folder_tfhub,
    file_list_path,
    invert_folder,
    save_embeddings,
)
from train_config import BIGBIGAN_WEIGHTS, parse_json_object
from utils.checks import at_least, check_fields
from utils.cli import add_debug_flag, run_cli
from utils.device import resolve_device
from utils.errors import InputError
from utils.flags import add_flags, device_flag, flag, from_namespace, threads_flag
from utils.run_files import refuse_existing

METHODS = ("invert", "tfhub")
TFHUB_MODULE = "tfhub/bigbigan-resnet50"


@dataclass
class RunOptions:
    """How images are fed, for both methods."""

    batch_size: int = flag(
        64, "images per batch (inverted together, each with its own latent)", check=at_least(1)
    )
    device: str | None = device_flag()
    threads: int | None = threads_flag()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="embed_images.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--images", type=Path, required=True, metavar="DIR", help="folder of .jpg/.png images"
    )
    parser.add_argument("--out", type=Path, required=True, metavar="FILE.npy", help="the matrix to write")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace --out and its file list if they exist",
    )
    parser.add_argument("--method", choices=METHODS, default="invert", help="(default: invert)")
    parser.add_argument(
        "--gan_weights",
        type=Path,
        default=Path(BIGBIGAN_WEIGHTS),
        metavar="FILE",
        help=f"invert: generator state dict (default: {BIGBIGAN_WEIGHTS})",
    )
    parser.add_argument(
        "--gan_config",
        type=parse_json_object,
        default=None,
        metavar="JSON",
        help="invert: JSON object or .json file overriding the generator config (default: BigBiGAN, 128 px)",
    )
    parser.add_argument(
        "--tfhub_module",
        type=Path,
        default=Path(TFHUB_MODULE),
        metavar="DIR",
        help=f"tfhub: the extracted TF-Hub module deepmind/bigbigan-resnet50/1 (default: {TFHUB_MODULE})",
    )
    add_debug_flag(parser)
    add_flags(parser.add_argument_group("both methods"), RunOptions, defaults=True)
    add_flags(parser.add_argument_group("--method invert"), InversionConfig, defaults=True)
    return parser


def check_out(out: Path, overwrite: bool) -> None:
    if out.suffix != ".npy" or out.is_dir():
        raise InputError(f"--out {out}: name a .npy file, e.g. {out.with_suffix('.npy')}")
    for path in (out, file_list_path(out)):
        refuse_existing(path, overwrite)


def report(embeddings: Embeddings, out: Path) -> None:
    """What was written, and how far the latents and reconstructions are from what the generator knows."""
    latents = embeddings.latents
    norms = np.linalg.norm(latents, axis=1)
    print(f"saved {list(latents.shape)} float32 to {out}, file list in {file_list_path(out)}")
    typical = latents.shape[1] ** 0.5
    print(f"latent norms: mean {norms.mean():.2f}, max {norms.max():.2f} (N(0, I): about {typical:.2f})")
    if embeddings.errors is not None:
        error, baseline = embeddings.errors.mean(), embeddings.baseline_errors.mean()
        print(
            f"reconstruction error (mean squared, pixels in [-1, 1]): {error:.4f}; G(0) gives {baseline:.4f} "
            f"(ratio {error / baseline:.3f})"
        )


def main(argv: list[str] | None = None) -> Embeddings:
    """Check the flags, embed the folder, write the matrix and its file list; user errors raise UserError."""
    args = build_parser().parse_args(argv)
    options, config = from_namespace(RunOptions, args), from_namespace(InversionConfig, args)
    check_fields(options, config)
    check_out(args.out, args.overwrite)
    if options.threads is not None:
        torch.set_num_threads(options.threads)
    if args.method == "tfhub":
        embeddings = encode_folder_tfhub(args.tfhub_module, args.images, options.batch_size)
    else:
        device = resolve_device(options.device)
        G = make_big_gan(args.gan_weights, device=device, config=args.gan_config)
        embeddings = invert_folder(G, args.images, config, options.batch_size)
    save_embeddings(embeddings, args.images, args.out)
    report(embeddings, args.out)
    return embeddings


if __name__ == "__main__":
    sys.exit(run_cli(main))
