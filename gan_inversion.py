"""Latent embeddings of real images, the rows `train_segmentation.py --z FILE.npy` samples from.

The paper's E-BigBiGAN variant samples latents near the encodings of real images rather than from
N(0, I), so that the synthetic images look like the data set. Two ways to get them:

- `invert_folder` (PyTorch, any `Generator`): per-image latent optimisation, so that `G(z)` reconstructs
  the image. The latents are kept in the ball of radius sqrt(dim_z) around 0, the radius at which
  N(0, I) draws concentrate (10.95 +- 0.7 for 120 values): unconstrained, the latents of real images
  drift far outside (to about twice that radius with the demo generator), where the generator was
  never trained.
- `encode_folder_tfhub` (TensorFlow 2): the BigBiGAN encoder of the downloaded TF-Hub module, whose
  `z_sample` output the original work saved.

Both read a folder's images in sorted path order (`data.image_files`), one row per image.
"""

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader
from torchvision.transforms import InterpolationMode

from bg_direction import frozen
from data import UnannotatedDataset
from tf_tools.tfhub_module import MODULE_URL, checkpoint_prefix, download_help
from utils.checks import at_least, positive
from utils.errors import InputError, MissingInputError, UserError
from utils.flags import flag
from utils.progress import progress_bar

ENCODER_SIZE = 256  # the BigBiGAN encoder's input: resize the short side to 256, centre-crop 256
NOT_THE_MODULE = f"extract the TF-Hub module {MODULE_URL} (TF1 Hub format) into it again"
TFHUB_INSTALL_HINT = (
    "--method tfhub needs TensorFlow 2: pip install -r requirements-tf.txt (best in an environment of its "
    "own, see that file), or use --method invert, which needs PyTorch only"
)


@dataclass
class InversionConfig:
    """Latent optimisation settings, chosen on the demo generator (docs/experiments.md)."""

    steps: int = flag(200, "Adam steps per batch of images", check=at_least(1))
    rate: float = flag(0.1, "Adam learning rate of the latents", check=positive)


class MissingDependencyError(UserError, ImportError):
    """An optional package a chosen method needs is not installed."""


def square_crop(image: Image.Image) -> Image.Image:
    """The centred square of the short side: the region the original's resize + centre crop keeps."""
    return TF.center_crop(image, min(image.size))


def generator_inputs(root: str | Path, resolution: int) -> UnannotatedDataset:
    """The images of `root` as the generator draws them: the encoder's square, resized once to `resolution`.

    The original resized to 256, cropped 256 and let the encoder see that; the same square resized
    straight to the generator's size avoids resampling twice.
    """

    def to_generator_size(image: Image.Image) -> Image.Image:
        return TF.resize(square_crop(image), [resolution, resolution], InterpolationMode.BILINEAR)

    return UnannotatedDataset(root, transform=to_generator_size)


def encoder_inputs(root: str | Path) -> UnannotatedDataset:
    """The images of `root` as the original notebook fed the encoder: short side 256, centre crop 256."""
    return UnannotatedDataset(
        root, transform=lambda image: TF.center_crop(image, ENCODER_SIZE), size=ENCODER_SIZE
    )


