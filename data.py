"""Image folders for evaluation: plain image folders and image/mask pairs (ECSSD, DUTS, CUB, ...).

Images come as float tensors `[3, H, W]` in [-1, 1] (the generator's range), masks as long
`[H, W]` tensors of 0/1. Sizes vary between files, so use a DataLoader with batch size 1
unless `SegmentationDataset(crop=True, size=...)` makes them equal.

Images of any mode are made 8-bit RGB (`to_rgb`); 16-bit gray images are first reduced to 8 bits
by their high byte, since PIL's own conversion clips them at 255 (PIL already reduces 48-bit RGB
PNGs that way when it opens them).

Masks are read by one rule (`mask_gray`), as a gray level in [0, 1] that is foreground where
`>= mask_thr` (0.5, non-strict as in the original):

- label masks, whose values are all 0 or 1 (saved as 0/1 instead of 0/255), are taken as they
  are: 1 is foreground;
- otherwise values are scaled by the file's bit depth: 8-bit gray by value / 255, colour by its red
  channel / 255 (the original read masks as RGB and kept channel 0), 1-bit as 0/1, 16-bit by their
  high byte / 255 (about value / 65535: 32768 and above are foreground), so soft masks are
  thresholded at half of full scale;
- palette masks are read through their palette colours (red channel, as RGB), except that a mask
  using only indices 0 and 1 whose two colours are both dark or both light (e.g. VOC-style palettes,
  where index 1 is dark red) is a label mask;
- masks with an alpha channel: where the colour is the same everywhere and the alpha varies
  (a cut-out), alpha is the mask; otherwise alpha is ignored and the colour read as above.
"""

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import InterpolationMode

from utils.errors import InputError
from utils.progress import progress_bar

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
ALPHA_MODES = ("RGBA", "LA", "PA")
LISTED_BAD_FILES = 5


def image_files(root: str | Path, what: str = "image") -> list[Path]:
    """Every .jpg/.jpeg/.png (any case) under `root`, nested folders included, in sorted path order."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{what} folder {root} does not exist or is not a folder: check the path")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise InputError(
            f"{what} folder {root} holds no {'/'.join(IMAGE_EXTENSIONS)} files: "
            "point it at the folder that contains the images"
        )
    return files


def _is_16_bit(image: Image.Image) -> bool:
    # Older Pillow opens 16-bit gray PNGs as 32-bit 'I': values above 255 tell them apart.
    return image.mode.startswith("I;16") or (image.mode == "I" and image.getextrema()[1] > 255)


def _to_8_bit(image: Image.Image) -> Image.Image:
    """16-bit gray as 8-bit 'L' (high byte, as PIL reduces 48-bit RGB); other images unchanged."""
    if not _is_16_bit(image):
        return image
    values = np.asarray(image).astype(np.int64).clip(0, 65535)
    return Image.fromarray((values >> 8).astype(np.uint8))


def to_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB of an image of any mode, 16-bit gray scaled by its bit depth rather than clipped."""
    return _to_8_bit(image).convert("RGB")


def _label_gray(labels: np.ndarray) -> Image.Image:
    """0/1 labels (any channel set counts) as a 0/255 'L' image."""
    if labels.ndim == 3:
        labels = labels.max(axis=2)
    return Image.fromarray((labels != 0).astype(np.uint8) * 255)


def _is_label(values: np.ndarray) -> bool:
    return bool(values.min() >= 0 and values.max() <= 1)


def _cut_out_alpha(mask: Image.Image) -> Image.Image | None:
    """The alpha channel when it alone carries the shape (the colour is the same everywhere)."""
    rgba = np.asarray(mask.convert("RGBA"))
    colour, alpha = rgba[..., :3], rgba[..., 3]
    if (colour == colour[0, 0]).all() and (alpha != alpha[0, 0]).any():
        return Image.fromarray(alpha)
    return None


def _level(mask: Image.Image) -> Image.Image:
    """The foreground level as 'L': the red channel of the mask made RGB, as the original read it (gray
    masks keep their gray value)."""
    return _to_8_bit(mask).convert("RGB").getchannel("R")


def _palette_gray(mask: Image.Image) -> Image.Image:
    """Palette colours' level, unless indices 0/1 alone are used and their colours do not differ."""
    indices = np.asarray(mask)
    if not _is_label(indices):
        return _level(mask)
    probe = Image.new("P", (2, 1))
    probe.putpalette(mask.getpalette())
    probe.putdata([0, 1])
    dark = np.asarray(probe.convert("L"))[0] < 128
    return _level(mask) if dark[0] != dark[1] else _label_gray(indices)


def mask_gray(mask: Image.Image) -> Image.Image:
    """The mask as an 'L' image whose value / 255 is the foreground level, by the rule of the module doc."""
    if mask.mode in ALPHA_MODES:
        alpha = _cut_out_alpha(mask)
        if alpha is not None:
            return alpha
        mask = mask.convert(mask.mode[:-1])
    if mask.mode == "P":
        return _palette_gray(mask)
    values = np.asarray(mask)
    if _is_label(values):
        return _label_gray(values)
    return _level(mask)


def _read(path: Path, convert: Callable[[Image.Image], Image.Image]) -> Image.Image:
    """Decode the whole file (so truncation shows here), then convert it."""
    with Image.open(path) as file:
        file.load()
        return convert(file)


def image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding the pixels."""
    with Image.open(path) as file:
        return file.size


def read_rgb(path: str | Path) -> Image.Image:
    """An image file decoded completely (truncation raises here) and made 8-bit RGB by `to_rgb`."""
    return _read(Path(path), to_rgb)


def to_signed_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float `[3, H, W]` in [-1, 1] (`2 * ToTensor() - 1`, as the original)."""
    return TF.to_tensor(image) * 2 - 1


