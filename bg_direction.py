"""The background direction: the latent direction that darkens the background and lightens the object,
found by gradient descent on Melas-Kyriazi et al.'s objective (a variant by default, or theirs as
published: `DirectionSearchConfig.objective`) and rated by how well two affine maps of G(z) explain the
shifted images. The original work has no code for this step; docs/faithfulness.md says what differs.

Works for any generator exposing `dim_shift` or `dim_z`, `G(z)` and `G.gen_shifted(z, shift)`, images in
[-1, 1]. A search that diverges or never moves raises `DirectionSearchError`.
"""

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from gan_mask_gen import pair_to_mask, rgb2gray
from utils.checks import at_least, check_fields, non_negative, one_of, positive
from utils.errors import InputError, UserError
from utils.flags import flag
from utils.progress import progress_bar

VARIANT = "variant"
MELAS_KYRIAZI = "melas_kyriazi"
OBJECTIVES = (VARIANT, MELAS_KYRIAZI)
KORNIA_SOBEL_EPS = 1e-6  # kornia.filters.sobel's default, used by Melas-Kyriazi et al.


class DirectionSearchError(UserError, RuntimeError):
    """The search diverged or could not move: its result would not be a usable direction."""


@dataclass
class DirectionSearchConfig:
    """Melas-Kyriazi et al.'s settings, which also found a usable direction on the demo generator
    (shared/notes/demo-feasibility.md)."""

    steps: int = flag(300, "Adam steps of the search", check=at_least(1))
    batch_size: int = flag(32, "latents per step", check=at_least(1))
    lr: float = flag(5e-3, "Adam learning rate", check=positive)
    radius_mean: float = flag(2.0, "mean of the shift radius r", check=positive)
    radius_std: float = flag(0.5, "standard deviation of r", check=non_negative)
    radius_min: float = flag(0.1, "r is clipped below at this value", check=positive)
    brightness_weight: float = flag(2.0, "weight of the brightness term", check=positive)
    edge_weight: float = flag(10.0, "weight of the edge-change term", check=non_negative)
    centre_offset: float = flag(
        0.45,
        "brightness weight offset: distance from the centre where dark turns good (variant only)",
        check=non_negative,
    )
    seed: int = flag(0, "seed of the start direction, latents and radii")
    objective: str = flag(
        VARIANT,
        f"{VARIANT}: this project's variant; {MELAS_KYRIAZI}: Melas-Kyriazi et al.'s objective as published",
        check=one_of(OBJECTIVES),
        metavar="{" + ",".join(OBJECTIVES) + "}",
    )


def shift_dim(G: nn.Module) -> int:
    dim = getattr(G, "dim_shift", None) or getattr(G, "dim_z", None)
    if not isinstance(dim, int):
        raise TypeError(f"{G.__class__.__name__} has neither dim_shift nor dim_z: cannot search a direction")
    return dim


def draw_latents(count: int, dim: int, rng: torch.Generator, zs: torch.Tensor | None = None) -> torch.Tensor:
    """`count` latents: N(0, I), or rows of the embeddings matrix `zs` drawn uniformly with replacement."""
    if zs is None:
        return torch.randn(count, dim, generator=rng)
    return zs[torch.randint(0, len(zs), (count,), generator=rng)]


def gray(images: torch.Tensor) -> torch.Tensor:
    """Luminance in [0, 1], [B, H, W], of images in [-1, 1], [B, 3, H, W] (the mask pipeline's gray)."""
    return (rgb2gray(images) + 1) / 2


