"""Checks a downloaded file before download_all.sh keeps it: `python3 -m verify_download KIND FILE`.

A download can be a web page (a link that is not the file itself), truncated, or of another model.
Each kind is loaded the way the scripts will load it, so a kept file is known to work. Prints
`ok: <what the file holds>`, or `error: <why not>` with exit status 1.
"""

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from BigGAN.gan_load import make_big_gan, make_biggan_config
from UNet.unet_load import load_unet
from utils.cli import run_cli
from utils.inputs import load_direction, load_embeddings
from utils.weights import WeightsError

DIM_Z = make_biggan_config(128)["dim_z"]
# The released U-Nets have UNet()'s default layout: RGB in, two classes out, width 64, bilinear ups.
RELEASED_UNET = {"n_channels": 3, "out_channels": 2, "base_width": 64, "bilinear": True}


def _parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def verify_generator(path: Path) -> str:
    """The file loads strictly into the 128-px BigBiGAN generator, as train_segmentation.py loads it."""
    generator = make_big_gan(path, device="cpu")
    return f"the 128-px BigBiGAN generator, {_parameter_count(generator):,} parameters"


def verify_direction(path: Path) -> str:
    """The file holds a finite, non-zero latent direction of the generator's dim_z elements."""
    direction = load_direction(path, DIM_Z)
    return f"a latent direction of {direction.numel()} elements, norm {direction.norm():.4g}"


def verify_embeddings(path: Path) -> str:
    """The file holds a non-empty float matrix [N, dim_z] with finite rows."""
    embeddings = load_embeddings(path, DIM_Z)
    return f"{len(embeddings):,} latent embeddings of {DIM_Z} values, all finite"


def verify_unet(path: Path) -> str:
    """The file loads strictly into a U-Net of the released layout (load_unet would take any width)."""
    unet = load_unet(path, device="cpu")
    layout = {key: getattr(unet, key) for key in RELEASED_UNET}
    if layout != RELEASED_UNET:
        raise WeightsError(f"{path} holds a U-Net with {layout}, not the released {RELEASED_UNET}")
    return f"a U-Net of the released layout (width 64), {_parameter_count(unet):,} parameters"


VERIFIERS: dict[str, Callable[[Path], str]] = {
    "generator": verify_generator,
    "direction": verify_direction,
    "embeddings": verify_embeddings,
    "unet": verify_unet,
}


def verify(kind: str, path: str | Path) -> str:
    """What `path` holds when it is a usable file of `kind`; raises a `UserError` saying why it is not."""
    return VERIFIERS[kind](Path(path))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("kind", choices=VERIFIERS, help="what the file must be")
    parser.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    print(f"ok: {verify(args.kind, args.file)}")


if __name__ == "__main__":
    sys.exit(run_cli(main))
