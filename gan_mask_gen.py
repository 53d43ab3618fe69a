"""Synthetic image/mask pairs from a generator and a background-darkening latent direction.

A sample is `G(z)`; its mask marks the pixels that get brighter when the latent moves along the
direction (`LIGHTING`), or that are brighter than average in the shifted image (`MEAN_THR`).
Masks are cleaned up, then samples with too large masks or single-mode histograms are dropped
and the batch is refilled. Pure tensor code: no file I/O, no training.
"""

import contextlib
import math
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from enum import Enum

import torch
import torch.nn.functional as F
from torch import nn

from utils.errors import UserError

ImagePair = tuple[torch.Tensor, torch.Tensor]


class MaskSynthesizing(Enum):
    LIGHTING = 0
    MEAN_THR = 1


def rgb2gray(img: torch.Tensor) -> torch.Tensor:
    """Luma of an RGB batch [B, 3, H, W] -> [B, H, W] (ITU-R 601 weights, as in the original)."""
    return 0.2989 * img[:, 0] + 0.5870 * img[:, 1] + 0.1140 * img[:, 2]


def pair_to_mask(img: torch.Tensor, img_shifted: torch.Tensor) -> torch.Tensor:
    """Foreground (1) where the shifted image is strictly brighter than the original; long [B, H, W]."""
    return (rgb2gray(img_shifted) > rgb2gray(img)).long()


def mean_thr_mask(img_shifted: torch.Tensor) -> torch.Tensor:
    """Foreground (1) where the shifted image is strictly brighter than its own mean; long [B, H, W]."""
    gray = rgb2gray(img_shifted)
    return (gray > gray.mean(dim=(1, 2), keepdim=True)).long()


def value_histograms(images: torch.Tensor, bins: int = 12) -> torch.Tensor:
    """`torch.histc(image.float(), bins, -1, 1)` of every image of a batch, as int64 `[B, bins]`.

    On the CPU one `histc` per image is a single tight pass and 3-5x faster than `batched_histograms`;
    on an accelerator per-image calls are bound by kernel launches, so the batch is counted at once.
    """
    if images.device.type == "cpu":
        return torch.stack([torch.histc(image.float(), bins, -1, 1) for image in images]).long()
    return batched_histograms(images, bins)


def batched_histograms(images: torch.Tensor, bins: int = 12) -> torch.Tensor:
    """`torch.histc(image.float(), bins, -1, 1)` of all images with one `bincount` over per-image bins.

    The bin of a value is histc's own float32 formula, `trunc((x - lo) * bins / (hi - lo))` with
    `hi` in the last bin (hi - lo = 2, so dividing by it is exact in any implementation); values
    outside `[lo, hi]` and NaN go to a per-image overflow slot that is dropped.
    """
    lo, hi = -1.0, 1.0
    values = images.float().flatten(1)
    inside = (values >= lo) & (values <= hi)
    index = ((values - lo) * bins / (hi - lo)).long().clamp_(max=bins - 1)
    index = torch.where(inside, index, bins)
    index += (bins + 1) * torch.arange(len(values), device=values.device)[:, None]
    counts = torch.bincount(index.flatten(), minlength=len(values) * (bins + 1))
    return counts.view(len(values), bins + 1)[:, :bins]


