"""A procedural world of one object on a background, with the exact object mask.

Every image is a pure function of an integer seed. Shapes are drawn at twice the output size and
averaged down, so edges are anti-aliased and the mask (coverage >= 0.5) agrees with what is seen.
Backgrounds sometimes hold a second colour region or stripes, so that a global intensity threshold
(Otsu) is not enough to find the object, as on real photographs.
"""

import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

MIN_AREA, MAX_AREA = 0.10, 0.45
CENTRE_JITTER = 0.18
MIN_COLOUR_DISTANCE = 0.35
PIXEL_NOISE = 0.015
SUPERSAMPLE = 2


@dataclass(frozen=True)
class SeedRanges:
    """Disjoint seed ranges, so that no test image was ever seen by the GAN or used to choose settings."""

    gan_training: range = range(0, 1_000_000)
    validation: range = range(1_000_000, 1_000_500)
    test: range = range(2_000_000, 2_000_500)
    # Unlabeled images for self-training: of the GAN-training range, the domain a user has images of.
    unlabeled: range = range(500_000, 505_000)
    # The supervised reference's training pairs: labelled, so disjoint from every other range.
    supervised: range = range(3_000_000, 3_010_000)


SEED_RANGES = SeedRanges()


def _random_colour(rng: np.random.Generator, far_from: Sequence[np.ndarray] = ()) -> np.ndarray:
    while True:
        colour = rng.uniform(0.05, 0.95, 3)
        if all(np.linalg.norm(colour - other) >= MIN_COLOUR_DISTANCE for other in far_from):
            return colour


def _smooth_noise(rng: np.random.Generator, x: np.ndarray, y: np.ndarray, frequencies: tuple[float, float]):
    """A sum of a few random plane waves: cheap noise whose detail scale is set by `frequencies`."""
    field = np.zeros_like(x)
    for _ in range(4):
        angle = rng.uniform(0, 2 * np.pi)
        frequency = rng.uniform(*frequencies)
        phase = rng.uniform(0, 2 * np.pi)
        field += np.cos(2 * np.pi * frequency * (x * np.cos(angle) + y * np.sin(angle)) + phase)
    return field / 2.0


def _radius_function(rng: np.random.Generator, kind: str):
    """r(theta) of a star-shaped outline about the origin, of size about 1, and the area it encloses."""
    if kind == "ellipse":
        aspect = rng.uniform(0.45, 1.0)
        rotation = rng.uniform(0, np.pi)

        def radius(theta):
            t = theta - rotation
            return aspect / np.sqrt((aspect * np.cos(t)) ** 2 + np.sin(t) ** 2)

    elif kind == "blob":
        orders = np.arange(2, 6)
        amplitudes = rng.uniform(0, 0.22, orders.size) / orders**0.5
        phases = rng.uniform(0, 2 * np.pi, orders.size)

        def radius(theta):
            waves = amplitudes[:, None] * np.cos(orders[:, None] * theta.ravel() + phases[:, None])
            return (1 + waves.sum(0)).reshape(theta.shape)

    else:
        corners = rng.integers(3, 9)
        spacing = 2 * np.pi / corners
        jitter = rng.uniform(-0.3, 0.3, corners)
        angles = np.sort(rng.uniform(0, 2 * np.pi) + spacing * (np.arange(corners) + jitter))
        radii = rng.uniform(0.55, 1.0, corners) if rng.random() < 0.6 else np.ones(corners)
        points = np.stack([radii * np.cos(angles), radii * np.sin(angles)], 1)
        edges = np.roll(points, -1, 0) - points

        def radius(theta):
            # The ray at theta meets the edge between the corners on either side of it.
            index = (np.searchsorted(angles, (theta - angles[0]) % (2 * np.pi) + angles[0]) - 1) % corners
            p, e = points[index], edges[index]
            return (p[..., 0] * e[..., 1] - p[..., 1] * e[..., 0]) / (
                np.cos(theta) * e[..., 1] - np.sin(theta) * e[..., 0]
            )

    theta = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    area = 0.5 * np.mean(radius(theta) ** 2) * 2 * np.pi
    return radius, area


def _downsample(a: np.ndarray) -> np.ndarray:
    size = a.shape[0] // SUPERSAMPLE
    return a.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE, *a.shape[2:]).mean(axis=(1, 3))