def pixel_errors(G: nn.Module, z: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """Mean squared pixel error of `G(z)` against `images`, one value per image."""
    return (G(z) - images).pow(2).flatten(1).mean(dim=1)


def project_to_ball(z: torch.Tensor) -> torch.Tensor:
    """Rows longer than sqrt(dim_z), the typical length of an N(0, I) draw, scaled back to that length."""
    radius = z.shape[1] ** 0.5
    return z * (radius / z.norm(dim=1, keepdim=True).clamp(min=1e-12)).clamp(max=1.0)


def invert_batch(G: nn.Module, images: torch.Tensor, config: InversionConfig) -> torch.Tensor:
    """Latents whose images reconstruct `images`: Adam from z = 0, projected into the ball after each step.

    z = 0, the prior's mean, is the start: random starts, even the best of 64 draws per image, ended
    further from the image on the demo generator. The loss sums the images' errors, so each latent gets
    the gradient of its own image only (G is in eval mode), whatever else is in the batch.
    """
    z = torch.zeros(len(images), G.dim_z, device=images.device, requires_grad=True)
    optimizer = torch.optim.Adam([z], lr=config.rate)
    for _ in range(config.steps):
        loss = pixel_errors(G, z, images).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            z.copy_(project_to_ball(z))
    return z.detach()


@dataclass
class Embeddings:
    """Latents `[N, dim_z]` of the images `files` (in that order), with the reconstruction errors."""

    latents: np.ndarray
    files: list[Path]
    errors: np.ndarray | None = None  # per-image mean squared pixel error of G(z), pixels in [-1, 1]
    baseline_errors: np.ndarray | None = None  # the same for G(0), the scale the errors are judged by


def invert_folder(
    G: nn.Module, root: str | Path, config: InversionConfig, batch_size: int = 64
) -> Embeddings:
    """Invert every image of `root`, `batch_size` at a time; deterministic for a given batch size (another
    one changes the float rounding, which Adam amplifies a little)."""
    device = next(G.parameters()).device
    dataset = generator_inputs(root, G.big_gan.resolution)
    latents, errors, baseline_errors = [], [], []
    progress = progress_bar(total=len(dataset), desc="inverting", unit="image")
    with frozen(G), progress:
        for images in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            images = images.to(device)
            z = invert_batch(G, images, config)
            with torch.no_grad():
                errors.append(pixel_errors(G, z, images).cpu())
                baseline_errors.append(pixel_errors(G, torch.zeros_like(z), images).cpu())
            latents.append(z.cpu())
            progress.update(len(images))
            progress.set_postfix(mse=f"{torch.cat(errors).mean().item():.4f}")
    return Embeddings(
        torch.cat(latents).numpy().astype(np.float32),
        dataset.files,
        torch.cat(errors).numpy(),
        torch.cat(baseline_errors).numpy(),
    )


@torch.no_grad()
def reconstructions(
    G: nn.Module, root: str | Path, latents: np.ndarray, count: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `count` images of `root` as the generator sees them, and `G(z)` of their rows."""
    dataset = generator_inputs(root, G.big_gan.resolution)
    count = min(count, len(dataset), len(latents))
    device = next(G.parameters()).device
    images = torch.stack([dataset[index] for index in range(count)])
    return images, G(torch.from_numpy(latents[:count]).to(device)).cpu()


def import_tensorflow():
    """TensorFlow, or `MissingDependencyError` saying how to install it."""
    if importlib.util.find_spec("tensorflow") is None:
        raise MissingDependencyError(TFHUB_INSTALL_HINT)
    import tensorflow as tf

    return tf


def tfhub_encoder(module_dir: str | Path) -> Callable[[np.ndarray], np.ndarray]:
    """The `encode` signature of the TF-Hub BigBiGAN module in `module_dir`: NHWC images -> `z_sample`."""
    checkpoint_prefix(module_dir)
    if not (Path(module_dir) / "saved_model.pb").is_file():
        raise MissingInputError(download_help(module_dir))
    tf = import_tensorflow()
    try:
        # The module's default graph variant has no tags (TF1 Hub format); hub.Module is gone from TF2.
        module = tf.saved_model.load(str(module_dir), tags=[])
    except (OSError, ValueError, RuntimeError, tf.errors.OpError) as error:
        raise InputError(
            f"{module_dir} cannot be loaded as a SavedModel ({error}): {NOT_THE_MODULE}"
        ) from error
    if "encode" not in module.signatures:
        raise InputError(
            f"{module_dir} has no 'encode' signature (it has {sorted(module.signatures)}): {NOT_THE_MODULE}"
        )
    encode = module.signatures["encode"]
    (input_name,) = encode.structured_input_signature[1]

    def z_sample(images: np.ndarray) -> np.ndarray:
        return encode(**{input_name: tf.constant(images)})["z_sample"].numpy()

    return z_sample


def encode_folder_tfhub(module_dir: str | Path, root: str | Path, batch_size: int) -> Embeddings:
    """The encoder's `z_sample` of every image of `root`, inputs prepared as the original notebook did."""
    encode = tfhub_encoder(module_dir)
    dataset = encoder_inputs(root)
    latents = []
    with progress_bar(total=len(dataset), desc="encoding", unit="image") as progress:
        for images in DataLoader(dataset, batch_size=batch_size, shuffle=False):
            latents.append(encode(images.permute(0, 2, 3, 1).numpy()))
            progress.update(len(images))
    return Embeddings(np.concatenate(latents).astype(np.float32), dataset.files)


def file_list_path(out: str | Path) -> Path:
    """`x.npy` -> `x.files.txt`: the image of each row, one path per line, relative to the folder."""
    return Path(out).with_suffix(".files.txt")


def save_embeddings(embeddings: Embeddings, root: str | Path, out: str | Path) -> Path:
    """Write the `.npy` matrix and its file list, each through a temporary file and a rename."""
    out, files_path = Path(out), file_list_path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = "".join(f"{path.relative_to(root).as_posix()}\n" for path in embeddings.files)
    files_tmp = files_path.with_name(files_path.name + ".tmp")
    files_tmp.write_text(lines)
    os.replace(files_tmp, files_path)
    out_tmp = out.with_name(out.name + ".tmp")
    with open(out_tmp, "wb") as file:
        np.save(file, embeddings.latents)
    os.replace(out_tmp, out)
    return files_path
