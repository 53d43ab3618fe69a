"""Mask post-processing and segmentation inference as in the original work.

`SegmentationInference` reproduces the original's 8-bit round trips (uint8 truncation + PIL
bilinear resizing) on purpose: reported numbers depend on them at the level of a few 1/255.
"""

import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from data import image_size
from utils.checks import positive
from utils.errors import InputError
from utils.flags import flag

MIN_COMPONENT_SHARE = 0.2
EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
# The U-Net halves its input 4 times, so a shorter side below 2**4 px leaves nothing to pool.
MIN_NATIVE_SIDE = 16
# Work at an image's own size (the U-Net at --resize_to none, and refinement) takes memory in proportion
# to its area: on the CPU about 0.5 GB a megapixel for a width-16 U-Net and 2.1 GB for the released
# width 64 (docs/evaluation.md). Above this many megapixels the entry points refuse rather than swap or
# be killed.
MAX_MEGAPIXELS = 4.0


def max_megapixels_flag():
    """`--max_megapixels`, the same in segment.py and evaluate.py."""
    return flag(
        MAX_MEGAPIXELS, "largest image for work at its own size (--resize_to none, --refine)", check=positive
    )


def oversized(width: int, height: int, resize_to: int | None, refining: bool, max_megapixels: float) -> str:
    """Why an image is too large for inference at its own size, or '' (resized inference is bounded by
    `resize_to`; refinement always runs at the image's size)."""
    megapixels = width * height / 1e6
    if megapixels <= max_megapixels or (resize_to is not None and not refining):
        return ""
    work = "refinement" if resize_to is not None else "--resize_to none"
    return (
        f"{width}x{height} ({megapixels:.1f} MP) is above --max_megapixels {max_megapixels:g} for {work}, "
        "which works at the image's own size (about 2 GB a megapixel for the released U-Nets): pass "
        "--resize_to 1024 (the shorter side the U-Net sees) without refinement, downscale the image, or "
        "raise --max_megapixels"
    )


def refuse_oversized(files: list[Path], resize_to: int | None, refining: bool, max_megapixels: float) -> None:
    """Refuse, before any work, an image too large for the memory its work takes (headers only)."""
    for path in files:
        try:
            width, height = image_size(path)
        except Exception:  # unreadable: the entry point names it on its own
            continue
        problem = oversized(width, height, resize_to, refining, max_megapixels)
        if problem:
            raise InputError(f"{path}: {problem}")


Model = Callable[[torch.Tensor], torch.Tensor]
# (image [3, H, W] in [-1, 1], probability [H, W]) -> refined probability [H, W] (refinement.py).
Refiner = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def connected_components_filter(img: torch.Tensor | None, mask: torch.Tensor) -> torch.Tensor:
    """Drop small blobs: keep the 8-connected components with area / largest area > 0.2 (strict).

    `mask` is a `[B, H, W]` batch (nonzero = foreground) on any device; an empty mask stays empty
    and the result has the mask's dtype and device. `img` is unused, kept for the original's call
    signature (filters are called as `filter(img, mask)`). Unlike the original, which on CPU
    wrote into its argument through a numpy view, the input is never modified.
    """
    foreground = (mask != 0).cpu().numpy()
    kept = np.empty_like(foreground)
    for i, image_mask in enumerate(foreground):
        kept[i] = _large_components(image_mask)
    return torch.from_numpy(kept).to(device=mask.device, dtype=mask.dtype)


def _large_components(foreground: np.ndarray) -> np.ndarray:
    """One mask's filter with one labelling and one `bincount` of the areas (the original measured
    each component with a pass over the image); the ratio is the original's float64 `area / largest`."""
    labels, _ = ndimage.label(foreground, EIGHT_CONNECTED)
    areas = np.bincount(labels.ravel())
    areas[0] = 0  # background
    keep = areas / max(areas.max(), 1) > MIN_COMPONENT_SHARE
    return keep.take(labels)


def _min_edge_size(height: int, width: int, min_edge: int) -> tuple[int, int]:
    """Size with the shorter edge `min_edge` and the other scaled by integer floor division."""
    if height <= width:
        return min_edge, min_edge * width // height
    return min_edge * height // width, min_edge


def _to_uint8(x01: torch.Tensor) -> np.ndarray:
    # Truncation, not rounding, as torchvision's ToPILImage (`mul(255).byte()`) did.
    return (x01 * 255).to(torch.uint8).cpu().numpy()


