"""Finding and rating the latent direction that darkens the background and lightens the object.

Voynov et al. (2021) pick this direction among directions discovered without supervision; here it is
found directly with the objective of Melas-Kyriazi et al. (2021, "Finding an unsupervised image
segmenter in each of your deep generative models"): after a shift along the direction, the image
should be darker towards the borders and brighter in the centre, while its edges stay where they
were. It works for any generator exposing `dim_shift` or `dim_z`, `G(z)` and `G.gen_shifted(z, shift)`
with images in [-1, 1].
"""

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from gan_mask_gen import pair_to_mask, rgb2gray


@dataclass
class DirectionSearchConfig:
    """Defaults that found a usable direction on the demo generator (shared/notes/demo-feasibility.md)."""

    steps: int = 300
    batch_size: int = 32
    lr: float = 5e-3
    radius_mean: float = 2.0
    radius_std: float = 0.5
    radius_min: float = 0.1
    brightness_weight: float = 2.0
    edge_weight: float = 10.0
    centre_offset: float = 0.45
    seed: int = 0


def shift_dim(G: nn.Module) -> int:
    dim = getattr(G, "dim_shift", None) or getattr(G, "dim_z", None)
    if not isinstance(dim, int):
        raise TypeError(f"{G.__class__.__name__} has neither dim_shift nor dim_z: cannot search a direction")
    return dim


def gray(images: torch.Tensor) -> torch.Tensor:
    """Luminance in [0, 1], [B, H, W], of images in [-1, 1], [B, 3, H, W] (the mask pipeline's gray)."""
    return (rgb2gray(images) + 1) / 2


def sobel_magnitude(intensity: torch.Tensor) -> torch.Tensor:
    """Edge strength of [B, H, W] intensities in [0, 1], with the Sobel kernels divided by 8.

    The normalisation keeps the edge term on the scale of the brightness term; unnormalised, it
    dominates and the search settles on a direction that hardly changes the image.
    """
    kx = intensity.new_tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8
    kernels = torch.stack([kx, kx.t()]).unsqueeze(1)
    gradients = F.conv2d(F.pad(intensity.unsqueeze(1), (1, 1, 1, 1), mode="replicate"), kernels)
    return torch.sqrt((gradients**2).sum(1) + 1e-8)


def centre_weight(height: int, width: int, offset: float, device=None) -> torch.Tensor:
    """d - offset, d the distance from the image centre scaled to 1 at the corners: negative in the
    middle (rewarding brightness there), positive towards the borders (rewarding darkness)."""
    ys = torch.linspace(-1, 1, height, device=device).view(-1, 1)
    xs = torch.linspace(-1, 1, width, device=device).view(1, -1)
    return torch.sqrt((xs**2 + ys**2) / 2) - offset


@contextlib.contextmanager
def frozen(G: nn.Module) -> Iterator[nn.Module]:
    """G in eval mode without parameter gradients, restored afterwards.

    Eval mode matters: train-mode batch norm would normalise away much of a shift shared by the batch.
    """
    was_training = G.training
    flags = [p.requires_grad for p in G.parameters()]
    G.eval().requires_grad_(False)
    try:
        yield G
    finally:
        G.train(was_training)
        for param, flag in zip(G.parameters(), flags, strict=True):
            param.requires_grad_(flag)


def direction_loss(G, z, direction, radii, weight, config: DirectionSearchConfig) -> torch.Tensor:
    with torch.no_grad():
        edges = sobel_magnitude(gray(G(z)))
    shifted = gray(G.gen_shifted(z, radii[:, None] * direction))
    brightness = (shifted * weight).mean()
    edge_change = ((sobel_magnitude(shifted) - edges) ** 2).mean()
    return config.brightness_weight * brightness + config.edge_weight * edge_change


def find_direction(
    G: nn.Module, config: DirectionSearchConfig | None = None, progress: bool = True
) -> torch.Tensor:
    """A unit vector [dim] in G's shift space that darkens the background (on the CPU, float32)."""
    config = config or DirectionSearchConfig()
    device = next(G.parameters()).device
    rng = torch.Generator().manual_seed(config.seed)
    dim = shift_dim(G)
    direction = F.normalize(0.1 * torch.randn(dim, generator=rng), dim=0).to(device).requires_grad_(True)
    optimizer = torch.optim.Adam([direction], lr=config.lr)
    with frozen(G):
        with torch.no_grad():
            size = G(torch.zeros(1, dim, device=device)).shape[-2:]
        weight = centre_weight(*size, config.centre_offset, device=device)
        for _ in tqdm(range(config.steps), desc="direction search", disable=not progress):
            z = torch.randn(config.batch_size, dim, generator=rng).to(device)
            radii = config.radius_mean + config.radius_std * torch.randn(config.batch_size, generator=rng)
            radii = radii.clamp(min=config.radius_min)
            loss = direction_loss(G, z, direction, radii.to(device), weight, config)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                direction /= direction.norm()
    return direction.detach().cpu().float()