class UnannotatedDataset(Dataset):
    """The images of a folder tree as `[3, H, W]` tensors in [-1, 1] (any mode made RGB by `to_rgb`).

    `size` resizes the shorter edge to `size` (bilinear); `transform` is then applied to the
    PIL image (it must return a PIL image), before the conversion to a tensor.
    """

    def __init__(
        self,
        root: str | Path,
        transform: Callable[[Image.Image], Image.Image] | None = None,
        size: int | None = None,
    ):
        self.files = image_files(root)
        self.transform = transform
        self.size = size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = _read(self.files[index], to_rgb)
        if self.size is not None:
            image = TF.resize(image, self.size, InterpolationMode.BILINEAR)
        if self.transform is not None:
            image = self.transform(image)
        return to_signed_tensor(image)


def _by_stem(files: list[Path], root: str | Path, what: str) -> dict[str, Path]:
    stems: dict[str, Path] = {}
    for path in files:
        if path.stem in stems:
            raise InputError(
                f"{what} folder {root} holds two files named {path.stem!r} ({stems[path.stem]} and "
                f"{path}): images and masks are paired by file name, so names must be unique"
            )
        stems[path.stem] = path
    return stems


def _unreadable(
    paths: list[Path], convert: Callable[[Image.Image], Image.Image], folder: str | Path
) -> dict[Path, str]:
    """Why each file that cannot be decoded and converted fails, found before any evaluation starts."""
    problems = {}
    for path in progress_bar(paths, desc=f"checking {folder}", leave=False):
        try:
            _read(path, convert)
        except Exception as error:  # whatever the decoder raises, the file is unusable
            problems[path] = str(error) or type(error).__name__
    return problems


Pair = tuple[Path, Path]


def _leave_out_bad(pairs: list[Pair], bad: dict[Path, str], skip_bad_files: bool) -> list[Pair]:
    """The pairs whose files all decode; refuses bad files unless `skip_bad_files` (then warns)."""
    listed = "; ".join(f"{path} ({reason})" for path, reason in list(bad.items())[:LISTED_BAD_FILES])
    if len(bad) > LISTED_BAD_FILES:
        listed += f"; and {len(bad) - LISTED_BAD_FILES} more"
    if not skip_bad_files:
        raise InputError(
            f"{len(bad)} image/mask file(s) cannot be read: {listed}. Fix or remove them, or pass "
            "--skip_bad_files (skip_bad_files=True) to leave such pairs out"
        )
    kept = [(image, mask) for image, mask in pairs if image not in bad and mask not in bad]
    if not kept:
        raise InputError(f"no image/mask pair is left: every pair has a file that cannot be read: {listed}")
    warnings.warn(
        f"left out {len(pairs) - len(kept)} of {len(pairs)} image/mask pairs whose files cannot be read: "
        f"{listed}",
        stacklevel=3,
    )
    return kept


class SegmentationDataset(Dataset):
    """(image `[3, H, W]` in [-1, 1], mask `[H, W]` long 0/1) pairs, matched by file name stem.

    Images and masks are paired by file name without extension (`a.jpg` with `a.png`),
    wherever they lie in the two folder trees; masks without an image are ignored. Every paired
    file is decoded once up front (nothing is kept), so a broken file is reported before any
    evaluation: `InputError`, or with `skip_bad_files` its pair is left out with a warning.
    As in the original: `crop` first center-crops both to a square of their shorter edge (also
    when `size` is None), `size` then resizes the shorter edge to `size` (bilinear, for masks
    too), and the mask is foreground where its gray level (`mask_gray` / 255) is `>= mask_thr`.
    A mask whose size differs from its image's is first resized to the image's size (bilinear).
    """

    def __init__(
        self,
        images_root: str | Path,
        masks_root: str | Path,
        crop: bool = True,
        size: int | None = None,
        mask_thr: float = 0.5,
        skip_bad_files: bool = False,
    ):
        images = _by_stem(image_files(images_root), images_root, "image")
        masks = _by_stem(image_files(masks_root, "mask"), masks_root, "mask")
        missing = [stem for stem in images if stem not in masks]
        if missing:
            raise InputError(
                f"{len(missing)} of {len(images)} images in {images_root} have no mask of the same name "
                f"in {masks_root} (e.g. {', '.join(missing[:5])}): add the masks or remove those images"
            )
        pairs = [(path, masks[stem]) for stem, path in images.items()]
        bad = _unreadable([image for image, _ in pairs], to_rgb, images_root)
        bad |= _unreadable([mask for _, mask in pairs], mask_gray, masks_root)
        self.pairs = _leave_out_bad(pairs, bad, skip_bad_files) if bad else pairs
        self.crop = crop
        self.size = size
        self.mask_thr = mask_thr

    def __len__(self) -> int:
        return len(self.pairs)

    def _geometry(self, image: Image.Image) -> Image.Image:
        if self.crop:
            image = TF.center_crop(image, min(image.size))
        if self.size is not None:
            image = TF.resize(image, self.size, InterpolationMode.BILINEAR)
        return image

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image_path, mask_path = self.pairs[index]
        image = _read(image_path, to_rgb)
        mask = _read(mask_path, mask_gray)
        if mask.size != image.size:
            mask = mask.resize(image.size, Image.Resampling.BILINEAR)
        gray = TF.to_tensor(self._geometry(mask))[0]
        return to_signed_tensor(self._geometry(image)), (gray >= self.mask_thr).long()