def _pil_resize(array: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """PIL (antialiased) bilinear resize of a uint8 HxW or HxWxC array to `size` = (h, w), in [0, 1].

    Kept on purpose: torch's antialiased bilinear interpolation is not bit-exact with PIL's, neither
    its uint8 kernel (one level off on some pixels for most size pairs) nor the float one (one level
    off on about a fifth of the pixels), and the reported numbers depend on these levels.
    """
    resized = Image.fromarray(array).resize((size[1], size[0]), Image.Resampling.BILINEAR)
    return torch.from_numpy(np.asarray(resized, dtype=np.float32) / np.float32(255))


def _device_of(model: object, fallback: torch.device) -> torch.device:
    if isinstance(model, torch.nn.Module):
        parameter = next(model.parameters(), None)
        if parameter is not None:
            return parameter.device
    return fallback


class SegmentationInference:
    """Class-1 probability map `[B, H, W]` of a two-class segmentation model, at the input's size.

    With `resize_to`, each image is resized so that its shorter edge is `resize_to` through an
    8-bit PIL image (`uint8((img + 1) / 2 * 255)`, truncating; PIL bilinear), the map is computed
    there as `1 - softmax(logits, 1)[:, 0]` (a model giving `[B, h, w]` is taken to give that map
    already, as in the original) and brought back to the input size through another
    8-bit PIL round trip (so it is quantised to multiples of 1/255). Without `resize_to` the model
    sees the batch as given and the map is not quantised, except that images with a side below
    16 px (too small for the U-Net) take the `resize_to=16` path, with a warning once per instance.
    The original took batches of one; when resizing, each image of a batch is processed on its own.
    Runs under `torch.no_grad()` on the model's device (the input's device for models without
    parameters); train/eval mode is left to the caller, so put a model with BatchNorm in `eval()` first.
    """

    def __init__(self, model: Model, resize_to: int | None = None, refine: Refiner | None = None):
        self.model = model
        self.resize_to = resize_to
        self.refine = refine
        self._warned_tiny = False

    def _prepare(self, img: torch.Tensor, min_edge: int) -> torch.Tensor:
        """`[3, H, W]` image in [-1, 1] -> `[1, 3, h, w]` network input after the min-edge resize."""
        size = _min_edge_size(img.shape[-2], img.shape[-1], min_edge)
        rgb = _to_uint8(((img + 1) / 2).permute(1, 2, 0))
        return (_pil_resize(rgb, size).permute(2, 0, 1)[None] * 2 - 1).to(img.device)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        output = self.model(x.to(_device_of(self.model, x.device)))
        # Logits [B, 2, h, w] become the class-1 probability; a 3-d output is taken as that map.
        return 1 - torch.softmax(output, dim=1)[:, 0] if output.dim() == 4 else output

    def _resized_probability(self, img: torch.Tensor, min_edge: int) -> torch.Tensor:
        """Probability map `[1, H, W]` of one `[3, H, W]` image, computed with the shorter edge `min_edge`."""
        prob = self._run(self._prepare(img, min_edge))
        if prob.shape[-2:] == img.shape[-2:]:
            return prob
        return _pil_resize(_to_uint8(prob[0]), tuple(img.shape[-2:]))[None].to(prob.device)

    @torch.no_grad()
    def __call__(self, img: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Maps `[B, 3, H, W]` images in [-1, 1] to `[B, H, W]`; `mask` is ignored, as in the original.
        With `refine`, each map is then refined on its image (at the input's size)."""
        probability = self._probability(img)
        if self.refine is None:
            return probability
        return torch.stack([self.refine(image, map_) for image, map_ in zip(img, probability, strict=True)])

    def _probability(self, img: torch.Tensor) -> torch.Tensor:
        min_edge = self.resize_to
        if min_edge is None:
            if min(img.shape[-2:]) >= MIN_NATIVE_SIDE:
                return self._run(img)
            self._warn_tiny()
            min_edge = MIN_NATIVE_SIDE
        return torch.cat([self._resized_probability(image, min_edge) for image in img])

    def _warn_tiny(self) -> None:
        if not self._warned_tiny:
            self._warned_tiny = True
            warnings.warn(
                f"images with a side below {MIN_NATIVE_SIDE} px are too small for the U-Net at native size: "
                f"they are resized so that their shorter side is {MIN_NATIVE_SIDE} (bilinear, as with "
                "resize_to) and the prediction is resized back",
                stacklevel=2,
            )


class Threshold:
    """Binary mask `prob >= thr` (non-strict, as the original) of `SegmentationInference`."""

    def __init__(self, model: Model, thr: float = 0.5, resize_to: int | None = None):
        self.inference = SegmentationInference(model, resize_to)
        self.thr = thr

    def __call__(self, img: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Maps `[B, 3, H, W]` images in [-1, 1] to bool `[B, H, W]`; `mask` is ignored."""
        return self.inference(img) >= self.thr