def _object_shape(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One random object: inside/outside on the fine grid and its output-size mask, area in range."""
    while True:
        kind = rng.choice(["ellipse", "blob", "polygon"])
        radius, unit_area = _radius_function(rng, kind)
        scale = np.sqrt(rng.uniform(MIN_AREA, MAX_AREA) / unit_area)
        cx, cy = 0.5 + rng.uniform(-CENTRE_JITTER, CENTRE_JITTER, 2)
        dx, dy = x - cx, y - cy
        inside = np.hypot(dx, dy) <= scale * radius(np.arctan2(dy, dx))
        mask = _downsample(inside.astype(np.float64)) >= 0.5
        if MIN_AREA <= mask.mean() <= MAX_AREA:
            return inside, mask


def _background(rng, x, y, colour, object_colour) -> np.ndarray:
    gradient_angle = rng.uniform(0, 2 * np.pi)
    ramp = (x - 0.5) * np.cos(gradient_angle) + (y - 0.5) * np.sin(gradient_angle)
    shade = rng.uniform(0, 0.3) * ramp + rng.uniform(0.02, 0.08) * _smooth_noise(rng, x, y, (0.3, 1.5))
    image = colour + shade[..., None]
    style = rng.random()
    if style < 0.45:
        second = _random_colour(rng, [object_colour])
        angle = rng.uniform(0, 2 * np.pi)
        offset = rng.uniform(-0.3, 0.3)
        side = (x - 0.5) * np.cos(angle) + (y - 0.5) * np.sin(angle) - offset
        if style < 0.2:
            side = side + rng.uniform(0.03, 0.12) * np.sin(2 * np.pi * rng.uniform(0.5, 2) * (x + y))
        image = np.where((side > 0)[..., None], second + shade[..., None], image)
    elif style < 0.65:
        stripe_colour = _random_colour(rng, [object_colour])
        angle = rng.uniform(0, np.pi)
        period = rng.uniform(0.12, 0.35)
        wave = np.sin(2 * np.pi * ((x * np.cos(angle) + y * np.sin(angle)) / period))
        weight = rng.uniform(0.3, 0.8) * (wave > 0)
        image = image * (1 - weight[..., None]) + stripe_colour * weight[..., None]
    return image


def _object_appearance(rng, x, y, colour) -> np.ndarray:
    light = rng.uniform(0, 2 * np.pi)
    directional = (x - 0.5) * np.cos(light) + (y - 0.5) * np.sin(light)
    shading = 1 + rng.uniform(0.1, 0.5) * directional
    texture = rng.uniform(0.0, 0.06) * _smooth_noise(rng, x, y, (3.0, 8.0))
    return colour * shading[..., None] + texture[..., None]


def render_sample(seed: int, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """The image (float32 [size, size, 3] in [0, 1]) and object mask (bool [size, size]) of `seed`."""
    rng = np.random.default_rng(seed)
    fine = size * SUPERSAMPLE
    coords = (np.arange(fine) + 0.5) / fine
    x, y = np.meshgrid(coords, coords)
    inside, mask = _object_shape(rng, x, y)
    object_colour = _random_colour(rng)
    background_colour = _random_colour(rng, [object_colour])
    image = np.where(
        inside[..., None],
        _object_appearance(rng, x, y, object_colour),
        _background(rng, x, y, background_colour, object_colour),
    )
    image = _downsample(image) + rng.normal(0, PIXEL_NOISE, (size, size, 3))
    return np.clip(image, 0, 1).astype(np.float32), mask


def _write(root: Path, seeds, with_masks: bool) -> tuple[Path, Path]:
    images_dir, masks_dir = Path(root) / "images", Path(root) / "masks"
    images_dir.mkdir(parents=True, exist_ok=True)
    if with_masks:
        masks_dir.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        image, mask = render_sample(int(seed))
        stem = f"{int(seed):07d}"
        Image.fromarray(np.round(image * 255).astype(np.uint8)).save(images_dir / f"{stem}.png")
        if with_masks:
            Image.fromarray(mask.astype(np.uint8) * 255).save(masks_dir / f"{stem}.png")
    return images_dir, masks_dir


def write_pairs(root: Path, seeds) -> tuple[Path, Path]:
    """`root/images/<seed>.png` and `root/masks/<seed>.png` (0/255 grayscale) for every seed."""
    return _write(root, seeds, with_masks=True)


def write_images(root: Path, seeds) -> Path:
    """`root/images/<seed>.png` for every seed, and no masks: unlabeled images."""
    return _write(root, seeds, with_masks=False)[0]


def _is_complete(folder: Path, seeds: range, subfolders=("images", "masks")) -> bool:
    expected = {f"{seed:07d}.png" for seed in seeds}
    return all(
        (folder / sub).is_dir() and {p.name for p in (folder / sub).iterdir()} == expected
        for sub in subfolders
    )


def ensure_folder(folder: Path, seeds: range, labelled: bool = True) -> tuple[Path, Path]:
    """The pairs of `seeds` in `folder` (images alone unless `labelled`), (re)generated unless a
    complete set is already there.

    They are written to a temporary sibling and renamed into place, so an interrupted run never
    leaves a half-written folder that a later run would take as complete.
    """
    folder = Path(folder)
    if not _is_complete(folder, seeds, ("images", "masks") if labelled else ("images",)):
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        try:
            (write_pairs if labelled else write_images)(staging, seeds)
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(staging, folder)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return folder / "images", folder / "masks"


def ensure_heldout_folder(cache_root: Path = Path("cache/demo")) -> tuple[Path, Path]:
    """The 500 held-out test pairs under `cache_root/heldout` (images dir, masks dir)."""
    return ensure_folder(Path(cache_root) / "heldout", SEED_RANGES.test)


def ensure_validation_folder(cache_root: Path = Path("cache/demo")) -> tuple[Path, Path]:
    """The validation pairs (for choosing settings) under `cache_root/validation`."""
    return ensure_folder(Path(cache_root) / "validation", SEED_RANGES.validation)


def ensure_unlabeled_folder(cache_root: Path = Path("cache/demo")) -> Path:
    """The unlabeled images of self-training, `cache_root/unlabeled/images` (no masks are written)."""
    return ensure_folder(Path(cache_root) / "unlabeled", SEED_RANGES.unlabeled, labelled=False)[0]


def ensure_supervised_folder(cache_root: Path = Path("cache/demo")) -> tuple[Path, Path]:
    """The labelled pairs of the supervised reference, under `cache_root/supervised`."""
    return ensure_folder(Path(cache_root) / "supervised", SEED_RANGES.supervised)
