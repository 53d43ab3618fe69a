"""Speed of the exact fast paths against their plain references, and of the pieces of a training run.

    python -m bench.run [--quick] [--threads N]

Runs on CUDA when available, else on the CPU, and prints the machine and one markdown table
(name, ours, reference, ratio or value, unit). Times are the best of a few runs after a warm-up, so
that other work on a shared machine inflates them as little as possible. See bench/README.md.
"""

import argparse
import copy
import dataclasses
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from BigGAN.gan_load import UnconditionalBigGAN, generator_config, make_big_gan
from BigGAN.model.BigGAN import Generator
from demo.assets import DEMO_DIRECTION_PATH, DEMO_GENERATOR_CONFIG, DEMO_GENERATOR_PATH
from demo.preset import DEMO_TRAINING
from gan_mask_gen import (
    MaskGenerator,
    MaskStream,
    batched_histograms,
    count_maxima,
    maxes_filter,
    pair_to_mask,
)
from metrics import F_max, precision_recall_curves
from postprocessing import connected_components_filter
from tests.fixture_files import load_fixture
from tests.reference_impl import (
    connected_components_reference,
    mask_batch_reference,
    maxes_filter_reference,
    precision_recall_curves_reference,
    uncached_spectral_norm,
)
from tests.weight_fill import fill_module
from train_config import SegmentationTrainParams
from UNet.unet_model import UNet
from utils.inputs import load_direction
from utils.precision import AutocastGenerator, autocast, resolve_precision


@dataclass(frozen=True)
class Sizes:
    """Problem sizes and repeats of one run; `generator_config` overrides the 128-px BigBiGAN config."""

    side: int = 128  # of the filters' images and masks and of the F_max maps
    filter_batch: int = 64
    fmax_maps: int = 64
    generator_batch: int = 4
    synthetic_batch: int = 16
    unet_batch: int = 16
    unet_width: int = 64
    unet_size: int = 128
    demo_batch: int = DEMO_TRAINING["batch_size"]
    demo_steps: int = 20
    repeats: int = 3
    generator_repeats: int = 2
    generator_config: dict = field(default_factory=dict)


CPU_SIZES = Sizes()
CPU_QUICK = Sizes(
    filter_batch=16,
    fmax_maps=8,
    generator_batch=1,
    synthetic_batch=4,
    demo_steps=3,
    repeats=1,
    generator_repeats=1,
)
CUDA_SIZES = Sizes(
    filter_batch=256,
    fmax_maps=256,
    generator_batch=32,
    synthetic_batch=95,
    demo_steps=50,
    repeats=5,
    generator_repeats=3,
)
CUDA_QUICK = Sizes(
    filter_batch=64,
    fmax_maps=64,
    generator_batch=8,
    synthetic_batch=32,
    demo_steps=10,
    repeats=2,
    generator_repeats=1,
)


@dataclass
class Row:
    """One table row: `ours` (and `reference`, giving the ratio reference / ours) in `unit`, or a value."""

    name: str
    ours: float
    unit: str
    reference: float | None = None
    value: str = ""

    def cells(self) -> list[str]:
        ratio = f"{self.reference / self.ours:.1f}×" if self.reference is not None else self.value
        reference = "" if self.reference is None else f"{self.reference:.4g}"
        return [self.name, f"{self.ours:.4g}", reference, ratio, self.unit]


def best_time(fn: Callable[[], object], repeats: int, device: torch.device, warmup: bool = True) -> float:
    """Seconds of the fastest of `repeats` calls (after a warm-up call unless `warmup` is off)."""

    def timed() -> float:
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    if warmup:
        timed()
    return min(timed() for _ in range(repeats))


