"""Whether `torch.compile` pays for itself in the demo: compile time and step times, compiled and eager.

    python -m bench.compile_speed [--steps 30]

Times the demo preset's U-Net training step (batch 64 at 32 px, width 16) and its generator pair
`G(z)`, `G(z + 5 d)` (batch 64), both channels-last and in the default precision, as
`train_segmentation.py` runs them. Compiling pays within a run only when the compile time is less than
the time it saves over the run's steps (600 in the demo).
"""

import argparse
import os
import time

# Compile times as on a fresh machine: no kernels reused from an earlier run's cache.
os.environ.setdefault("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "1")

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from BigGAN.gan_load import make_big_gan
from demo.assets import DEMO_DIRECTION_PATH, DEMO_GENERATOR_CONFIG, DEMO_GENERATOR_PATH
from demo.preset import DEMO_TRAINING
from UNet.unet_model import UNet
from utils.inputs import load_direction
from utils.precision import autocast, resolve_precision


def seconds_per_call(function, calls: int, device: torch.device) -> tuple[float, float]:
    """(seconds of the first call, mean seconds of the next `calls`)."""

    def timed(count: int) -> float:
        start = time.perf_counter()
        for _ in range(count):
            function()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    return timed(1), timed(calls) / calls


def unet_step(compiled: bool, precision: str, device: torch.device):
    batch = DEMO_TRAINING["batch_size"]
    g = torch.Generator().manual_seed(0)
    images = (
        torch.randn(batch, 3, 32, 32, generator=g).to(device).contiguous(memory_format=torch.channels_last)
    )
    masks = torch.randint(0, 2, (batch, 32, 32), generator=g).to(device)
    model = UNet(base_width=DEMO_TRAINING["unet_width"]).to(device).to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=DEMO_TRAINING["rate"])
    trained = torch.compile(model) if compiled else model

    def step() -> None:
        with autocast(device, precision):
            loss = F.cross_entropy(trained(images), masks)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def generator_pair(compiled: bool, precision: str, device: torch.device):
    G = make_big_gan(DEMO_GENERATOR_PATH, device=device, config=DEMO_GENERATOR_CONFIG)
    G.to(memory_format=torch.channels_last)
    shift = DEMO_TRAINING["latent_shift_r"] * load_direction(DEMO_DIRECTION_PATH, G.dim_z).to(device)
    z = torch.randn(DEMO_TRAINING["batch_size"], G.dim_z, generator=torch.Generator().manual_seed(1)).to(
        device
    )
    run = torch.compile(G) if compiled else G

    @torch.no_grad()
    def pair() -> None:
        with autocast(device, precision):
            run(z), run(z + shift)

    return pair


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="timed calls after the first")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    precision = resolve_precision(None, device)
    threads = torch.get_num_threads()
    print(f"device {device}, precision {precision}, torch {torch.__version__}, threads {threads}")
    print("| what | first call (s) | then (ms per call) |\n|---|---:|---:|")
    for name, make in (("U-Net training step", unet_step), ("generator pair", generator_pair)):
        for compiled in (False, True):
            first, then = seconds_per_call(make(compiled, precision, device), args.steps, device)
            print(f"| {name}, {'compiled' if compiled else 'eager'} | {first:.1f} | {1e3 * then:.1f} |")


if __name__ == "__main__":
    main()
