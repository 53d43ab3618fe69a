"""torch.hub entry points: the BigBiGAN generator, its background direction and the U-Nets.

    import torch
    unet = torch.hub.load("path/to/this/clone", "unet", source="local", name="imagenet")
    G = torch.hub.load("path/to/this/clone", "bigbigan", source="local")
    d = torch.hub.load("path/to/this/clone", "bg_direction", source="local")

(or, instead of a clone's path, this repository's GitHub owner/name without `source`).

Each entry loads its file from under BGW_ROOT (default: this repository) when present, else fetches
it with download_all.sh, which checks every file before keeping it (BGW_MIRROR works as there). Models
come back in eval mode. `unet(name="demo")` and `demo_generator()` need nothing downloaded.
"""

import os
import subprocess
from pathlib import Path

import torch

from BigGAN.gan_load import UnconditionalBigGAN, make_big_gan, make_biggan_config
from demo.assets import DEMO_GENERATOR_CONFIG, DEMO_GENERATOR_PATH, DEMO_UNET_PATH
from train_config import BIGBIGAN_DIRECTION, BIGBIGAN_WEIGHTS
from UNet.unet_load import RELEASED_UNETS, load_unet
from UNet.unet_model import UNet
from utils.errors import MissingInputError
from utils.inputs import load_direction

dependencies = ["torch", "torchvision", "numpy", "scipy", "PIL", "skimage"]

HERE = Path(__file__).resolve().parent


def _root() -> Path:
    return Path(os.environ.get("BGW_ROOT") or HERE)


def _local_or_downloaded(relative: str | Path) -> Path:
    """`BGW_ROOT/relative`, fetched and checked by download_all.sh first when it is missing."""
    path = _root() / relative
    if path.is_file():
        return path
    command = ["bash", str(HERE / "download_all.sh"), "--only", Path(relative).name]
    result = subprocess.run(
        command, env={**os.environ, "BGW_ROOT": str(_root())}, capture_output=True, text=True
    )
    if result.returncode != 0 or not path.is_file():
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        reason = "\n".join(errors) or result.stderr.strip()
        raise MissingInputError(f"{path} is missing and `{' '.join(command)}` could not fetch it:\n{reason}")
    return path


def bigbigan(weights: str | None = None, device: str | None = None) -> UnconditionalBigGAN:
    """The 128-px BigBiGAN generator (BigBiGAN_x1.pth, BigGAN-PyTorch layout), or `weights`."""
    return make_big_gan(weights or _local_or_downloaded(BIGBIGAN_WEIGHTS), device=device).eval()


def bg_direction(path: str | None = None) -> torch.Tensor:
    """BigBiGAN's background direction (bg_direction.pth), a [120] tensor, or the one in `path`."""
    dim_z = make_biggan_config(128)["dim_z"]
    return load_direction(path or _local_or_downloaded(BIGBIGAN_DIRECTION), dim_z)


def unet(name: str = "imagenet", device: str | None = None) -> UNet:
    """A released U-Net (imagenet, cub, flowers), the demo's (demo), or the one saved at a path."""
    if name in RELEASED_UNETS:
        path = _local_or_downloaded(RELEASED_UNETS[name])
    elif name == "demo":
        path = DEMO_UNET_PATH
    else:
        path = Path(name)
    return load_unet(path, device).eval()


def demo_generator(device: str | None = None) -> UnconditionalBigGAN:
    """The demo world's 32-px generator, shipped in demo/assets/."""
    return make_big_gan(DEMO_GENERATOR_PATH, device=device, config=dict(DEMO_GENERATOR_CONFIG)).eval()
