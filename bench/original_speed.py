"""Samples/s of the original implementation's training loop (anvoynov/BigGANsAreWatching), on the inputs
of `bench.train_speed`, for a side-by-side ratio on the same card.

    python -m bench.original_speed --repo PATH --inputs DIR [--steps 10 40] [--batch_size 95]

The original's own `train_segmentation.py` runs twice, for each of the two `--steps` counts, with one
generator GPU (`--gen_devices 0`: the whole batch on one card); samples/s is the batch times the extra
updates over the extra wall time, so start-up, the test set and the final evaluation cancel out. It needs
a validation folder (its last step evaluates one): a two-image folder is made in `--inputs`.

What is patched to run it (nothing of its arithmetic): `torch.load` reads with `weights_only=False` as
torch 1.4 did, and matplotlib, when it is not installed, is a stub (the loop draws no plot). `--cpu` (a
check of this script on a machine without CUDA, not a measurement) also makes its `.cuda()` calls and
`cuda:<i>` devices the CPU.
"""

import argparse
import runpy
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
from PIL import Image


def validation_folder(inputs: Path) -> tuple[Path, Path]:
    """Two 64-px image/mask pairs: the original evaluates a folder at its last step and cannot skip it."""
    images, masks = inputs / "val" / "images", inputs / "val" / "masks"
    images.mkdir(parents=True, exist_ok=True)
    masks.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(2):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(images / f"{index}.png")
        mask = np.zeros((64, 64), np.uint8)
        mask[16:48, 16:48] = 255
        Image.fromarray(mask).save(masks / f"{index}.png")
    return images, masks


def run_original(repo: Path, inputs: Path, out: Path, steps: int, batch_size: int, cpu: bool) -> float:
    """Wall seconds of one run of the original's train_segmentation.py for `steps` steps (on the inputs
    and the validation folder in `inputs`)."""
    images, masks = inputs / "val" / "images", inputs / "val" / "masks"
    never = str(10**9)
    argv = [
        "--out", str(out), "--gan_weights", str(inputs / "generator.pth"),
        "--bg_direction", str(inputs / "direction.pth"), "--z", str(inputs / "z.npy"),
        "--device", "0", "--gen_devices", "0", "--n_steps", str(steps), "--batch_size", str(batch_size),
        "--test_samples_count", str(batch_size), "--steps_per_log", never, "--steps_per_validation", never,
        "--steps_per_checkpoint_save", never,
        "--val_images_dirs", str(images), "--val_masks_dirs", str(masks),
    ]  # fmt: skip
    command = [sys.executable, "-m", "bench.original_speed", "--run", str(repo), *(["--cpu"] if cpu else [])]
    start = time.perf_counter()
    subprocess.run([*command, "--", *argv], check=True, cwd=Path(__file__).resolve().parents[1])
    return time.perf_counter() - start


def patch_torch(cpu: bool) -> None:
    """What the original needs on today's torch (see the module doc)."""
    import torch

    load = torch.load
    torch.load = lambda *args, **kwargs: load(*args, **{"weights_only": False, **kwargs})
    if not cpu:
        return
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    torch.nn.Module.cuda = lambda self, *args, **kwargs: self
    torch.cuda.set_device = lambda device: None
    torch.cuda.current_device = lambda: "cpu"
    to = torch.nn.Module.to

    def to_cpu(self, *args, **kwargs):
        if str(kwargs.get("device", "")).startswith("cuda"):
            kwargs["device"] = "cpu"
        return to(self, *args, **kwargs)

    torch.nn.Module.to = to_cpu


def stub_matplotlib() -> None:
    """An importable matplotlib where none is installed: the original imports it, the loop never plots."""
    try:
        import matplotlib  # noqa: F401
    except ModuleNotFoundError:
        stub = types.ModuleType("matplotlib")
        stub.use = lambda backend: None
        stub.pyplot = types.ModuleType("matplotlib.pyplot")
        sys.modules |= {"matplotlib": stub, "matplotlib.pyplot": stub.pyplot}


def run_in_repo(repo: Path, cpu: bool, argv: list[str]) -> None:
    """Run the original's train_segmentation.py in this process, from its repository (whose `utils`,
    `data`, ... must not meet this project's)."""
    patch_torch(cpu)
    stub_matplotlib()
    here = str(Path(__file__).resolve().parents[1])
    sys.path[:] = [str(repo)] + [path for path in sys.path if path not in ("", here)]
    sys.argv = [str(repo / "train_segmentation.py"), *argv]
    runpy.run_path(str(repo / "train_segmentation.py"), run_name="__main__")


def main(argv: list[str] | None = None) -> float:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--run"]:
        cpu = "--cpu" in argv[: argv.index("--")]
        run_in_repo(Path(argv[1]), cpu, argv[argv.index("--") + 1 :])
        return 0.0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repo", type=Path, required=True, help="a checkout of anvoynov/BigGANsAreWatching")
    parser.add_argument(
        "--inputs", type=Path, required=True, help="bench.train_speed's inputs folder (made if missing)"
    )
    parser.add_argument("--out", type=Path, default=Path("results/original_speed"))
    parser.add_argument("--steps", type=int, nargs=2, default=[10, 40], help="the two step counts")
    parser.add_argument("--batch_size", type=int, default=95)
    parser.add_argument("--cpu", action="store_true", help="check the script without CUDA (no measurement)")
    args = parser.parse_args(argv)
    short, long = sorted(args.steps)
    taken = [str(args.out / f"steps_{n}") for n in (short, long) if (args.out / f"steps_{n}").exists()]
    if taken:  # the original would continue the run there
        parser.error(f"{', '.join(taken)} already exist: pass another --out, or delete them")
    if not (args.inputs / "generator.pth").is_file():
        from bench.train_speed import write_inputs  # not at the top: the run in the repo imports none of ours

        write_inputs(args.inputs, {})  # the original builds the 128-px BigBiGAN only
    validation_folder(args.inputs)
    seconds = [
        run_original(args.repo, args.inputs, args.out / f"steps_{steps}", steps, args.batch_size, args.cpu)
        for steps in (short, long)
    ]
    samples_per_s = args.batch_size * (long - short) / (seconds[1] - seconds[0])
    where = "the CPU, a check only" if args.cpu else "one GPU"
    print(f"original implementation: {samples_per_s:.3g} samples/s (batch {args.batch_size}, {where})")
    return samples_per_s


if __name__ == "__main__":
    main()