def pipeline_fixture(name: str, count: int, side: int, device: torch.device) -> torch.Tensor:
    """`count` items of a mask-pipeline fixture tensor (generator outputs), tiled, cropped to `side`."""
    source = load_fixture("mask_pipeline_inputs.pt" if name == "img_shifted" else "mask_pipeline.pt")[name]
    tiled = source.repeat(-(-count // len(source)), *([1] * (source.dim() - 1)))[:count, ..., :side, :side]
    return tiled.to(device).float() if name == "img_shifted" else tiled.to(device).long()


def fast_path_rows(sizes: Sizes, device: torch.device) -> list[Row]:
    """Each exact fast path against the plain implementation of its definition, on the same inputs."""
    images = pipeline_fixture("img_shifted", sizes.filter_batch, sizes.side, device)
    masks = pipeline_fixture("pair_to_mask", sizes.filter_batch, sizes.side, device)
    g = torch.Generator().manual_seed(0)
    prob = torch.rand(sizes.fmax_maps, sizes.side, sizes.side, generator=g).to(device)
    images_size = f"{sizes.filter_batch} × 3×{sizes.side}²"
    gt = (torch.rand(prob.shape, generator=g).to(device) < prob).long()
    pairs = [
        (
            f"two-peak filter, {images_size}",
            lambda: maxes_filter(images),
            lambda: maxes_filter_reference(images),
        ),
        (
            f"two-peak filter, batched bincount path, {images_size}",
            lambda: count_maxima(batched_histograms(images)) >= 2,
            lambda: maxes_filter_reference(images),
        ),
        (
            f"connected components, {sizes.filter_batch} masks {sizes.side}²",
            lambda: connected_components_filter(None, masks),
            lambda: connected_components_reference(masks),
        ),
        (
            f"F_max (255 thresholds), {sizes.fmax_maps} maps {sizes.side}²",
            lambda: F_max(*precision_recall_curves(gt, prob)),
            lambda: F_max(*precision_recall_curves_reference(gt, prob)),
        ),
    ]
    milliseconds = [
        (name, 1e3 * best_time(ours, sizes.repeats, device), 1e3 * best_time(plain, sizes.repeats, device))
        for name, ours, plain in pairs
    ]
    return [Row(name, ours, "ms", plain) for name, ours, plain in milliseconds]


def bench_generator(sizes: Sizes, device: torch.device) -> UnconditionalBigGAN:
    """The BigBiGAN generator (128 px unless overridden) with the fixtures' deterministic weight fill."""
    return UnconditionalBigGAN(fill_module(Generator(**generator_config(sizes.generator_config)))).to(device)


def bench_direction(dim: int, device: torch.device) -> torch.Tensor:
    """A seeded random unit direction, signed so that most masks of the filled generator pass the area
    filter (the other sign makes them cover most of the image)."""
    direction = torch.randn(dim, generator=torch.Generator().manual_seed(0))
    return (-direction / direction.norm()).to(device)


@dataclass(frozen=True)
class TrainingPath:
    """How a training run synthesises and steps: its precision, memory format, whether every latent of
    an attempt is generated (as before) or only as many as are likely needed (`MaskGenerator`), and
    whether synthesis runs in a background thread, overlapped with the U-Net step (`MaskStream`)."""

    precision: str
    channels_last: bool
    every_latent: bool
    overlap: bool

    @property
    def label(self) -> str:
        parts = [self.precision, "channels-last" if self.channels_last else "NCHW"]
        return ", ".join([*parts, "every latent" if self.every_latent else "latents as needed"])


# The CPU default until 2026-12-06, and one change at a time.
PREVIOUS_DEFAULT = TrainingPath("fp32", channels_last=False, every_latent=True, overlap=True)
SINGLE_CHANGES = {
    "bf16 alone": dataclasses.replace(PREVIOUS_DEFAULT, precision="bf16"),
    "channels-last alone": dataclasses.replace(PREVIOUS_DEFAULT, channels_last=True),
    "latents as needed alone": dataclasses.replace(PREVIOUS_DEFAULT, every_latent=False),
}
NO_OVERLAP = {"no overlap alone": dataclasses.replace(PREVIOUS_DEFAULT, overlap=False)}


def default_path(device: torch.device) -> TrainingPath:
    """What `train_segmentation.py` does on `device` by default."""
    precision = resolve_precision(None, device)
    return TrainingPath(precision, channels_last=True, every_latent=False, overlap=device.type == "cuda")


def path_generator(G: UnconditionalBigGAN, path: TrainingPath, device: torch.device) -> nn.Module:
    """`G` as `path` runs it (a channels-last copy, under autocast for bf16)."""
    if path.channels_last:
        G = copy.deepcopy(G).to(memory_format=torch.channels_last)
    return AutocastGenerator(G, device) if path.precision == "bf16" else G


@torch.no_grad()
def generator_rows(G: UnconditionalBigGAN, sizes: Sizes, device: torch.device) -> list[Row]:
    """Eval forward with cached against recomputed W / sigma, the image pair of a sample in fp32, in
    bf16 and channels-last, and the share of mask pixels on which the default path agrees with fp32."""
    z = torch.randn(sizes.generator_batch, G.dim_z, generator=torch.Generator().manual_seed(1)).to(device)
    shift = SegmentationTrainParams().latent_shift_r * bench_direction(G.dim_z, device)
    one = z[:1]
    cached = best_time(lambda: G(one), sizes.generator_repeats, device)
    with uncached_spectral_norm():
        recomputed = best_time(lambda: G(one), sizes.generator_repeats, device)

    default = default_path(device)
    paths = {"fp32": PREVIOUS_DEFAULT, "bf16": SINGLE_CHANGES["bf16 alone"]}
    paths |= {"channels-last": SINGLE_CHANGES["channels-last alone"], "default": default}
    per_sample, masks = {}, {}
    for name, path in paths.items():
        generator = path_generator(G, path, device)

        def pair(generator=generator, name=name) -> None:
            masks[name] = pair_to_mask(generator(z), generator.gen_shifted(z, shift))

        per_sample[name] = best_time(pair, sizes.generator_repeats, device) / len(z)
    agreement = (masks["fp32"] == masks["default"]).float().mean().item()
    fp32 = per_sample["fp32"]
    return [
        Row("generator G(z), batch 1: W/σ cached vs recomputed", cached, "s", recomputed),
        Row(f"generator pair G(z), G(z + shift), fp32, batch {len(z)}", fp32, "s/sample"),
        Row(f"generator pair, bf16 autocast vs fp32, batch {len(z)}", per_sample["bf16"], "s/sample", fp32),
        Row(
            f"generator pair, channels-last vs NCHW, fp32, batch {len(z)}",
            per_sample["channels-last"],
            "s/sample",
            fp32,
        ),
        Row(
            f"masks: default ({default.precision}, channels-last) agreeing with fp32",
            100 * agreement,
            "% of pixels",
        ),
    ]


class CountingGenerator(nn.Module):
    """The generator, counting the samples it makes (a filtered batch may need several calls)."""

    def __init__(self, G: nn.Module):
        super().__init__()
        self.G = G
        self.dim_z = G.dim_z
        self.samples = 0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        self.samples += len(z)
        return self.G(z)

    def gen_shifted(self, z: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        return self.G.gen_shifted(z, shift)


def compared_paths(device: torch.device, overlap: bool = False) -> dict[str, TrainingPath]:
    """The previous default, each change alone (with `overlap`, the synthesis thread's too), the default."""
    changes = {**SINGLE_CHANGES, **(NO_OVERLAP if overlap else {})}
    return {"previous default": PREVIOUS_DEFAULT, **changes, "default": default_path(device)}


def synthetic_batch_rows(G: UnconditionalBigGAN, sizes: Sizes, device: torch.device) -> list[Row]:
    """One `MaskGenerator` batch with the default filters (area, two-peak, connected components) on each
    `TrainingPath`, against the previous default; each row says how many samples it generated."""
    params = dataclasses.replace(SegmentationTrainParams(), batch_size=sizes.synthetic_batch)
    direction = bench_direction(G.dim_z, device)
    rows = []
    for name, path in compared_paths(device).items():
        counting = CountingGenerator(path_generator(G, path, device))
        rng = torch.Generator().manual_seed(2)
        masks = MaskGenerator(counting, direction, params, (), [connected_components_filter], rng=rng)
        make_batch = partial(mask_batch_reference, masks) if path.every_latent else masks
        seconds = best_time(make_batch, 1, device, warmup=False)
        reference = rows[0].ours if rows else None
        label = f"synthetic batch of {sizes.synthetic_batch}, default filters, {name} ({path.label}"
        rows.append(Row(f"{label}, {counting.samples} generated)", seconds, "s/batch", reference))
    return rows


def unet_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, masks: torch.Tensor
) -> None:
    """Forward, cross-entropy, backward and Adam, in the memory format of `model`'s weights."""
    channels_last = model.inc.double_conv[0].weight.is_contiguous(memory_format=torch.channels_last)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    loss = F.cross_entropy(model(images), masks)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def unet_step_rows(sizes: Sizes, device: torch.device) -> list[Row]:
    """One training step of the U-Net on a synthetic-size batch on each `TrainingPath` (the latents do
    not matter here), against the previous default."""
    g = torch.Generator().manual_seed(3)
    batch, side = sizes.unet_batch, sizes.unet_size
    images = (torch.rand(batch, 3, side, side, generator=g) * 2 - 1).to(device)
    masks = (torch.rand(batch, side, side, generator=g) < 0.5).long().to(device)
    rows = []
    for name, path in compared_paths(device).items():
        if name == "latents as needed alone":
            continue
        model = UNet(base_width=sizes.unet_width).to(device).train()
        if path.channels_last:
            model.to(memory_format=torch.channels_last)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step(model=model, optimizer=optimizer, precision=path.precision) -> None:
            with autocast(device, precision):
                unet_step(model, optimizer, images, masks)

        seconds = best_time(step, sizes.repeats, device)
        reference = rows[0].ours if rows else None
        label = f"U-Net step, batch {batch} at {side} px, width {sizes.unet_width}, {name}"
        rows.append(
            Row(
                f"{label} ({path.precision}, {'channels-last' if path.channels_last else 'NCHW'})",
                1e3 * seconds,
                "ms",
                reference,
            )
        )
    return rows


def training_sample_row(synthetic: list[Row], unet: list[Row], sizes: Sizes) -> Row:
    """A full-config training sample (its share of a filtered synthetic batch and of a U-Net step), the
    default path against the previous default."""

    def per_sample(synthetic_row: Row, unet_row: Row) -> float:
        return synthetic_row.ours / sizes.synthetic_batch + unet_row.ours / 1e3 / sizes.unet_batch

    default, previous = per_sample(synthetic[-1], unet[-1]), per_sample(synthetic[0], unet[0])
    return Row("training sample, full config: default vs previous default", default, "s/sample", previous)


class EveryLatentMaskGenerator(MaskGenerator):
    """Batches made as before: every latent of an attempt generated (tests/reference_impl.py)."""

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        images, masks, _ = mask_batch_reference(self)
        return images, masks


def demo_training_rows(sizes: Sizes, device: torch.device) -> list[Row]:
    """Training steps per second of the demo preset on each `TrainingPath`: synthetic batches and U-Net
    steps, as in `train_segmentation.py --demo` without its logging, validation and checkpoints."""
    params = dataclasses.replace(
        SegmentationTrainParams(),
        batch_size=sizes.demo_batch,
        latent_shift_r=DEMO_TRAINING["latent_shift_r"],
    )
    G = make_big_gan(DEMO_GENERATOR_PATH, device=device, config=DEMO_GENERATOR_CONFIG)
    direction = load_direction(DEMO_DIRECTION_PATH, G.dim_z).to(device)
    paths = compared_paths(device, overlap=True)
    other = "overlapped" if not paths["default"].overlap else "in the training thread"
    paths[f"default, synthesis {other}"] = dataclasses.replace(
        paths["default"], overlap=not paths["default"].overlap
    )
    rows = []
    for name, path in paths.items():
        kind = EveryLatentMaskGenerator if path.every_latent else MaskGenerator
        rng = torch.Generator().manual_seed(4)
        generator = kind(
            path_generator(G, path, device), direction, params, (), [connected_components_filter], rng=rng
        )
        model = UNet(base_width=DEMO_TRAINING["unet_width"]).to(device).train()
        if path.channels_last:
            model.to(memory_format=torch.channels_last)
        optimizer = torch.optim.Adam(model.parameters(), lr=DEMO_TRAINING["rate"])

        def step(stream: MaskStream, model=model, optimizer=optimizer, precision=path.precision) -> None:
            with autocast(device, precision):
                unet_step(model, optimizer, *next(stream))

        with MaskStream(generator, background=path.overlap) as stream:
            step(stream)  # warm-up
            seconds = best_time(lambda: [step(stream) for _ in range(sizes.demo_steps)], 1, device, False)
        reference = rows[0].ours if rows else None
        overlap = "synthesis overlapped" if path.overlap else "synthesis in the training thread"
        label = f"demo training, batch {params.batch_size}, {sizes.demo_steps} steps, {name}"
        rows.append(
            Row(f"{label} ({path.label}, {overlap})", seconds / sizes.demo_steps, "s/step", reference)
        )
    return rows


def ddp_samples_per_second(processes: int, steps: int, batch_size: int) -> float:
    """Demo training samples/s of `processes` CPU processes (gloo, one thread each) under torchrun."""
    launcher = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={processes}",
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [*launcher, "-m", "bench.ddp_worker", "--steps", str(steps), "--batch_size", str(batch_size)],
        capture_output=True,
        text=True,
        env=environment,
        check=True,
        cwd=Path(__file__).resolve().parents[1],  # `-m bench.ddp_worker` from any working directory
    )
    return json.loads(result.stdout.strip().splitlines()[-1])["samples_per_s"]


def ddp_rows(sizes: Sizes, device: torch.device) -> list[Row]:
    """Demo training with 2 processes against 1 (CPU, gloo, one thread per process): the samples/s
    that torchrun adds on this machine."""
    if device.type != "cpu":
        return []
    one, two = (ddp_samples_per_second(processes, sizes.demo_steps, sizes.demo_batch) for processes in (1, 2))
    name = f"demo training, DDP 2 processes vs 1 (CPU, gloo, {sizes.demo_steps} steps)"
    return [Row(name, two, "samples/s", value=f"{two / one:.2f}× the {one:.3g} of 1 process")]


def run_benchmarks(sizes: Sizes, device: torch.device) -> list[Row]:
    G = bench_generator(sizes, device)
    return [
        *fast_path_rows(sizes, device),
        *generator_rows(G, sizes, device),
        *(synthetic := synthetic_batch_rows(G, sizes, device)),
        *(unet := unet_step_rows(sizes, device)),
        training_sample_row(synthetic, unet, sizes),
        *demo_training_rows(sizes, device),
        *ddp_rows(sizes, device),
    ]


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: how much else the machine was doing."""
    return "load average " + ", ".join(f"{value:.1f}" for value in os.getloadavg())


def machine_description(device: torch.device) -> str:
    accelerator = torch.cuda.get_device_name(device) if device.type == "cuda" else "none (CPU run)"
    return (
        f"CPU: {cpu_model()}, {os.cpu_count()} cores; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; device: {device} ({accelerator}); {load_average()}"
    )


def markdown_table(rows: list[Row]) -> str:
    lines = ["| name | ours | reference | ratio or value | unit |", "|---|---:|---:|---:|---|"]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and single runs")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        sizes = CUDA_QUICK if args.quick else CUDA_SIZES
    else:
        sizes = CPU_QUICK if args.quick else CPU_SIZES
    print(machine_description(device), flush=True)
    rows = run_benchmarks(sizes, device)
    print(markdown_table(rows))
    print(f"{load_average()} at the end")
    return rows


if __name__ == "__main__":
    main()
