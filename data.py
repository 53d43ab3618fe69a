"""Image folders for evaluation: plain image folders and image/mask pairs (ECSSD, DUTS, CUB, ...).

Images come as float tensors `[3, H, W]` in [-1, 1] (the generator's range), masks as long
`[H, W]` tensors of 0/1. Sizes vary between files, so use a DataLoader with batch size 1
unless `SegmentationDataset(crop=True, size=...)` makes them equal.
"""

from collections.abc import Callable
from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torch.utils.data import Dataset
from torchvision.transforms import InterpolationMode

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def image_files(root: str | Path, what: str = "image") -> list[Path]:
    """Every .jpg/.jpeg/.png (any case) under `root`, nested folders included, in sorted path order."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{what} folder {root} does not exist or is not a folder: check the path")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
    if not files:
        raise ValueError(
            f"{what} folder {root} holds no {'/'.join(IMAGE_EXTENSIONS)} files: "
            "point it at the folder that contains the images"
        )
    return files


def to_signed_tensor(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> float `[3, H, W]` in [-1, 1] (`2 * ToTensor() - 1`, as the original)."""
    return TF.to_tensor(image) * 2 - 1


class UnannotatedDataset(Dataset):
    """The images of a folder tree as `[3, H, W]` tensors in [-1, 1] (grayscale/RGBA made RGB).

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
        with Image.open(self.files[index]) as file:
            image = file.convert("RGB")
        if self.size is not None:
            image = TF.resize(image, self.size, InterpolationMode.BILINEAR)
        if self.transform is not None:
            image = self.transform(image)
        return to_signed_tensor(image)


def _by_stem(files: list[Path], root: str | Path, what: str) -> dict[str, Path]:
    stems: dict[str, Path] = {}
    for path in files:
        if path.stem in stems:
            raise ValueError(
                f"{what} folder {root} holds two files named {path.stem!r} ({stems[path.stem]} and "
                f"{path}): images and masks are paired by file name, so names must be unique"
            )
        stems[path.stem] = path
    return stems


class SegmentationDataset(Dataset):
    """(image `[3, H, W]` in [-1, 1], mask `[H, W]` long 0/1) pairs, matched by file name stem.

    Images and masks are paired by file name without extension (`a.jpg` with `a.png`),
    wherever they lie in the two folder trees; masks without an image are ignored. As in the
    original: `crop` first center-crops both to a square of their shorter edge (also when
    `size` is None), `size` then resizes the shorter edge to `size` (bilinear, for masks too),
    and the mask is foreground where its gray value in [0, 1] is `>= mask_thr` (the original
    thresholded the red channel of its RGB conversion, the same for gray masks). A mask whose
    size differs from its image's is first resized to the image's size (bilinear).
    """

    def __init__(
        self,
        images_root: str | Path,
        masks_root: str | Path,
        crop: bool = True,
        size: int | None = None,
        mask_thr: float = 0.5,
    ):
        images = _by_stem(image_files(images_root), images_root, "image")
        masks = _by_stem(image_files(masks_root, "mask"), masks_root, "mask")
        missing = [stem for stem in images if stem not in masks]
        if missing:
            raise ValueError(
                f"{len(missing)} of {len(images)} images in {images_root} have no mask of the same name "
                f"in {masks_root} (e.g. {', '.join(missing[:5])}): add the masks or remove those images"
            )
        self.pairs = [(path, masks[stem]) for stem, path in images.items()]
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
        with Image.open(image_path) as file:
            image = file.convert("RGB")
        with Image.open(mask_path) as file:
            mask = file.convert("L")
        if mask.size != image.size:
            mask = mask.resize(image.size, Image.Resampling.BILINEAR)
        gray = TF.to_tensor(self._geometry(mask))[0]
        return to_signed_tensor(self._geometry(image)), (gray >= self.mask_thr).long()
