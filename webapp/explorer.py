"""The direction explorer: `G(z)`, `G(z + r d)` and the synthetic mask of one latent at a radius r,
with the training filters' verdict, made by the training run's own `MaskGenerator`."""

from dataclasses import dataclass, replace
from pathlib import Path

import torch
from PIL import Image

from BigGAN.gan_load import make_big_gan
from train_config import SegmentationTrainParams
from train_segmentation import build_mask_generator
from utils.inputs import load_direction
from visualization import as_tiles, direction_walk, masks_as_images, save_gif, to_unit_range, walk_radii

DISPLAY_SIDE = 256


def as_picture(batch: torch.Tensor, side: int = DISPLAY_SIDE) -> Image.Image:
    """The first `[3, H, W]` picture in [0, 1] of a batch, enlarged to `side` pixels."""
    tile = as_tiles(batch[:1].float().cpu(), side)[0]
    return Image.fromarray(tile.mul(255).round().byte().permute(1, 2, 0).numpy())


@dataclass
class ExplorerSample:
    image: Image.Image
    shifted: Image.Image
    mask: Image.Image
    verdict: str
    mask_share: float


class DirectionExplorer:
    """One generator and its background direction, explored one latent (a seed) at a time."""

    def __init__(
        self,
        gan_weights: str | Path,
        gan_config: dict | None,
        bg_direction: str | Path,
        params: SegmentationTrainParams | None = None,
        device: str = "cpu",
    ):
        self.G = make_big_gan(gan_weights, device=device, config=gan_config).eval()
        self.direction = load_direction(bg_direction, self.G.dim_shift)
        self.params = replace(params or SegmentationTrainParams(), batch_size=1)
        self.device = device

    def _generator(self, seed: int, radius: float):
        params = replace(self.params, latent_shift_r=radius)
        return build_mask_generator(self.G, self.direction, params, None, 0.0, seed, self.device)

    def latent(self, seed: int) -> torch.Tensor:
        """The `[1, dim_z]` latent a seed names (the training run's draw)."""
        return self._generator(seed, self.params.latent_shift_r).make_noise(1)

    @torch.no_grad()
    def sample(self, seed: int, radius: float) -> ExplorerSample:
        generator = self._generator(seed, radius)
        image, shifted, mask = generator.gen_samples(generator.make_noise(1))
        return ExplorerSample(
            image=as_picture(to_unit_range(image)),
            shifted=as_picture(to_unit_range(shifted)),
            mask=as_picture(masks_as_images(mask.float())),
            verdict=generator.filter_verdicts(shifted, mask)[0],
            mask_share=float(mask.float().mean()),
        )

    def walk_gif(self, seed: int, path: str | Path, radius: float = 10.0, steps: int = 21) -> Path:
        """The walk of this seed's latent from -radius to radius and back, as a GIF at `path`."""
        frames = direction_walk(self.G, self.direction, self.latent(seed), walk_radii(radius, steps))
        save_gif(frames, path)
        return Path(path)