def count_maxima(hists: torch.Tensor, width: int = 3) -> torch.Tensor:
    """Local maxima of each row after a zero-padded box filter of `width`; plateaus count every bin.

    A bin is a maximum when it is >= both neighbours (an end bin against its one neighbour). The
    integer sums equal the original's float32 box filter wherever that one is exact (sums below 2**24,
    i.e. any image of fewer than 5.5 million values); beyond that they stay exact where float32 rounds.
    """
    padded = F.pad(hists, (width // 2, width // 2))
    smooth = padded.unfold(1, width, 1).sum(dim=2)
    not_below_left = F.pad(smooth[:, 1:] >= smooth[:, :-1], (1, 0), value=True)
    not_below_right = F.pad(smooth[:, :-1] >= smooth[:, 1:], (0, 1), value=True)
    return (not_below_left & not_below_right).sum(dim=1)


def maxes_filter(images: torch.Tensor, bins: int = 12, width: int = 3) -> torch.Tensor:
    """True for images whose smoothed value histogram has at least two local maxima, bool `[B]`.

    The histogram counts all channels' values in [-1, 1] (`torch.histc` bins, see `value_histograms`)
    and is smoothed by a box filter with zero padding; see `count_maxima`. A single-mode histogram
    means a flat image that the shift did not split into two regions. The result is on the images' device.
    """
    return count_maxima(value_histograms(images, bins), width) >= 2


def area_filter(masks: torch.Tensor, mask_size_up: float) -> torch.Tensor:
    """True for masks whose foreground fraction is strictly below `mask_size_up` (all when >= 1)."""
    if mask_size_up >= 1.0:
        return torch.ones(len(masks), dtype=torch.bool, device=masks.device)
    return masks.flatten(1).float().mean(dim=1) < mask_size_up


class MaskGenerationError(UserError, RuntimeError):
    """The filters rejected every sample of `max_retries` batches of latents, or a whole batch of masks
    was empty or full: the direction or the shift radius does not split images into object and
    background, and training on such masks would only learn a constant."""


def check_masks_vary(masks: torch.Tensor, latent_shift_r: float) -> None:
    """Raise `MaskGenerationError` when every mask of a batch of two or more is empty, or every one full."""
    if len(masks) < 2:
        return
    coverage = masks.flatten(1).float().mean(dim=1)
    for what, degenerate in (("empty", coverage == 0), ("full", coverage == 1)):
        if bool(degenerate.all()):
            raise MaskGenerationError(
                f"all {len(masks)} masks of a batch are {what}: the shift by latent_shift_r={latent_shift_r} "
                "along the direction does not brighten part of the image; check --bg_direction (a zero or "
                "tiny direction?) and --latent_shift_r"
            )


class MaskGenerator(nn.Module):
    """Batches of (image in [-1, 1], long mask) pairs synthesised from `G` and `bg_direction`.

    `params` needs `batch_size`, `latent_shift_r`, `synthezing`, `mask_size_up` and `maxes_filter`
    (the training parameters). Latents are N(0, I), or rows of the embeddings matrix `zs` plus
    `z_noise` Gaussian noise. `mask_preprocessing` functions map an image batch to an image batch
    and are applied to both images before the mask is computed; `mask_postprocessing` functions
    map `(img, mask)` to a mask. `rng` makes the latents reproducible.
    """

    def __init__(
        self,
        G: nn.Module,
        bg_direction: torch.Tensor,
        params,
        mask_preprocessing: Sequence[Callable[[torch.Tensor], torch.Tensor]] = (),
        mask_postprocessing: Sequence[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = (),
        zs: torch.Tensor | None = None,
        z_noise: float = 0.0,
        rng: torch.Generator | None = None,
    ):
        super().__init__()
        self.G = G
        self.register_buffer("bg_direction", bg_direction.detach().reshape(-1).float().clone())
        self.p = params
        self.mask_preprocessing = tuple(mask_preprocessing)
        self.mask_postprocessing = tuple(mask_postprocessing)
        self.register_buffer("zs", None if zs is None else zs.float())
        self.z_noise = z_noise
        self.rng = rng

    @property
    def device(self) -> torch.device:
        return self.bg_direction.device

    @torch.no_grad()
    def make_noise(self, batch_size: int) -> torch.Tensor:
        # Drawn on the CPU so that one seeded generator gives the same latents on every device.
        if self.zs is None:
            z = torch.randn(batch_size, self.G.dim_z, generator=self.rng)
        else:
            rows = torch.randint(0, len(self.zs), (batch_size,), generator=self.rng)
            z = self.zs[rows.to(self.zs.device)].cpu()
            if self.z_noise > 0:
                z = z + self.z_noise * torch.randn(z.shape, generator=self.rng)
        return z.to(self.device)

    @torch.no_grad()
    def gen_samples(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Images, shifted images and post-processed masks for the latents `z`, unfiltered."""
        img = self.G(z)
        img_shifted = self.G.gen_shifted(z, self.p.latent_shift_r * self.bg_direction)
        img_for_mask, shifted_for_mask = img, img_shifted
        for preprocess in self.mask_preprocessing:
            img_for_mask, shifted_for_mask = preprocess(img_for_mask), preprocess(shifted_for_mask)
        if self.p.synthezing == MaskSynthesizing.LIGHTING:
            mask = pair_to_mask(img_for_mask, shifted_for_mask)
        elif self.p.synthezing == MaskSynthesizing.MEAN_THR:
            mask = mean_thr_mask(shifted_for_mask)
        else:
            raise ValueError(f"unknown mask synthesizing {self.p.synthezing!r}")
        for postprocess in self.mask_postprocessing:
            mask = postprocess(img, mask)
        return img, img_shifted, mask

    def filter_decisions(
        self, img_shifted: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per sample: whether the area filter passes it, and whether it is kept (area and, when on,
        histogram filter), as bool `[B]` tensors."""
        by_area = area_filter(mask, self.p.mask_size_up)
        keep = by_area
        if self.p.maxes_filter:
            keep = keep & maxes_filter(img_shifted).to(keep.device)
        return by_area, keep

    def filter_verdicts(self, img_shifted: torch.Tensor, mask: torch.Tensor) -> list[str]:
        """Per sample, in words: kept, or which filter drops it."""
        by_area, kept = self.filter_decisions(img_shifted, mask)
        return [
            "kept" if keep else ("rejected: mask too large" if not area else "rejected: one-mode histogram")
            for area, keep in zip(by_area.tolist(), kept.tolist(), strict=True)
        ]

    @torch.no_grad()
    def forward(self, max_retries: int = 100, z: torch.Tensor | None = None) -> ImagePair:
        """Exactly `batch_size` filtered pairs; `z` is used for the first batch of latents only.

        As in the original, every attempt draws `batch_size` latents and the batch is made of the first
        samples that pass the filters, in order. Once a first attempt has shown how many pass, only as
        many of an attempt's latents are generated as are likely to be needed (then more if they fall
        short): the same latents are kept and the random stream advances as before, but the 30-50 %
        of a batch that the original generated and then dropped, past the samples it needed, is never
        made. The generator then runs on fewer samples at once, which can change pixels by float
        rounding (docs/faithfulness.md).
        """
        batch_size = self.p.batch_size
        images, masks = [], []
        generated = kept = 0
        rejected = {"area": 0, "maxes": 0}
        for attempt in range(max_retries):
            latents = z if z is not None and attempt == 0 else self.make_noise(batch_size)
            while len(latents) and kept < batch_size:
                chunk = len(latents) if kept == 0 else expected_need(batch_size - kept, kept, generated)
                img, img_shifted, mask = self.gen_samples(latents[:chunk])
                latents = latents[chunk:]
                by_area, keep = self.filter_decisions(img_shifted, mask)
                rejected["area"] += int((~by_area).sum())
                rejected["maxes"] += int((by_area & ~keep).sum())
                images.append(img[keep])
                masks.append(mask[keep])
                generated += len(mask)
                kept += int(keep.sum())
            if kept >= batch_size:
                batch_masks = torch.cat(masks)[:batch_size]
                check_masks_vary(batch_masks, self.p.latent_shift_r)
                return torch.cat(images)[:batch_size], batch_masks
        raise MaskGenerationError(
            f"only {kept} of {batch_size} samples passed the filters in {max_retries} batches of latents: "
            f"the area filter (mask_size_up={self.p.mask_size_up}) rejected {rejected['area']}, the "
            f"histogram filter (maxes_filter) rejected {rejected['maxes']}; check the direction, "
            "latent_shift_r, or relax --mask_size_up / --maxes_filter false"
        )


# Fewer samples per generator call than this gain little and may round differently (smaller GEMMs).
MIN_CHUNK = 8


def expected_need(needed: int, kept: int, generated: int) -> int:
    """How many latents to generate for `needed` more samples, at the pass rate seen so far
    (`kept` of `generated`), with a 10 % margin."""
    return max(MIN_CHUNK, math.ceil(1.1 * needed * generated / kept))


class MaskStream:
    """Endless iterator of mask-generator batches.

    With `background` (the default on CUDA) the next batch is prepared in a background thread, on its
    own CUDA stream, while the consumer trains on the current one; errors in the worker are raised in the
    consumer. On CPUs the batch is made when asked for: there both would share the same cores, and on 2
    cores overlapping them made a bf16 demo step 1.5x slower (bench/README.md). Use as a context
    manager, or call `close()`, to stop the worker.
    `rng_state` is the latent generator's state right after the last batch handed out: setting
    it on a new generator continues the same sequence of batches (for exact resuming).
    """

    def __init__(self, mask_generator: MaskGenerator, prefetch: int = 1, background: bool | None = None):
        self.mask_generator = mask_generator
        self.batches: queue.Queue = queue.Queue(maxsize=prefetch)
        self.stopped = threading.Event()
        self.rng_state = self._current_rng_state()
        if background is None:
            background = mask_generator.device.type == "cuda"
        self.worker = threading.Thread(target=self._produce, daemon=True) if background else None
        if self.worker is not None:
            self.worker.start()

    def _produce(self) -> None:
        device = self.mask_generator.device
        stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        try:
            while not self.stopped.is_set():
                with torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext():
                    batch = self.mask_generator()
                if stream is not None:
                    stream.synchronize()
                self._put((batch, self._current_rng_state()))
        except BaseException as error:  # handed over to the consumer
            self._put(error)

    def _current_rng_state(self) -> torch.Tensor | None:
        rng = self.mask_generator.rng
        return None if rng is None else rng.get_state()

    def _put(self, item) -> None:
        while not self.stopped.is_set():
            try:
                self.batches.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[ImagePair]:
        return self

    def __next__(self) -> ImagePair:
        if self.worker is None:
            batch = self.mask_generator()
            self.rng_state = self._current_rng_state()
            return batch
        item = self.batches.get()
        if isinstance(item, BaseException):
            self.close()
            raise item
        batch, self.rng_state = item
        if batch[0].is_cuda:
            # Made on the worker's stream: without this the allocator could hand the memory back
            # to the worker while the training stream still reads it.
            for tensor in batch:
                tensor.record_stream(torch.cuda.current_stream(tensor.device))
        return batch

    def close(self) -> None:
        self.stopped.set()
        if self.worker is not None:
            self.worker.join(timeout=60)

    def __enter__(self) -> "MaskStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