def sobel_magnitude(intensity: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Edge strength of [B, H, W] intensities, with the Sobel kernels divided by 8 and `eps` under the root.

    The normalisation keeps the edge term on the scale of the brightness term; unnormalised, it
    dominates and the search settles on a direction that hardly changes the image.
    """
    kx = intensity.new_tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8
    kernels = torch.stack([kx, kx.t()]).unsqueeze(1)
    gradients = F.conv2d(F.pad(intensity.unsqueeze(1), (1, 1, 1, 1), mode="replicate"), kernels)
    return torch.sqrt((gradients**2).sum(1) + eps)


def image_coordinates(height: int, width: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Column [H, 1] and row [1, W] coordinates spanning [-1, 1] across the image."""
    ys = torch.linspace(-1, 1, height, device=device).view(-1, 1)
    xs = torch.linspace(-1, 1, width, device=device).view(1, -1)
    return ys, xs


def centre_weight(height: int, width: int, offset: float, device=None) -> torch.Tensor:
    """d - offset, d the distance from the image centre scaled to 1 at the corners: negative in the
    middle (rewarding brightness there), positive towards the borders (rewarding darkness)."""
    ys, xs = image_coordinates(height, width, device)
    return torch.sqrt((xs**2 + ys**2) / 2) - offset


def outside_circle_weight(height: int, width: int, device=None) -> torch.Tensor:
    """Melas-Kyriazi et al.'s brightness weight: 4 (d - mean d), d = sqrt(x² + y²) the unscaled distance."""
    ys, xs = image_coordinates(height, width, device)
    distance = torch.sqrt(xs**2 + ys**2)
    return (distance - distance.mean()) * 4


@dataclass(frozen=True)
class ObjectiveParts:
    """What the two objectives measure differently: gray level, brightness weight map, Sobel epsilon."""

    intensity: Callable[[torch.Tensor], torch.Tensor]
    weight: torch.Tensor
    sobel_eps: float


def objective_parts(config: DirectionSearchConfig, height: int, width: int, device=None) -> ObjectiveParts:
    if config.objective == MELAS_KYRIAZI:
        return ObjectiveParts(rgb2gray, outside_circle_weight(height, width, device), KORNIA_SOBEL_EPS)
    return ObjectiveParts(gray, centre_weight(height, width, config.centre_offset, device), 1e-8)


def draw_radii(config: DirectionSearchConfig, dim: int, rng: torch.Generator) -> torch.Tensor:
    """Shift radii N(mean, std²) clipped at radius_min: [B, 1], one per image (variant), or [B, dim], one
    per latent coordinate (Melas-Kyriazi et al.), so that `radii * direction` is the batch of shifts."""
    shape = (config.batch_size, dim) if config.objective == MELAS_KYRIAZI else (config.batch_size,)
    radii = config.radius_mean + config.radius_std * torch.randn(shape, generator=rng)
    return radii.clamp(min=config.radius_min).view(config.batch_size, -1)


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


def direction_loss(
    G, z: torch.Tensor, shifts: torch.Tensor, parts: ObjectiveParts, config: DirectionSearchConfig
) -> torch.Tensor:
    with torch.no_grad():
        edges = sobel_magnitude(parts.intensity(G(z)), parts.sobel_eps)
    shifted = parts.intensity(G.gen_shifted(z, shifts))
    brightness = (shifted * parts.weight).mean()
    edge_change = ((sobel_magnitude(shifted, parts.sobel_eps) - edges) ** 2).mean()
    return config.brightness_weight * brightness + config.edge_weight * edge_change


def diverged(step: int, what: str, config: DirectionSearchConfig) -> DirectionSearchError:
    return DirectionSearchError(
        f"direction search: {what} at step {step} of {config.steps}: --lr {config.lr} is probably too "
        f"high (default {DirectionSearchConfig.lr})"
    )


def check_loss(step: int, loss: torch.Tensor, config: DirectionSearchConfig) -> None:
    """Stop at the first non-finite loss, or at a loss that cannot depend on the direction."""
    if not loss.requires_grad:
        raise no_gradient_error(config)
    if torch.isfinite(loss):
        return
    if step == 1:
        raise DirectionSearchError(
            f"direction search: the loss is {loss.item()} at step 1, before any update: the generator's "
            "images are not finite (check --gan_weights)"
        )
    raise diverged(step, f"the loss became {loss.item()}", config)


def adam_step(step: int, optimizer: torch.optim.Optimizer, config: DirectionSearchConfig) -> None:
    """An Adam step; a learning rate near float32's limit makes its step size overflow."""
    try:
        optimizer.step()
    except RuntimeError as error:
        raise diverged(step, f"the Adam update failed ({error})", config) from error


def check_direction(step: int, direction: torch.Tensor, config: DirectionSearchConfig) -> None:
    """Stop as soon as renormalising no longer gives a finite unit vector (an overflowing update)."""
    norm = direction.norm().item()
    if not abs(norm - 1) <= 1e-3:  # negated so that a NaN norm fails too
        raise diverged(step, f"the direction overflowed (norm {norm} after renormalising, not 1)", config)


def no_gradient_error(config: DirectionSearchConfig) -> DirectionSearchError:
    return DirectionSearchError(
        f"direction search: the loss does not change with the direction (zero gradient in all "
        f"{config.steps} steps): the generator's images do not depend on the shift"
    )


def find_direction(
    G: nn.Module, config: DirectionSearchConfig | None = None, progress: bool = True
) -> torch.Tensor:
    """A unit vector [dim] in G's shift space that darkens the background (on the CPU, float32).

    Raises `DirectionSearchError` at the first step whose loss or direction is not finite, and when
    the gradient was zero throughout, so a failed search never returns a direction.
    """
    config = config or DirectionSearchConfig()
    check_fields(config)
    device = next(G.parameters()).device
    rng = torch.Generator().manual_seed(config.seed)
    dim = shift_dim(G)
    published = config.objective == MELAS_KYRIAZI
    start = 0.1 * torch.randn(dim, generator=rng)
    direction = (start if published else F.normalize(start, dim=0)).to(device).requires_grad_(True)
    optimizer = torch.optim.Adam([direction], lr=config.lr)
    moved = torch.zeros((), dtype=torch.bool, device=device)
    with frozen(G):
        with torch.no_grad():
            size = G(torch.zeros(1, dim, device=device)).shape[-2:]
        parts = objective_parts(config, *size, device=device)
        for step in progress_bar(range(1, config.steps + 1), desc="direction search", disable=not progress):
            z = draw_latents(config.batch_size, dim, rng).to(device)
            radii = draw_radii(config, dim, rng).to(device)
            unit = direction / direction.norm() if published else direction
            loss = direction_loss(G, z, radii * unit, parts, config)
            check_loss(step, loss, config)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            moved |= direction.grad.ne(0).any()
            adam_step(step, optimizer, config)
            with torch.no_grad():
                direction /= direction.norm()
            check_direction(step, direction, config)
    if not moved:
        raise no_gradient_error(config)
    return direction.detach().cpu().float()


@dataclass
class TwoMapFitConfig:
    """The original work's direction rating settings (train on random latents, test on a few batches)."""

    train_steps: int = field(default=200, metadata={"check": at_least(1)})
    test_batches: int = field(default=5, metadata={"check": at_least(1)})
    batch_size: int = field(default=4, metadata={"check": at_least(1)})
    lr: float = field(default=0.005, metadata={"check": positive})
    radius: float = field(default=5.0, metadata={"check": positive})
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


def fixed_test_rows(config: TwoMapFitConfig) -> range:
    """The embeddings rows the original tests on: its test step i (i = train_steps, ...) reads the batch
    `i - test_steps`, so rows batch_size·(train_steps - test_batches) up to batch_size·train_steps."""
    return range(
        config.batch_size * (config.train_steps - config.test_batches), config.batch_size * config.train_steps
    )


def check_test_rows(zs: torch.Tensor, config: TwoMapFitConfig) -> None:
    """Embeddings must hold the original's test rows (it would index past their end, or wrap around)."""
    rows = fixed_test_rows(config)
    if rows.start < 0 or len(zs) < rows.stop:
        raise InputError(
            f"the rating with --z tests on embeddings rows {rows.start}..{rows.stop - 1}, as the original "
            f"does for --rating_steps {config.train_steps}, but they must lie within the {len(zs)} rows "
            f"given: use --rating_steps from {config.test_batches} to {len(zs) // config.batch_size}, "
            "or more embeddings"
        )


def fit_latents(
    step: int, dim: int, rng: torch.Generator, config: TwoMapFitConfig, zs: torch.Tensor | None
) -> torch.Tensor:
    """The latents of one step of the two-map fit: N(0, I), or as the original draws from embeddings,
    random rows while training and the fixed `fixed_test_rows` while testing."""
    if zs is not None and step >= config.train_steps:
        first = config.batch_size * (step - config.test_batches)
        return zs[first : first + config.batch_size]
    return draw_latents(config.batch_size, dim, rng, zs)


def two_map_fit_error(
    G: nn.Module,
    direction: torch.Tensor,
    config: TwoMapFitConfig | None = None,
    zs: torch.Tensor | None = None,
) -> float:
    """How well two global affine colour maps, chosen per pixel, explain the shift (lower is better).

    The rating of Voynov et al. (2021): a background direction acts on every image in two simple ways,
    darkening the background and keeping or lightening the object, so two affine RGB maps shared by
    all images, each pixel taking the closer one, should predict the shifted image from the original.
    The maps are fitted with Adam on random latents; the score is the mean distance between predicted
    and actual shifted colours (RGB in [-1, 1]) on test batches. Directions whose effect varies
    from image to image, as random ones do, cannot be fitted this way.

    Latents are fresh N(0, I) draws by default. With an embeddings matrix `zs` [N, dim], training
    batches are rows drawn uniformly with replacement and test batches the fixed rows
    `fixed_test_rows(config)`, as in the original's rating (docs/faithfulness.md).
    """
    config = config or TwoMapFitConfig()
    check_fields(config)
    if zs is not None:
        check_test_rows(zs, config)
    device = next(G.parameters()).device
    rng = torch.Generator().manual_seed(config.seed)
    maps = BestOfAffineMaps(2, rng).to(device)
    optimizer = torch.optim.Adam(maps.parameters(), lr=config.lr)
    shift = config.radius * direction.to(device)
    errors = []
    with frozen(G):
        for step in range(config.train_steps + config.test_batches):
            z = fit_latents(step, shift_dim(G), rng, config, zs).to(device)
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
    zs: torch.Tensor | None = None,
) -> dict[str, float]:
    """The original's two-map fit error, and where the shift masks lie: the share of border pixels, of
    central pixels (the middle half in each dimension) and of all pixels that the shift marks as object.

    `zs`: embeddings to draw all latents from (see `two_map_fit_error`; the masks' latents are rows
    drawn uniformly), instead of N(0, I)."""
    device = next(G.parameters()).device
    z = draw_latents(samples, shift_dim(G), torch.Generator().manual_seed(seed), zs).to(device)
    _, _, masks = shift_masks(G, z, direction, radius)
    height, width = masks.shape[-2:]
    border = torch.ones(height, width, dtype=torch.bool, device=masks.device)
    border[1:-1, 1:-1] = False
    masks = masks.float()
    centre = masks[:, height // 4 : height - height // 4, width // 4 : width - width // 4]
    return {
        "two_map_fit_error": two_map_fit_error(G, direction, fit or TwoMapFitConfig(radius=radius), zs),
        "mask_coverage": masks.mean().item(),
        "mask_border_share": masks[:, border].mean().item(),
        "mask_centre_share": centre.mean().item(),
    }
