"""Generator configs, the unconditional wrapper with latent shifting, and weight loading.

This is the only module that reads generator weight files.
"""

import json
from pathlib import Path

import torch
from torch import nn

from BigGAN.model.BigGAN import ARCH_CHANNELS, Generator
from utils.device import resolve_device
from utils.errors import InputError
from utils.weights import load_state_dict_strictly, read_state_dict

DOWNLOAD_HINT = "run download_all.sh to fetch BigBiGAN_x1.pth, or pass the path with --gan_weights"
# Singular-value logs: written during training only, absent from converted TF-Hub checkpoints.
SV_LOG_KEYS = r"(.*\.)?sv\d+"


def make_biggan_config(resolution: int = 128) -> dict:
    """The BigBiGAN generator configuration (BigGAN-PyTorch names) at `resolution` pixels.

    BigBiGAN was released at 128 px; other resolutions of `ARCH_CHANNELS` give the same design at
    that size (narrow test and demo generators override the rest).
    """
    if resolution not in ARCH_CHANNELS:
        raise InputError(
            f"no generator layout for resolution {resolution}: use one of {sorted(ARCH_CHANNELS)}"
        )
    return {
        "G_ch": 96,
        "dim_z": 120,
        "bottom_width": 4,
        "resolution": resolution,
        "G_attn": "64",
        "n_classes": 1000,
        "G_shared": True,
        "shared_dim": 128,
        "hier": True,
        "BN_eps": 1e-4,
        "SN_eps": 1e-4,
        "num_G_SVs": 1,
        "num_G_SV_itrs": 1,
        "G_activation": "relu",
        "norm_style": "bn",
    }


def generator_config(overrides: dict | None = None, resolution: int = 128) -> dict:
    """`make_biggan_config` with `overrides` applied; their `resolution`, when given, wins."""
    overrides = overrides or {}
    return {**make_biggan_config(overrides.get("resolution", resolution)), **overrides}


class UnconditionalBigGAN(nn.Module):
    """A class-conditional BigGAN used unconditionally: every sample gets class 0."""

    def __init__(self, big_gan: Generator):
        super().__init__()
        self.big_gan = big_gan
        self.dim_z = big_gan.dim_z
        self.dim_shift = big_gan.dim_z

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        classes = torch.zeros(z.shape[0], dtype=torch.long, device=z.device)
        return self.big_gan(z, self.big_gan.shared(classes))

    def gen_shifted(self, z: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        """Images of the latents moved by `shift` ([dim_z] or [B, dim_z])."""
        return self.forward(z + shift)


def load_generator_weights(generator: Generator, weights_path: str | Path) -> None:
    """Fill a bare `Generator` from a BigGAN-PyTorch state dict, strictly (see utils.weights)."""
    state = read_state_dict(weights_path, DOWNLOAD_HINT)
    load_state_dict_strictly(generator, state, str(weights_path), tolerated_missing=SV_LOG_KEYS)


def make_big_gan(
    weights_path: str | Path,
    resolution: int = 128,
    device: str | torch.device | None = None,
    config: dict | None = None,
) -> UnconditionalBigGAN:
    """The generator of `weights_path` in eval mode on `device` (None: CUDA if available).

    `config` overrides entries of `make_biggan_config(resolution)`, for other generators of the
    same class (narrow test generators, the demo generator); its `resolution`, when given, wins.
    """
    try:
        generator = Generator(**generator_config(config, resolution))
    except (TypeError, ValueError) as error:
        raise InputError(f"generator config {json.dumps(config)} is not valid: {error}") from error
    load_generator_weights(generator, weights_path)
    return UnconditionalBigGAN(generator).to(resolve_device(device)).eval()
