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


def two_cluster_linear_score(before: torch.Tensor, after: torch.Tensor, iterations: int = 30) -> torch.Tensor:
    """How much better two lines than one explain each image's pixel intensities after the shift.

    Voynov et al. (2021, Sec. 3, the latent segmentation direction) motivate the method by what a
    background direction does to pixels: plotted as intensity after against intensity before, the
    pixels of an image fall into two groups, each close to a line (object pixels kept or lightened,
    background pixels darkened). We measure that per image: the pixels (before, after) [B, N] are fitted
    by a mixture of two linear regressions with a shared noise variance (EM, started from whether a
    pixel got brighter), and the score is 1 - SSE(two lines) / SSE(one line), with the two-line errors
    weighted by the responsibilities. It is near 0 when a second line explains nothing (pure noise
    around one line, or no change at all) and near 1 for a clean two-group split. One score per image.
    """
    before, after = before.double(), after.double()

    def fit(weights: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = weights.sum(1, keepdim=True).clamp(min=1e-9)
        mean_x = (weights * before).sum(1, keepdim=True) / n
        mean_y = (weights * after).sum(1, keepdim=True) / n
        cov = (weights * (before - mean_x) * (after - mean_y)).sum(1, keepdim=True)
        var = (weights * (before - mean_x) ** 2).sum(1, keepdim=True)
        slope = cov / var.clamp(min=1e-9)
        return slope, mean_y - slope * mean_x

    def residuals(line: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return (after - line[0] * before - line[1]) ** 2

    sse_one = residuals(fit(torch.ones_like(before))).sum(1)
    first = torch.where(after > before, 0.9, 0.1).double()
    for _ in range(iterations):
        error_first, error_second = residuals(fit(first)), residuals(fit(1 - first))
        sse_two = (first * error_first + (1 - first) * error_second).sum(1)
        noise_var = (sse_two / before.shape[1]).clamp(min=1e-8).unsqueeze(1)
        share = first.mean(1, keepdim=True).clamp(1e-3, 1 - 1e-3)
        first = torch.sigmoid(torch.log(share / (1 - share)) - (error_first - error_second) / (2 * noise_var))
    return (1 - sse_two / sse_one.clamp(min=1e-12)).clamp(0, 1).float()


@torch.no_grad()
def shift_masks(G: nn.Module, z: torch.Tensor, direction: torch.Tensor, radius: float = 5.0):
    """Images before and after a shift by `radius` along `direction`, and the mask of pixels it brightens."""
    with frozen(G):
        before = G(z)
        after = G.gen_shifted(z, radius * direction.to(z.device))
    return before, after, pair_to_mask(before, after).bool()


@torch.no_grad()
def rate_direction(
    G: nn.Module, direction: torch.Tensor, samples: int = 64, radius: float = 5.0, seed: int = 1
) -> dict[str, float]:
    """The two-cluster score and where the shift masks lie: the share of border pixels, of central
    pixels (the middle half in each dimension) and of all pixels that the shift marks as object."""
    device = next(G.parameters()).device
    z = torch.randn(samples, shift_dim(G), generator=torch.Generator().manual_seed(seed)).to(device)
    before, after, masks = shift_masks(G, z, direction, radius)
    height, width = masks.shape[-2:]
    border = torch.ones(height, width, dtype=torch.bool, device=masks.device)
    border[1:-1, 1:-1] = False
    masks = masks.float()
    return {
        "two_cluster_score": two_cluster_linear_score(gray(before).flatten(1), gray(after).flatten(1))
        .mean()
        .item(),
        "mask_coverage": masks.mean().item(),
        "mask_border_share": masks[:, border].mean().item(),
        "mask_centre_share": masks[:, height // 4 : height - height // 4, width // 4 : width - width // 4]
        .mean()
        .item(),
    }