@dataclass
class TwoMapFitConfig:
    """The original work's direction rating settings (train on random latents, test on a few batches)."""

    train_steps: int = 200
    test_batches: int = 5
    batch_size: int = 4
    lr: float = 0.005
    radius: float = 5.0
    seed: int = 0


class BestOfAffineMaps(nn.Module):
    """`count` affine maps of RGB colours; each pixel takes the one closest to its target colour.

    Started near the identity (weights I + 0.01 U(-1/sqrt 3, 1/sqrt 3)) with different biases,
    as nn.Linear(3, 3) layers scaled so in the original, so the maps can specialise.
    """

    def __init__(self, count: int = 2, generator: torch.Generator | None = None):
        super().__init__()
        bound = 3**-0.5
        noise = (torch.rand(count, 3, 3, generator=generator) * 2 - 1) * bound
        self.weight = nn.Parameter(torch.eye(3).expand(count, 3, 3) + 0.01 * noise)
        self.bias = nn.Parameter((torch.rand(count, 3, generator=generator) * 2 - 1) * bound)

    def forward(self, colours: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Best mapped colour [N, 3] (clamped to [-1, 1]) of colours [N, 3], and which map gave it [N]."""
        candidates = (torch.einsum("kij,nj->kni", self.weight, colours) + self.bias[:, None]).clamp(-1, 1)
        best = (candidates - targets).norm(dim=-1).argmin(dim=0)
        return candidates[best, torch.arange(len(colours), device=colours.device)], best


def pixels(images: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] -> the colours of all pixels, [B * H * W, 3]."""
    return images.permute(0, 2, 3, 1).reshape(-1, 3)


def two_map_fit_error(G: nn.Module, direction: torch.Tensor, config: TwoMapFitConfig | None = None) -> float:
    """How well two global affine colour maps, chosen per pixel, explain the shift (lower is better).

    The rating of Voynov et al. (2021): a background direction acts on every image in two simple ways,
    darkening the background and keeping or lightening the object, so two affine RGB maps shared by
    all images, each pixel taking the closer one, should predict the shifted image from the original.
    The maps are fitted with Adam on random latents; the score is the mean distance between predicted
    and actual shifted colours (RGB in [-1, 1]) on held-out batches. Directions whose effect varies
    from image to image, as random ones do, cannot be fitted this way.
    """
    config = config or TwoMapFitConfig()
    device = next(G.parameters()).device
    rng = torch.Generator().manual_seed(config.seed)
    maps = BestOfAffineMaps(2, rng).to(device)
    optimizer = torch.optim.Adam(maps.parameters(), lr=config.lr)
    shift = config.radius * direction.to(device)
    errors = []
    with frozen(G):
        for step in range(config.train_steps + config.test_batches):
            z = torch.randn(config.batch_size, shift_dim(G), generator=rng).to(device)
            with torch.no_grad():
                before, after = pixels(G(z)), pixels(G.gen_shifted(z, shift))
            fitted, _ = maps(before, after)
            error = (fitted - after).norm(dim=1).mean()
            if step < config.train_steps:
                optimizer.zero_grad(set_to_none=True)
                error.backward()
                optimizer.step()
            else:
                errors.append(error.item())
    return sum(errors) / len(errors)


@torch.no_grad()
def shift_masks(G: nn.Module, z: torch.Tensor, direction: torch.Tensor, radius: float = 5.0):
    """Images before and after a shift by `radius` along `direction`, and the mask of pixels it brightens."""
    with frozen(G):
        before = G(z)
        after = G.gen_shifted(z, radius * direction.to(z.device))
    return before, after, pair_to_mask(before, after).bool()


def rate_direction(
    G: nn.Module,
    direction: torch.Tensor,
    samples: int = 64,
    radius: float = 5.0,
    seed: int = 1,
    fit: TwoMapFitConfig | None = None,
) -> dict[str, float]:
    """The original's two-map fit error, and where the shift masks lie: the share of border pixels, of
    central pixels (the middle half in each dimension) and of all pixels that the shift marks as object."""
    device = next(G.parameters()).device
    z = torch.randn(samples, shift_dim(G), generator=torch.Generator().manual_seed(seed)).to(device)
    _, _, masks = shift_masks(G, z, direction, radius)
    height, width = masks.shape[-2:]
    border = torch.ones(height, width, dtype=torch.bool, device=masks.device)
    border[1:-1, 1:-1] = False
    masks = masks.float()
    centre = masks[:, height // 4 : height - height // 4, width // 4 : width - width // 4]
    return {
        "two_map_fit_error": two_map_fit_error(G, direction, fit or TwoMapFitConfig(radius=radius)),
        "mask_coverage": masks.mean().item(),
        "mask_border_share": masks[:, border].mean().item(),
        "mask_centre_share": centre.mean().item(),
    }
